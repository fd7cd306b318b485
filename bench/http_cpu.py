"""CPU per HTTP check: the lvscheck engine vs a bare asyncio-streams loop, same run, same nginx.

Starts Debian nginx (tests/peers/nginx.py) on 127.0.0.1, then alternates rounds of
N checks ``http request=/test.html receive='Still alive'``:

* engine: one prepared check reused, ``Engine(max_in_flight=64, per_host=64).run_many``;
* bare: the same request bytes over ``asyncio.open_connection``, read until close,
  status line and body searched with the same compiled regex, at most 64 at once
  (an ``asyncio.Semaphore``), all N gathered like ``run_many`` does.

CPU is ``time.process_time()`` of this process only (nginx's CPU is not ours).
Budget (issue 3): engine at most 1.3x the bare loop.

    .venv/bin/python bench/http_cpu.py [-n 10000] [--rounds 3] [--concurrency 64] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.nginx import start_nginx

from lvscheck import CheckSpec, Engine, State, Target
from lvscheck.checks.http import HttpCheck
from lvscheck.engine import CPU_BUDGET

OPTIONS = {"request": "/test.html", "receive": "Still alive"}


async def engine_round(
    port: int, n: int, concurrency: int, cpu_budget: float | None = CPU_BUDGET
) -> tuple[float, float, int]:
    engine = Engine(max_in_flight=concurrency, per_host=concurrency, cpu_budget=cpu_budget)
    check = engine.prepare(CheckSpec("http", Target("127.0.0.1", port), OPTIONS))
    c0, w0 = time.process_time(), time.perf_counter()
    results = await engine.run_many([check] * n)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu, wall, sum(r.state is State.UP for r in results)


async def bare_round(
    port: int, n: int, concurrency: int, request: bytes, receive: re.Pattern[bytes]
) -> tuple[float, float, int]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> bool:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                chunks = []
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
                data = b"".join(chunks)
                head, _, body = data.partition(b"\r\n\r\n")
                return head.startswith(b"HTTP/1.1 200 ") and receive.search(body) is not None
            finally:
                writer.close()

    c0, w0 = time.process_time(), time.perf_counter()
    ok = await asyncio.gather(*(one() for _ in range(n)))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu, wall, sum(ok)


def _us(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10_000, help="checks per round (default 10000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--profile", metavar="FILE", help="cProfile one engine round into FILE")
    ap.add_argument(
        "--meter",
        action="store_true",
        help="instead of the bare loop: the engine with its CPU meter (default) against without (A B A B)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lvscheck-bench-") as tmp, start_nginx(Path(tmp) / "nginx") as ng:
        port = ng.http_port
        check = HttpCheck.prepare(CheckSpec("http", Target("127.0.0.1", port), OPTIONS))
        assert isinstance(check, HttpCheck)
        assert check.receive is not None
        request = check.request  # the exact bytes the check sends
        load = os.getloadavg()[0]
        print(f"nginx {port}, {args.n} checks per round, concurrency {args.concurrency}, load {load:.2f}")
        print(f"request bytes: {request!r}")

        async def warm() -> None:
            await engine_round(port, 500, args.concurrency)
            await bare_round(port, 500, args.concurrency, request, check.receive)  # type: ignore[arg-type]

        asyncio.run(warm())
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(engine_round(port, args.n, args.concurrency))
            prof.disable()
            prof.dump_stats(args.profile)
            print(f"profile written to {args.profile}")
            return 0
        eng: list[float] = []
        bare: list[float] = []
        if args.meter:
            return meter_rounds(port, args.n, args.rounds, args.concurrency)
        for r in range(args.rounds):
            cpu, wall, up = asyncio.run(engine_round(port, args.n, args.concurrency))
            assert up == args.n, f"engine: only {up}/{args.n} up"
            eng.append(cpu / args.n)
            print(f"round {r + 1} engine: {_us(cpu, args.n)} us CPU/check  {_us(wall, args.n)} us wall/check")
            cpu, wall, up = asyncio.run(bare_round(port, args.n, args.concurrency, request, check.receive))
            assert up == args.n, f"bare: only {up}/{args.n} ok"
            bare.append(cpu / args.n)
            print(f"round {r + 1} bare:   {_us(cpu, args.n)} us CPU/check  {_us(wall, args.n)} us wall/check")
        e, b = statistics.median(eng), statistics.median(bare)
        print(
            f"median CPU per check: engine {e * 1e6:.1f} us, bare asyncio streams {b * 1e6:.1f} us,"
            f" ratio {e / b:.2f}x (budget 1.3x)"
        )
        print(f"load after: {os.getloadavg()[0]:.2f}")
        return 0 if e / b <= 1.3 else 1


def meter_rounds(port: int, n: int, rounds: int, concurrency: int) -> int:
    """The CPU meter's cost: engine rounds with it and without it, alternating (A B B A ...)."""
    metered: list[float] = []
    plain: list[float] = []
    pair = [(CPU_BUDGET, metered, "metered"), (None, plain, "no meter")]
    for r in range(rounds):
        for budget, into, name in pair if r % 2 == 0 else pair[::-1]:  # A B B A: no order favoured
            cpu, wall, up = asyncio.run(engine_round(port, n, concurrency, budget))
            assert up == n, f"{name}: only {up}/{n} up"
            into.append(cpu / n)
            print(f"round {r + 1} {name:9} {_us(cpu, n)} us CPU/check  {_us(wall, n)} us wall/check")
    m, p = statistics.median(metered), statistics.median(plain)
    print(f"median CPU per check: metered {m * 1e6:.1f} us, no meter {p * 1e6:.1f} us, ratio {m / p:.3f}x")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
