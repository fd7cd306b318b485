"""Issue 17's scale figures: 20,000 HTTP reals at 2 s and 40,000 at 5 s, and the daemon against a bare loop.

nginx answers for every real (127.0.x.y, one port) and is pinned to one core with
``taskset`` (``--nginx-cpus``, core 1); ``lvscheck daemon --ipvs none`` runs with
``--workers`` (0: one per core it may use) and may use every core.  Two parts:

* **scale** (``--cases 20000@2,40000@5``): for each case, once every real is decided and
  ``--warmup`` s more have passed, ``--seconds`` s are measured: checks/s achieved (the
  daemon's ``lvscheck_checks_total``), start lag p50/p99/max (its last 20,000 checks),
  the busy share of each core (``/proc/stat``: the whole machine, nginx and others
  included), the CPU of the daemon's processes, and the RSS of all of them;
* **ratio** (``--ratio 2000@2``, A B A B ... ``--rounds`` times): the daemon's CPU per HTTP check
  (all its processes) against a bare loop doing the same HTTP GETs on the same schedule:
  one coroutine per real that sleeps its interval, ``open_connection``, sends the check's
  exact request bytes, reads to the end, matches the status line and the ``receive``
  regex, closes (``python bench/scale_20k.py --bare-child ...``, uvloop where installed).
  Goal (issue 17): at most 1.3x.

Run it ``nice -n 10`` and keep the load average it prints beside its figures::

    nice -n 10 .venv/bin/python bench/scale_20k.py [--cases 20000@2,40000@5] [--ratio 2000@2] \\
        [--workers 0] [--seconds 30] [--warmup 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _daemon import Daemon, children, core_jiffies, cpu_seconds, daemon, nginx, rss_mb, write_config

REQUEST = "test.html"
RECEIVE = "Still alive"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="20000@2,40000@5", help="REALS@INTERVAL,... ('' = none)")
    ap.add_argument(
        "--ratio", default="2000@2", help="REALS@INTERVAL of the bare-loop comparison ('' = none)"
    )
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds of the comparison")
    ap.add_argument("--workers", type=int, default=0, help="lvscheck daemon --workers (0: one per core)")
    ap.add_argument("--ratio-workers", default="0,1", help="--workers of the daemons in the comparison")
    ap.add_argument(
        "--base-src",
        metavar="DIR",
        help="also run the daemons of the comparison from DIR/src (git archive main src | tar -x -C DIR)",
    )
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--timeout", type=int, default=10, help="checktimeout of the reals")
    ap.add_argument("--nginx-cpus", default="1")
    ap.add_argument("--daemon-cpus", default="", help="taskset list for the daemon and its workers ('': any)")
    ap.add_argument("--bare-child", nargs=5, metavar=("PORT", "REALS", "INTERVAL", "WARMUP", "SECONDS"))
    args = ap.parse_args()
    if args.bare_child:
        port, reals, interval, warmup, seconds = args.bare_child
        print(json.dumps(bare_child(int(port), int(reals), float(interval), float(warmup), float(seconds))))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop nginx and the daemon on the way out
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    try:
        with nginx(d, cpus=args.nginx_cpus) as port:
            for case in filter(None, args.cases.split(",")):
                reals, interval = _case(case)
                print(json.dumps(scale(args, d, port, reals, interval, args.workers), indent=2), flush=True)
            if args.ratio:
                print(json.dumps(ratio(args, d, port, *_case(args.ratio)), indent=2), flush=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


def _case(text: str) -> tuple[int, float]:
    reals, _, interval = text.partition("@")
    return int(reals), float(interval)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _metric(text: str, name: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


def _checks(run: Daemon) -> float:
    return _metric(run.metrics_text(), "lvscheck_checks_total")


def _config(d: Path, port: int, reals: int, interval: float, timeout: int) -> Path:
    cf = d / f"scale-{reals}.cf"
    write_config(cf, reals, port, interval, "http", timeout=timeout)
    return cf


def scale(
    args: argparse.Namespace, d: Path, port: int, reals: int, interval: float, workers: int
) -> dict[str, Any]:
    """One daemon on ``reals`` reals at ``interval`` s: what it achieved over ``--seconds``."""
    cf = _config(d, port, reals, interval, args.timeout)
    load_start = _load()
    with daemon(d, cf, cpus=args.daemon_cpus, loop=args.loop, workers=workers) as run:
        decided = run.wait_for_socket(300) + run.wait_decided(900)
        time.sleep(args.warmup)
        m = measure(run, args.seconds)
    return {
        "case": f"{reals} http reals at {interval:g} s",
        "workers": workers or len(os.sched_getaffinity(0)),
        "loop": args.loop,
        "every_real_decided_after_s": round(decided, 1),
        "expected_checks_per_s": round(reals / interval, 1),
        **m,
        "rss_kb_per_real": round(m["rss_mb_all_processes"] * 1024 / reals, 2),
        "load_at_start": load_start,
        "load_at_end": _load(),
    }


def measure(run: Daemon, seconds: float) -> dict[str, Any]:
    procs = [run.pid, *children(run.pid)]
    n0 = _checks(run)
    cpu0 = [cpu_seconds(p) for p in procs]
    cores0 = core_jiffies()
    t0 = time.monotonic()
    time.sleep(seconds)
    text = run.metrics_text()
    t1 = time.monotonic()
    cpu1 = [cpu_seconds(p) for p in procs]
    cores1 = core_jiffies()
    n1 = _metric(text, "lvscheck_checks_total")
    checks = n1 - n0
    elapsed = t1 - t0
    cpu = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    rss_each = [round(rss_mb(p)[0], 1) for p in procs]
    rss = sum(rss_each)
    return {
        "measured_s": round(elapsed, 1),
        "checks_per_s": round(checks / elapsed, 1),
        "start_lag_p50_ms": round(1000 * _metric(text, 'lvscheck_start_lag_seconds{quantile="0.5"}'), 1),
        "start_lag_p99_ms": round(1000 * _metric(text, 'lvscheck_start_lag_seconds{quantile="0.99"}'), 1),
        "start_lag_max_ms": round(1000 * _metric(text, "lvscheck_start_lag_max_seconds"), 1),
        "busy_percent_per_core": [
            round(100 * (b1 - b0) / max(1, a1 - a0), 1)
            for (b0, a0), (b1, a1) in zip(cores0, cores1, strict=True)
        ],
        "cpu_percent_per_process": [round(100 * c / elapsed, 1) for c in cpu],  # main first, then workers
        "cpu_ms_per_check": round(1000 * sum(cpu) / max(1.0, checks), 4),
        "processes": len(procs),
        "rss_mb_all_processes": round(rss, 1),
        "rss_mb_per_process": rss_each,  # main first, then workers
    }


def ratio(args: argparse.Namespace, d: Path, port: int, reals: int, interval: float) -> dict[str, Any]:
    """The daemon (each ``--ratio-workers``) against the bare loop, A B A B, CPU per check."""
    cf = _config(d, port, reals, interval, args.timeout)
    rounds: list[dict[str, Any]] = []
    trees = [("", None)] + ([("base ", str(Path(args.base_src).resolve() / "src"))] if args.base_src else [])
    for r in range(args.rounds):
        for w in (int(x) for x in args.ratio_workers.split(",")):
            for name, src in trees:
                with _pythonpath(src), daemon(d, cf, cpus=args.daemon_cpus, loop=args.loop, workers=w) as run:
                    run.wait_for_socket(120)
                    run.wait_decided(300)
                    time.sleep(args.warmup)
                    m = measure(run, args.seconds)
                rounds.append({"round": r + 1, "run": f"{name}daemon --workers {w}", "load": _load(), **m})
                print(json.dumps(rounds[-1]), flush=True)
        rounds.append(
            {"round": r + 1, "run": "bare loop", "load": _load(), **bare(port, reals, interval, args)}
        )
        print(json.dumps(rounds[-1]), flush=True)
    bare_ms = sorted(x["cpu_ms_per_check"] for x in rounds if x["run"] == "bare loop")
    summary: dict[str, Any] = {"bare_loop_cpu_ms_per_check": bare_ms}
    for run_name in dict.fromkeys(x["run"] for x in rounds if x["run"] != "bare loop"):
        mine = sorted(x["cpu_ms_per_check"] for x in rounds if x["run"] == run_name)
        summary[run_name] = {
            "cpu_ms_per_check": mine,
            "ratio_of_medians": round(_median(mine) / _median(bare_ms), 2),
        }
    return {"comparison": f"{reals} http reals at {interval:g} s, {args.loop}", **summary}


@contextlib.contextmanager
def _pythonpath(src: str | None) -> Iterator[None]:
    """The daemon (and its workers, which inherit it) imports lvscheck from ``src`` if given."""
    before = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = src
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def bare(port: int, reals: int, interval: float, args: argparse.Namespace) -> dict[str, Any]:
    """The bare loop in its own process (its CPU is its own ``process_time``)."""
    warm = interval + args.warmup
    cmd = [
        sys.executable,
        __file__,
        "--bare-child",
        str(port),
        str(reals),
        str(interval),
        str(warm),
        str(args.seconds),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=warm + args.seconds + 120)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bare_child(port: int, reals: int, interval: float, warmup: float, seconds: float) -> dict[str, Any]:
    from lvscheck.checks.http import HttpCheck
    from lvscheck.model import CheckSpec, Target

    hosts = [f"127.0.{n // 250 + 1}.{n % 250 + 1}" for n in range(reals)]
    requests = []
    for host in hosts:
        check = HttpCheck.prepare(
            CheckSpec("http", Target(host, port), {"request": REQUEST, "receive": RECEIVE})
        )
        assert isinstance(check, HttpCheck)
        requests.append(check.request)
    receive = re.compile(RECEIVE.encode())
    counts = {"checks": 0, "ok": 0}
    lags: list[float] = []

    async def one(host: str, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + random.uniform(0, interval)
        while True:
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            started = loop.time()
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                data = await reader.read(-1)
            finally:
                writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            ok = head.startswith(b"HTTP/1.1 200 ") and receive.search(body) is not None
            counts["checks"] += 1
            counts["ok"] += ok
            lags.append(max(0.0, started - due))
            due = loop.time() + interval * (1.0 + random.uniform(-0.1, 0.1))

    async def run() -> dict[str, Any]:
        tasks = [asyncio.create_task(one(h, r)) for h, r in zip(hosts, requests, strict=True)]
        await asyncio.sleep(warmup)
        n0, c0, t0 = counts["checks"], time.process_time(), time.monotonic()
        del lags[:]
        await asyncio.sleep(seconds)
        n1, c1, t1 = counts["checks"], time.process_time(), time.monotonic()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tail = sorted(lags)
        return {
            "measured_s": round(t1 - t0, 1),
            "checks_per_s": round((n1 - n0) / (t1 - t0), 1),
            "start_lag_p50_ms": round(1000 * tail[len(tail) // 2], 1) if tail else None,
            "start_lag_p99_ms": round(1000 * tail[int(len(tail) * 0.99)], 1) if tail else None,
            "cpu_ms_per_check": round(1000 * (c1 - c0) / max(1, n1 - n0), 4),
            "ok_share": round(counts["ok"] / max(1, counts["checks"]), 4),
        }

    try:
        import uvloop

        return uvloop.run(run())  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
