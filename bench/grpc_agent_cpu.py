"""CPU per agent and per gRPC check against an HTTP check, same run, and the gRPC client choice.

Starts, each in its own process so their CPU is not ours: Debian nginx
(tests/peers/nginx.py), grpcio's health server (tests/peers/grpc_health.py) and a
small asyncio agent that answers ``75%`` to every connection.  Then alternates
rounds (A B C D A B C D ...) of N checks at most ``--concurrency`` at once:

* ``http``: ``http request=/test.html receive='Still alive'`` through the engine;
* ``agent``: the ``agent`` check through the engine;
* ``grpc``: the ``grpc`` check through the engine (its own HTTP/2 framing + hpack);
* ``grpc/h2``: the same check with the full h2 library doing HTTP/2 instead (the
  first candidate; only the transport differs, the verdict is the check's own);
* ``grpcio``: the same question asked with grpcio's asyncio client, a new channel
  per check with a local subchannel pool, so one connection per check as every
  lvscheck check does (grpcio's default global pool would quietly share connections
  between channels), under the same semaphore: the other candidate.

CPU is ``time.process_time()`` of this process (grpcio's own threads included).
Import cost: CPU of ``python -I -c 'import ...'`` minus ``python -I -c pass``, median of 15.

    .venv/bin/python bench/grpc_agent_cpu.py [-n 2000] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.nginx import start_nginx

from lvscheck import CheckSpec, Engine, Outcome, State, Target
from lvscheck.checks.grpc import MAX_REPLY, GrpcCheck
from lvscheck.errors import CheckFailed
from lvscheck.plugin.probe import Probe

REPO = Path(__file__).resolve().parents[1]
AGENT = """
import asyncio, sys
async def answer(reader, writer):
    writer.write(b"75%\\n")
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""

Round = Callable[[int, int], Awaitable[tuple[float, int]]]


def engine_round(spec: CheckSpec, expect: State) -> Round:
    async def run(n: int, concurrency: int) -> tuple[float, int]:
        engine = Engine(max_in_flight=concurrency, per_host=concurrency)
        check = engine.prepare(spec)
        c0 = time.process_time()
        results = await engine.run_many([check] * n)
        return time.process_time() - c0, sum(r.state is expect for r in results)

    return run


class H2GrpcCheck(GrpcCheck):
    """The grpc check with the h2 library as its HTTP/2 client (the candidate not taken)."""

    async def probe(self, probe: Probe) -> Outcome:
        import h2.config
        import h2.connection
        import h2.events

        reader, writer = await probe.connect(tls=self.tls_context, server_hostname=self.server_name)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        timeout = f"{max(1, int(probe.remaining() * 1000))}m".encode()
        conn.send_headers(1, [*self.headers, (b"grpc-timeout", timeout)])
        conn.send_data(1, self.request, end_stream=True)
        writer.write(conn.data_to_send())
        headers: dict[bytes, bytes] = {}
        message = bytearray()
        ended = False
        while not ended:
            data = await reader.read(65536)
            if not data or len(message) > MAX_REPLY:
                raise CheckFailed("connection closed or reply too large")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    headers.update((bytes(k), bytes(v)) for k, v in event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    message += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    raise CheckFailed(f"{event}")
            if pending := conn.data_to_send():
                writer.write(pending)
        conn.close_connection()
        writer.write(conn.data_to_send())
        return self.judge(headers, bytes(message))


def check_round(check: GrpcCheck, expect: State) -> Round:
    async def run(n: int, concurrency: int) -> tuple[float, int]:
        engine = Engine(max_in_flight=concurrency, per_host=concurrency)
        c0 = time.process_time()
        results = await engine.run_many([check] * n)
        return time.process_time() - c0, sum(r.state is expect for r in results)

    return run


def grpcio_round(port: int) -> Round:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def run(n: int, concurrency: int) -> tuple[float, int]:
        sem = asyncio.Semaphore(concurrency)
        request = health_pb2.HealthCheckRequest(service="")

        async def one() -> bool:
            own_connection = [("grpc.use_local_subchannel_pool", 1)]
            async with sem, grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=own_connection) as channel:
                async with asyncio.timeout(5):
                    reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        c0 = time.process_time()
        ok = await asyncio.gather(*(one() for _ in range(n)))
        return time.process_time() - c0, sum(ok)

    return run


def import_ms(statement: str, base: str = "pass", runs: int = 15) -> float:
    """CPU (user + system) of ``python -I -c 'base; statement'`` above ``python -I -c base``, median.

    CPU rather than wall time: the machine is shared, and waiting for a core is not import cost.
    """

    def once(code: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-I", "-c", code], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    floor = statistics.median(once(base) for _ in range(runs))
    return (statistics.median(once(f"{base}; {statement}") for _ in range(runs)) - floor) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="checks per round (default 2000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for label, statement in [
        ("asyncio, ssl (the budget's baseline)", "import asyncio, ssl"),
        ("hpack (the grpc check)", "import hpack"),
        ("h2 (candidate)", "import h2.connection, h2.events, h2.config"),
        ("grpcio + health stubs", "import grpc, grpc.aio; from grpc_health.v1 import health_pb2_grpc"),
    ]:
        print(f"import {label:40s} {import_ms(statement):6.1f} ms CPU above python -I -c pass")
    engine = "import lvscheck.engine, lvscheck.checks.http"
    for label, statement in [
        ("hpack (the grpc check)", "import hpack"),
        ("h2 (candidate)", "import h2.connection, h2.events, h2.config"),
        ("grpcio + health stubs", "import grpc, grpc.aio; from grpc_health.v1 import health_pb2_grpc"),
    ]:
        print(f"import {label:40s} {import_ms(statement, engine):6.1f} ms CPU above lvscheck's engine + http")

    env = dict(os.environ, PYTHONPATH=str(REPO))
    grpc_proc = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.grpc_health"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    agent_proc = subprocess.Popen(
        [sys.executable, "-c", AGENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert grpc_proc.stdout is not None
        assert agent_proc.stdout is not None
        grpc_port = int(grpc_proc.stdout.readline().split()[0])
        agent_port = int(agent_proc.stdout.readline())
        with (
            tempfile.TemporaryDirectory(prefix="lvscheck-bench-") as tmp,
            start_nginx(Path(tmp) / "ng") as ng,
        ):
            local = "127.0.0.1"
            rounds: dict[str, Round] = {
                "http": engine_round(
                    CheckSpec(
                        "http",
                        Target(local, ng.http_port),
                        {"request": "/test.html", "receive": "Still alive"},
                    ),
                    State.UP,
                ),
                "agent": engine_round(
                    CheckSpec("agent", Target(local, agent_port, weight=4)), State.DEGRADED
                ),
                "grpc": engine_round(CheckSpec("grpc", Target(local, grpc_port)), State.UP),
                "grpc/h2": check_round(
                    H2GrpcCheck.prepare(CheckSpec("grpc", Target(local, grpc_port))),  # type: ignore[arg-type]
                    State.UP,
                ),
                "grpcio": grpcio_round(grpc_port),
            }
            for run in rounds.values():  # warm up every path once
                asyncio.run(run(200, args.concurrency))
            cpu: dict[str, list[float]] = {name: [] for name in rounds}
            for r in range(args.rounds):
                for name, run in rounds.items():
                    spent, ok = asyncio.run(run(args.n, args.concurrency))
                    assert ok == args.n, f"{name}: only {ok}/{args.n} as expected"
                    cpu[name].append(spent / args.n)
                    print(f"round {r + 1} {name:8s} {spent / args.n * 1e6:7.1f} us CPU/check")
            http = statistics.median(cpu["http"])
            for name, values in cpu.items():
                median = statistics.median(values)
                print(f"median {name:8s} {median * 1e6:7.1f} us CPU/check  {median / http:5.2f}x http")
    finally:
        for proc in (grpc_proc, agent_proc):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
