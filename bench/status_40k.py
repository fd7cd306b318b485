"""``status``, ``/status.json``, ``/metrics`` and the page's snapshot at 40,000 reals: answer time, loop held.

Issue 18 part 3.  One process holds the daemon's core in-process (``Director`` with an
in-memory IPVS table, the config of ``_daemon.write_config``: 100 ``connect`` reals per
virtual, installed as the daemon does); its checks are stubbed: a task hands the director
synthetic results at RATE a second (default: every real once every 5 s), in batches every
10 ms, as the scheduler would (``Director.on_result``), so rows keep changing.  A client
in another process (no GIL shared with the loop) asks, one request at a time, and times
the answer to its last byte; a ticker on the loop (1 ms sleeps) records the longest gap
while each request is served.

Two servers over the same director, in the order A B A B:

* **old**: what main at 558fde8 did: ``json.dumps(director.status())`` and
  ``render_metrics(director)``, built in one go on the loop (the same functions, kept);
* **new**: ``serve_control`` and ``serve_http``: rows kept per real, joined per request.

Each round starts with one ``status`` (for the new server: the first, which renders every real,
in slices), then a window with no request (the background pass keeps the rows fresh for 15 min
after a request): the daemon process's CPU then, new minus old, is what keeping the rows costs
at the result rate the feed reached.  Also the size of the text kept, and the 1-minute load
average beside each figure.

    .venv/bin/python bench/status_40k.py [--reals 40000] [--rate REALS/5] [--rounds 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _daemon import write_config

from lvscheck.adapters.ipvs.table import MemoryIPVS
from lvscheck.daemon.control import serve_control
from lvscheck.daemon.director import Director, DirectorOptions
from lvscheck.daemon.metrics import render_metrics
from lvscheck.daemon.reload import install
from lvscheck.model import Result, State
from lvscheck.web.server import serve_http

CLIENT = r"""
import json, socket, sys, time
for line in sys.stdin:
    kind, where, path = line.split()
    t0 = time.perf_counter()
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX); s.connect(where); s.sendall(b"status\n")
    else:
        s = socket.create_connection(("127.0.0.1", int(where)))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    n = 0
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        n += len(data)
        if path == "/events" and data.endswith(b"}\n\n"):
            break  # the snapshot event is complete
    s.close()
    print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": n}), flush=True)
"""


class Ticker:
    """The longest gap between two 1 ms sleeps of the loop since :meth:`reset`."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.longest = 0.0

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


async def feed(director: Director, rate: float, stop: asyncio.Event) -> None:
    """Synthetic check results: ``rate`` a second, round robin over the reals, every 10 ms."""
    reals = list(director.reals.values())
    i = 0
    step = max(1, round(rate / 100))
    while not stop.is_set():
        for _ in range(step):
            rs = reals[i % len(reals)]
            i += 1
            if rs.job is None or rs.check is None:
                continue
            ok = random.random() > 0.001
            result = Result(
                "connect",
                rs.check.spec.target,
                State.UP if ok else State.DOWN,
                1 if ok else 0,
                "connected" if ok else "connection refused",
                random.uniform(0.0002, 0.004),
            )
            director.on_result(rs.job, result, 0.0)
        await asyncio.sleep(0.01)


async def serve_old(
    director: Director, sock: str
) -> tuple[asyncio.AbstractServer, asyncio.AbstractServer, int]:
    """main at 558fde8: the whole document (or exposition) built in one go on the loop."""

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(json.dumps(director.status(), default=str).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1]
        if path == b"/metrics":
            body = render_metrics(director).encode()
        else:
            doc = director.status()
            doc["actions"] = False
            body = json.dumps(doc, default=str).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    unix = await asyncio.start_unix_server(control, sock)
    tcp = await asyncio.start_server(http, "127.0.0.1", 0)
    return unix, tcp, tcp.sockets[0].getsockname()[1]


def kept_bytes(rows: Any) -> int:
    """The size of the text the rows keep (each str object: header and characters)."""
    total = 0
    for v in rows._virtuals:
        total += sum(map(sys.getsizeof, v.rows))
        for m in v.metric_rows:
            if m is not None:
                total += sum(map(sys.getsizeof, m[:7])) + sys.getsizeof(m)
        total += sum(sys.getsizeof(h.latencies) + sys.getsizeof(h.transitions) for h in v.histories)
    return total


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _load() -> float:
    return round(os.getloadavg()[0], 2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lvscheck-bench-status-"))
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        cf = tmp / "bench.cf"
        write_config(cf, args.reals, 1, 3600, "connect")
        director = Director(str(cf), MemoryIPVS(), options=DirectorOptions(reconcile=0))
        director.overrides.path = str(tmp / "overrides.json")
        director.load_initial()
        director.view.read()
        await install(director, director.prepared, first=True)
        for sid in list(director.reals):
            director.scheduler.stop(sid)  # the checks are stubbed: feed() hands results instead
        director.state = "running"
        stop = asyncio.Event()
        await feed_all(director)
        feeder = asyncio.get_running_loop().create_task(feed(director, args.rate, stop))
        ticker = Ticker()
        ticker.start()

        async def ask(kind: str, where: str, path: str) -> dict[str, float]:
            ticker.reset()
            assert client.stdin is not None
            assert client.stdout is not None
            client.stdin.write(f"{kind} {where} {path}\n")
            client.stdin.flush()
            line = await asyncio.to_thread(client.stdout.readline)
            got = json.loads(line)
            return {"s": got["seconds"], "held": ticker.longest, "bytes": got["bytes"]}

        out: dict[str, Any] = {"reals": args.reals, "results_per_s": args.rate, "load_at_start": _load()}
        figures: dict[str, dict[str, list[Any]]] = {}
        for rnd in range(args.rounds):
            for mode in ("old", "new"):
                sock = str(tmp / f"{mode}{rnd}.sock")
                rss0 = _rss_mb()
                if mode == "old":
                    unix, tcp, port = await serve_old(director, sock)
                    servers: list[Any] = [unix, tcp]
                else:
                    unix = await serve_control(director, sock)
                    listener = await serve_http(director, "127.0.0.1", 0)
                    port = listener.sockets[0].getsockname()[1]
                    servers = [unix, listener]
                f = figures.setdefault(mode, {})
                first = await ask("unix", sock, "-")  # the first status (new: renders every real)
                f.setdefault("first status answer ms", []).append(round(first["s"] * 1000, 1))
                f.setdefault("first status loop held ms", []).append(round(first["held"] * 1000, 1))
                await asyncio.sleep(3)
                cpu0, wall0 = time.process_time(), time.monotonic()
                checks0 = sum(director.counters.checks.values())
                await asyncio.sleep(args.quiet)  # nobody asks: the feed (and the new rows' pass) alone
                quiet_cpu = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
                f.setdefault("cpu_percent_nobody_asking", []).append(round(quiet_cpu, 1))
                rate = (sum(director.counters.checks.values()) - checks0) / (time.monotonic() - wall0)
                f.setdefault("results_per_s_fed", []).append(round(rate))
                f.setdefault("rss_growth_while_nobody_asking_mb", []).append(round(_rss_mb() - rss0, 1))
                requests = [("status", "unix", sock, "-"), ("/status.json", "tcp", str(port), "/status.json")]
                requests.append(("/metrics", "tcp", str(port), "/metrics"))
                if mode == "new":
                    requests.append(("/events snapshot", "tcp", str(port), "/events"))
                for name, kind, where, path in requests:
                    for _ in range(args.repeat):
                        got = await ask(kind, where, path)
                        f.setdefault(f"{name} answer ms", []).append(round(got["s"] * 1000, 1))
                        f.setdefault(f"{name} loop held ms", []).append(round(got["held"] * 1000, 1))
                        f.setdefault(f"{name} MB", []).append(round(got["bytes"] / 1e6, 1))
                        await asyncio.sleep(0.3)
                f.setdefault("load", []).append(_load())
                for s in servers:
                    s.close()
                if mode == "new":
                    from lvscheck.daemon.statusrows import rows_of

                    rows = rows_of(director)
                    f.setdefault("longest_slice_ms", []).append(round(rows.longest_slice * 1000, 1))
                    f.setdefault("kept_text_mb", []).append(round(kept_bytes(rows) / 1e6, 1))
                    rows.close()
                    director.view.on_flushed = director._placed  # the next round starts without rows
                    del director.status_rows
        stop.set()
        await feeder
        for f in figures.values():
            for k, v in list(f.items()):
                if k.endswith(" ms") and v:
                    f[k.replace(" ms", " ms median")] = round(statistics.median(v), 1)
        out["figures"] = figures
        out["load_at_end"] = _load()
        return out
    finally:
        client.kill()
        shutil.rmtree(tmp, ignore_errors=True)


async def feed_all(director: Director) -> None:
    """Every real gets a few results first (a history, a latency ring to render)."""
    for rs in director.reals.values():
        if rs.job is None or rs.check is None:
            continue
        for _ in range(3):
            result = Result(
                "connect", rs.check.spec.target, State.UP, 1, "connected", random.uniform(0.0002, 0.004)
            )
            director.on_result(rs.job, result, 0.0)
    await asyncio.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reals", type=int, default=40000)
    ap.add_argument("--rate", type=float, default=0.0, help="results a second (default: reals / 5)")
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds (old new old new)")
    ap.add_argument("--repeat", type=int, default=3, help="requests of each kind per round")
    ap.add_argument("--quiet", type=float, default=10.0, help="seconds with nobody asking, per round")
    args = ap.parse_args()
    args.rate = args.rate or args.reals / 5
    print(json.dumps(asyncio.run(run(args)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
