"""Check workers at scale: a reload of 40,000 reals and a worker killed with -9, under load.

Starts nginx (pinned, as in ``daemon_10k.py``) and ``lvscheck daemon --workers N
--ipvs none`` with REALS HTTP reals at INTERVAL s, waits for every real to be up,
then:

* **reload**: rewrites the config with 1,000 weights changed, 500 reals removed
  and 500 added, sends SIGHUP, and reports the time until the reload was applied,
  the IPVS writes and batches it caused, the start lag of the checks around it,
  and how many of the untouched reals changed state (must be 0);
* **kill -9**: kills one worker, reports the time until it is back and whether any
  real changed state (transitions counted by the daemon: must be 0).

Usage::

    .venv/bin/python bench/workers_scale.py [--reals 40000] [--interval 5] [--workers 2] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _daemon import changed_config, children, daemon, nginx, phases, write_config


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reals", type=int, default=40000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    ap.add_argument("--nginx-cpus", default="1")
    ap.add_argument("--timeout", type=int, default=30, help="checktimeout (30: a busy machine must not flap)")
    ap.add_argument("--daemon-cpus", default="0,1")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop nginx and the daemon on the way out
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    try:
        with nginx(d, cpus=args.nginx_cpus) as port:
            cf = d / "bench.cf"
            # checks slowed down by other load on the machine must not time out and flap: this bench
            # counts the state changes a reload or a dead worker cause, so the timeouts are --timeout
            write_config(cf, args.reals, port, args.interval, "http", timeout=args.timeout)
            with daemon(d, cf, cpus=args.daemon_cpus, loop=args.loop, workers=args.workers) as run:
                print(json.dumps(measure(args, cf, port, run), indent=2))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


def measure(args: argparse.Namespace, cf: Path, port: int, run: Any) -> dict[str, Any]:
    daemon_proc = run.proc
    out: dict[str, Any] = {"reals": args.reals, "interval_s": args.interval, "workers": args.workers}
    t0 = time.monotonic()
    while True:
        time.sleep(0.5)
        if run.sock.exists():
            st = run.query()
            if all(s != "unknown" for s in phases(st).values()):
                break
        if time.monotonic() - t0 > 180:
            raise SystemExit("not every real up within 180 s")
    out["all_decided_after_s"] = round(time.monotonic() - t0, 1)
    out["states_before"] = {s: list(phases(st).values()).count(s) for s in set(phases(st).values())}
    time.sleep(args.interval)
    # -- reload ------------------------------------------------------------------------
    st = run.query()
    before = phases(st)
    out["main_loop_longest_block_before_reload_s"] = st.get("loop", {}).get("longest_s")
    w0, b0 = run.metric("lvscheck_ipvs_writes_total"), run.metric("lvscheck_ipvs_batches_total")
    changed_config(cf, port)
    sent = time.time()
    daemon_proc.send_signal(signal.SIGHUP)
    while True:
        time.sleep(0.05)
        st = run.query()
        if st["last_reload"] and st["last_reload"]["time"] >= sent:
            break
    out["reload_applied_s"] = round(st["last_reload"]["time"] - sent, 3)
    out["main_loop_longest_block_s"] = st.get("loop", {}).get("longest_s")
    time.sleep(1.0)
    w1, b1 = run.metric("lvscheck_ipvs_writes_total"), run.metric("lvscheck_ipvs_batches_total")
    out["reload_ipvs_writes"] = w1 - w0
    out["reload_ipvs_batches"] = b1 - b0
    time.sleep(args.interval)
    st = run.query()
    after = phases(st)
    kept = set(before) & set(after)
    out["reload_kept_reals"] = len(kept)
    out["reload_kept_reals_that_changed_state"] = sum(before[k] != after[k] for k in kept)
    out["start_lag_after_reload_ms"] = {
        k: round(v * 1000, 1) for k, v in st["start_lag"].items() if k != "count"
    }
    # -- kill -9 -----------------------------------------------------------------------
    workers = children(daemon_proc.pid)
    before = after
    tr0 = run.metric("lvscheck_transitions_total")
    if workers:
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while True:
            now = children(daemon_proc.pid)
            if len(now) == len(workers) and victim not in now:
                break
            time.sleep(0.01)
        out["worker_back_after_s"] = round(time.monotonic() - killed, 2)
        time.sleep(2 * args.interval)
        after = phases(run.query())
        # reals added by the reload may still be on their first check: only the decided ones count
        decided = [k for k in before if before[k] != "unknown"]
        moved = [f"{before[k]}->{after.get(k)}" for k in decided if before[k] != after.get(k)]
        out["kill9_decided_reals"] = len(decided)
        out["kill9_decided_reals_that_changed_state"] = {m: moved.count(m) for m in set(moved)}
        out["kill9_transitions_any_real"] = run.metric("lvscheck_transitions_total") - tr0
    out["load"] = os.getloadavg()
    return out


if __name__ == "__main__":
    sys.exit(main())
