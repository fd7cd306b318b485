"""A reload of 40,000 HTTP reals under load: time to apply, the IPVS batch, loop blocks, start lag, status.

Issue 17 part 3 and issue 18 part 4.  nginx (pinned to ``--nginx-cpus``) answers for every
real; ``lvscheck daemon --ipvs none`` (``_daemon.py``) checks REALS reals every INTERVAL s.
Once every real is decided, two reloads (SIGHUP):

* **A**: 1,000 weights changed, 500 reals removed, 500 added (``_daemon.changed_config``),
  while the daemon's cheap ``ready`` request is asked every 50 ms (to see that it answers);
* **B**: back to the first file (the same amount of change the other way), while the
  full ``status`` document is asked every 50 ms: its answer time during a reload.  The
  document of 40,000 reals is itself built on the loop, so the longest loop block of A
  is the reload's alone and that of B includes the status requests.

For each: seconds from SIGHUP to applied, the install's IPVS writes and batches (with
``--ipvs none`` the writes go to the in-memory table: this counts the batch the kernel
view hands to the writer, on the host, not a kernel's work; ``ipvs_writes.py`` times
kernel writes in the guest), its slices, the longest block of the main loop during it
(``LoopWatch``), start lag p50/p99 of the last 20,000 checks when it was applied, and how
many kept reals changed state (must be 0).  Also the first start: seconds until every real
is decided and the longest block of the main loop by then.

Beside each: the main thread's CPU seconds and its seconds *runnable but waiting for a
core* (``/proc/PID/task/PID/schedstat``) over the same span.  The loop watch measures wall
time, so on a loaded machine a block is the loop's own work plus the time the kernel gave
the core to others; the wait says how much of the latter there was.

    .venv/bin/python bench/reload_40k.py [--reals 40000] [--interval 5] [--workers 2] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _daemon import Daemon, changed_config, daemon, main_thread_sched, nginx, phases, write_config


def poll(d: Daemon, request: str, stop: threading.Event, into: list[float]) -> None:
    while not stop.is_set():
        seconds, _ = d.timed(request)
        into.append(seconds)
        stop.wait(0.05)


def quantiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def reload(d: Daemon, cf: Path, text: str, request: str) -> dict[str, Any]:
    before = phases(d.query())
    w0, b0 = d.metric("lvscheck_ipvs_writes_total"), d.metric("lvscheck_ipvs_batches_total")
    r0 = d.query("ready")["reloads"]
    cf.write_text(text)
    cpu0, wait0 = main_thread_sched(d.pid)
    answers: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(d, request, stop, answers))
    sent = time.time()
    d.proc.send_signal(signal.SIGHUP)
    poller.start()
    try:
        while d.query("ready")["reloads"] <= r0:  # cheap, unlike status and /metrics (per real)
            time.sleep(0.1)
    finally:
        stop.set()
        poller.join()
    applied = time.time()
    cpu1, wait1 = main_thread_sched(d.pid)
    time.sleep(0.5)  # the loop watch's window closes 0.15 s after the install
    st = d.query()
    last = st["last_reload"]
    after = phases(st)
    kept = set(before) & set(after)
    return {
        "applied_after_sighup_s": round(last["time"] - sent, 3),
        "reload_seconds_in_daemon": last.get("seconds"),
        "kept_added_removed": [last.get("kept"), last.get("added"), last.get("removed")],
        "ipvs_writes_in_the_install_batch": last.get("ipvs_writes"),
        "ipvs_writes_metric": d.metric("lvscheck_ipvs_writes_total") - w0,
        "ipvs_batches_metric": d.metric("lvscheck_ipvs_batches_total") - b0,
        "slices": last.get("slices"),
        "longest_slice_ms": last.get("longest_slice_ms"),
        "longest_slice_cpu_ms": last.get("longest_slice_cpu_ms"),
        "main_loop_longest_block_ms": last.get("loop_longest_block_ms"),
        "main_thread_cpu_s": round(cpu1 - cpu0, 2),
        "main_thread_waiting_for_a_core_s": round(wait1 - wait0, 2),
        "start_lag_last_20000_checks_ms": {
            k: round(v * 1000, 1) for k, v in st["start_lag"].items() if k != "count"
        },
        f"{request}_answer_during_reload": quantiles(answers),
        "kept_reals_that_changed_state": sum(before[k] != after[k] for k in kept),
        "poll_seconds": round(applied - sent, 2),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reals", type=int, default=40000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    ap.add_argument("--nginx-cpus", default="1")
    ap.add_argument("--daemon-cpus", default="0,1")
    ap.add_argument("--timeout", type=int, default=30, help="checktimeout (30: a busy machine must not flap)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop nginx and the daemon on the way out
    tmp = Path(tempfile.mkdtemp(prefix="lvscheck-bench-reload-"))
    out: dict[str, Any] = {
        "reals": args.reals,
        "interval_s": args.interval,
        "workers": args.workers,
        "loop": args.loop,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with nginx(tmp, cpus=args.nginx_cpus) as port:
            cf = tmp / "bench.cf"
            write_config(cf, args.reals, port, args.interval, "http", timeout=args.timeout)
            first = cf.read_text()
            changed_config(cf, port)
            second = cf.read_text()
            cf.write_text(first)
            with daemon(tmp, cf, cpus=args.daemon_cpus, loop=args.loop, workers=args.workers) as d:
                t0 = time.monotonic()
                d.wait_for_socket()
                d.wait_decided(timeout=600)
                cpu, wait = main_thread_sched(d.pid)
                st = d.query()
                out["start"] = {
                    "every_real_decided_after_s": round(time.monotonic() - t0, 1),
                    "main_loop_longest_block_ms": round(st["loop"]["longest_s"] * 1000, 1),
                    "main_thread_cpu_s": round(cpu, 2),
                    "main_thread_waiting_for_a_core_s": round(wait, 2),
                    "start_lag_last_20000_checks_ms": {
                        k: round(v * 1000, 1) for k, v in st["start_lag"].items() if k != "count"
                    },
                    "load": [round(x, 2) for x in os.getloadavg()],
                }
                time.sleep(args.interval)
                out["status_answer_quiet"] = quantiles([d.timed("status")[0] for _ in range(5)])
                out["ready_answer_quiet"] = quantiles([d.timed("ready")[0] for _ in range(5)])
                out["reload_A_polling_ready"] = reload(d, cf, second, "ready")
                time.sleep(args.interval)
                out["reload_B_polling_status"] = reload(d, cf, first, "status")
        out["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
