"""Soak: 100,000 checks in one process; file descriptors and RSS must not grow.

Each batch of 10,000 checks, run through one ``Engine`` with prepared checks reused:
8,500 ``http`` against local nginx (request=/test.html receive='Still alive'),
500 ``https`` against it (verified with the test CA), 500 to a closed port
("connection refused") and 500 to a server that accepts and stalls (timed out
at a 0.1 s deadline; tests/peers/hostile.py).  After each batch the open fds and
the RSS and the number of objects the garbage collector tracks are sampled; the
table is printed and the run fails (exit 1) if the last sample is above the
highest one of the first half (batch 1 excluded: imports, the TLS context) by any
fd, by more than 2 MiB of RSS or by more than 1,000 objects: a leak grows with
every batch, the allocator's high-water mark settles after a few.

    .venv/bin/python bench/soak.py [--batches 10] [--batch 10000] [--concurrency 64]

``bench/soak.py --daemon [...]`` runs the daemon soak instead: healthy and hostile reals
mixed, ten runs with SIGTERM each time (bench/soak_daemon.py has its options).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers import free_port
from tests.peers.hostile import serve
from tests.peers.nginx import start_nginx

from lvscheck import CheckSpec, Engine, Target


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read, never answer; return when the client goes (so this server's fds are not counted)."""
    while await reader.read(65536):
        pass


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    if "--daemon" in sys.argv[1:]:
        import soak_daemon  # bench/ is on sys.path when this file runs as a script

        return soak_daemon.main([a for a in sys.argv[1:] if a != "--daemon"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    n = args.batch
    mix = {"http": n * 85 // 100, "https": n * 5 // 100, "refused": n * 5 // 100}
    mix["timeout"] = n - sum(mix.values())

    with (
        tempfile.TemporaryDirectory(prefix="lvscheck-soak-") as tmp,
        start_nginx(Path(tmp) / "nginx") as ng,
        serve(stall) as stall_port,
    ):
        seed = {"request": "/test.html", "receive": "Still alive"}
        tls = {**seed, "cafile": str(ng.cafile)}
        short = {**seed, "negotiatetimeout": "0.1"}
        specs = {
            "http": CheckSpec("http", Target("127.0.0.1", ng.http_port), seed),
            "https": CheckSpec("https", Target("127.0.0.1", ng.https_port), tls),
            "refused": CheckSpec("connect", Target("127.0.0.1", free_port())),
            "timeout": CheckSpec("http", Target("127.0.0.1", stall_port), short),
        }
        expect = {"http": "up", "https": "up", "refused": "down", "timeout": "down"}

        async def soak() -> list[tuple[int, int, int, int, float, Counter[str]]]:
            engine = Engine(max_in_flight=args.concurrency, per_host=args.concurrency)
            prepared = {k: engine.prepare(s) for k, s in specs.items()}
            batch = [prepared[k] for k, count in mix.items() for _ in range(count)]
            kinds = [k for k, count in mix.items() for _ in range(count)]
            rows = []
            done = 0
            for _ in range(args.batches):
                t0 = time.perf_counter()
                results = await engine.run_many(batch)
                elapsed = time.perf_counter() - t0
                wrong: Counter[str] = Counter(
                    f"{k}: {r.reason}"
                    for k, r in zip(kinds, results, strict=True)
                    if r.state.value != expect[k]
                )
                done += len(results)
                del results
                await asyncio.sleep(0.05)  # abort() closes the socket on the next loop turn
                gc.collect()
                rows.append((done, fds(), rss_kib(), len(gc.get_objects()), elapsed, wrong))
            return rows

        print(
            f"soak: {args.batches} x {n} checks ({', '.join(f'{v} {k}' for k, v in mix.items())}), "
            f"concurrency {args.concurrency}, load {os.getloadavg()[0]:.2f}"
        )
        print(f"before: fds {fds()}, RSS {rss_kib()} KiB")
        rows = asyncio.run(soak())
        print(f"{'checks':>8} {'fds':>5} {'RSS KiB':>8} {'objects':>8} {'s/batch':>8}  unexpected results")
        for done, nfd, rss, objects, elapsed, wrong in rows:
            print(f"{done:8d} {nfd:5d} {rss:8d} {objects:8d} {elapsed:8.2f}  {dict(wrong) or '-'}")
        # A leak grows with every batch; the allocator's high-water mark settles after a few.
        # So: the last sample against the highest one of the first half (after batch 1).
        half = rows[1 : max(2, len(rows) // 2)]
        last = rows[-1]
        fd_growth = last[1] - max(r[1] for r in half)
        rss_growth = last[2] - max(r[2] for r in half)
        obj_growth = last[3] - max(r[3] for r in half)
        print(
            f"last sample vs the first half's highest: fds {fd_growth:+d}, RSS {rss_growth:+d} KiB, "
            f"gc objects {obj_growth:+d}"
        )
        print(f"load after: {os.getloadavg()[0]:.2f}")
        bad = any(row[5] for row in rows)
        return 1 if fd_growth > 0 or rss_growth > 2048 or obj_growth > 1000 or bad else 0


if __name__ == "__main__":
    sys.exit(main())
