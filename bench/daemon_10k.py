"""10,000 reals at a 2 s interval on one core: checks/s, start lag, CPU, RSS of ``lvscheck daemon``.

One Debian nginx (on core 1) answers for every real: it listens on 0.0.0.0:PORT
and allows only 127.0.0.0/8, and the reals are the loopback addresses
127.0.x.y.  The daemon runs pinned to core 0 with ``--ipvs none`` (checks run,
the IPVS table is not written: those writes are measured in the guest by
``ipvs_writes.py``).  Usage::

    .venv/bin/python bench/daemon_10k.py [--reals 10000] [--interval 2] [--seconds 60] [--check http|connect]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _daemon import (
    Daemon,
    children,
    core_jiffies,
    cpu_seconds,
    daemon,
    nginx,
    nginx_cpu_seconds,
    rss_mb,
    runqueue_wait_s,
    write_config,
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reals", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--check", choices=("http", "connect"), default="http")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--nginx-workers", type=int, default=1)
    ap.add_argument("--nginx-cpus", default="1", help="taskset list for nginx ('' = no pinning)")
    ap.add_argument(
        "--no-metrics",
        action="store_true",
        help="no --metrics endpoint (on main now, --loop uvloop with --metrics stops the daemon at start)",
    )
    ap.add_argument("--workers", type=int, default=1, help="lvscheck daemon --workers (1: in-process)")
    ap.add_argument("--daemon-cpus", default="0", help="taskset list for the daemon and its workers")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    try:
        with (
            nginx(d, workers=args.nginx_workers, cpus=args.nginx_cpus) as port,
            daemon(
                d,
                write_cf(d, args, port),
                cpus=args.daemon_cpus,
                loop=args.loop,
                workers=args.workers,
                metrics=not args.no_metrics,
            ) as run,
        ):
            measure(args, d, run)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


def write_cf(d: Path, args: argparse.Namespace, port: int) -> Path:
    cf = d / "bench.cf"
    write_config(cf, args.reals, port, args.interval, args.check)
    return cf


def measure(args: argparse.Namespace, d: Path, run: Daemon) -> None:
    ready = run.wait_for_socket()
    time.sleep(args.warmup)
    s0 = run.query()
    procs = [run.pid, *children(run.pid)]
    m0 = cpu_seconds(run.pid)
    c0 = sum(cpu_seconds(p) for p in procs)
    w0 = sum(runqueue_wait_s(p) for p in procs)
    cores0 = core_jiffies()
    t0 = time.monotonic()
    time.sleep(args.seconds)
    s1 = run.query()
    m1 = cpu_seconds(run.pid)
    c1 = sum(cpu_seconds(p) for p in procs)
    w1 = sum(runqueue_wait_s(p) for p in procs)
    cores1 = core_jiffies()
    t1 = time.monotonic()
    rss = hwm = 0.0
    for p in procs:
        r, h = rss_mb(p)
        rss, hwm = rss + r, hwm + h
    ng_cpu = nginx_cpu_seconds(d)
    metrics = "" if args.no_metrics else run.metrics_text()
    states: dict[str, int] = {}
    latencies: list[float] = []
    for v in s1["virtuals"]:
        for r in v["reals"]:
            states[r["state"]] = states.get(r["state"], 0) + 1
            if r["latency_ms"] is not None:
                latencies.append(r["latency_ms"])
    latencies.sort()
    checks = s1["checks"] - s0["checks"]
    out = {
        "reals": args.reals,
        "check": args.check,
        "loop": args.loop,
        "interval_s": args.interval,
        "measured_s": round(t1 - t0, 1),
        "startup_to_socket_s": round(ready, 2),
        "checks_per_s": round(checks / (t1 - t0), 1),
        "expected_checks_per_s": round(args.reals / args.interval, 1),
        "workers": args.workers,
        "processes": len(procs),
        "cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 1),
        "cpu_percent_main_process": round(100 * (m1 - m0) / (t1 - t0), 1),
        "busy_percent_per_core": [
            round(100 * (b1 - b0) / max(1, (a1 - a0)), 1)
            for (b0, a0), (b1, a1) in zip(cores0, cores1, strict=True)
        ],
        "runnable_but_waiting_for_cpu_percent": round(100 * (w1 - w0) / (t1 - t0), 1),
        "cpu_ms_per_check": round(1000 * (c1 - c0) / max(1, checks), 3),
        "start_lag_p50_ms": round(s1["start_lag"]["p50"] * 1000, 2),
        "start_lag_p99_ms": round(s1["start_lag"]["p99"] * 1000, 2),
        "start_lag_max_ms": round(s1["start_lag"]["max"] * 1000, 2),
        "check_latency_p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "check_latency_p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "rss_mb": round(rss, 1),
        "rss_kb_per_real": round(rss * 1024 / args.reals, 2),
        "peak_rss_mb": round(hwm, 1),
        "states": states,
        "nginx_cpu_s_total": round(ng_cpu, 1),
        "metrics_bytes": len(metrics),
        "load": os.getloadavg(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
