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
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

_spec = importlib.util.spec_from_file_location("daemon_10k", Path(__file__).with_name("daemon_10k.py"))
assert _spec is not None
assert _spec.loader is not None
d10k = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(d10k)


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else -1.0


def phases(status: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(v["virtual"], r["real"]): r["state"] for v in status["virtuals"] for r in v["reals"]}


def changed_config(cf: Path, reals: int) -> None:
    """1,000 weights 1 -> 2, the first 500 reals removed, 500 new ones (127.1.x.y) added."""
    lines = cf.read_text().splitlines()
    out: list[str] = []
    seen = reweighted = 0
    for line in lines:
        if line.startswith("\treal="):
            seen += 1
            if seen <= 500:
                continue
            if reweighted < 1000 and seen % 10 == 0:
                line = line.replace(" masq 1", " masq 2")
                reweighted += 1
        out.append(line)
    out.append("virtual=10.201.0.1:80")
    out += [f"\treal=127.1.{i // 250 + 1}.{i % 250 + 1}:{PORT[0]} masq 1" for i in range(500)]
    out += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    cf.write_text("\n".join(out))


PORT = [0]


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
    from lvscheck.daemon.control import query

    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    port = PORT[0] = d10k.free_port()
    (d / "root").mkdir()
    (d / "root" / "test.html").write_text("Still alive\n")
    user = "user root;" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{ listen 0.0.0.0:{port} backlog=4096; allow 127.0.0.0/8; deny all; root {d}/root; }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ng = subprocess.Popen(
        [
            "taskset",
            "-c",
            args.nginx_cpus,
            nginx,
            "-c",
            str(d / "nginx.conf"),
            "-p",
            str(d),
            "-g",
            "daemon off;",
        ]
    )
    cf = d / "bench.cf"
    d10k.write_config(cf, args.reals, port, args.interval, "http")
    # checks slowed down by other load on the machine must not time out and flap: this bench counts
    # the state changes a reload or a dead worker cause, so the timeouts are --timeout (30 s)
    text = cf.read_text().replace("checktimeout=3", f"checktimeout={args.timeout}")
    cf.write_text(text.replace("negotiatetimeout=3", f"negotiatetimeout={args.timeout}"))
    mport = d10k.free_port()
    sock = str(d / "ctl.sock")
    daemon = subprocess.Popen(
        [
            "taskset",
            "-c",
            args.daemon_cpus,
            sys.executable,
            "-m",
            "lvscheck",
            "daemon",
            "--config",
            str(cf),
            "--ipvs",
            "none",
            "--control",
            sock,
            "--metrics",
            f"127.0.0.1:{mport}",
            "--reconcile",
            "0",
            "--max-in-flight",
            "1024",
            "--log-level",
            "warning",
            "--loop",
            args.loop,
            "--workers",
            str(args.workers),
        ],
        stderr=open(d / "daemon.log", "wb"),  # noqa: SIM115
    )
    out: dict[str, Any] = {"reals": args.reals, "interval_s": args.interval, "workers": args.workers}
    try:
        t0 = time.monotonic()
        while True:
            time.sleep(0.5)
            if os.path.exists(sock):
                st = query(sock, timeout=60)
                if all(s != "unknown" for s in phases(st).values()):
                    break
            if time.monotonic() - t0 > 180:
                raise SystemExit("not every real up within 180 s")
        out["all_decided_after_s"] = round(time.monotonic() - t0, 1)
        out["states_before"] = {s: list(phases(st).values()).count(s) for s in set(phases(st).values())}
        time.sleep(args.interval)
        # -- reload ------------------------------------------------------------------------
        st = query(sock, timeout=60)
        before = phases(st)
        out["main_loop_longest_block_before_reload_s"] = st.get("loop", {}).get("longest_s")
        w0, b0 = metric(mport, "lvscheck_ipvs_writes_total"), metric(mport, "lvscheck_ipvs_batches_total")
        changed_config(cf, args.reals)
        sent = time.time()
        daemon.send_signal(signal.SIGHUP)
        while True:
            time.sleep(0.05)
            st = query(sock, timeout=60)
            if st["last_reload"] and st["last_reload"]["time"] >= sent:
                break
        out["reload_applied_s"] = round(st["last_reload"]["time"] - sent, 3)
        out["main_loop_longest_block_s"] = st.get("loop", {}).get("longest_s")
        time.sleep(1.0)
        w1, b1 = metric(mport, "lvscheck_ipvs_writes_total"), metric(mport, "lvscheck_ipvs_batches_total")
        out["reload_ipvs_writes"] = w1 - w0
        out["reload_ipvs_batches"] = b1 - b0
        time.sleep(args.interval)
        st = query(sock, timeout=60)
        after = phases(st)
        kept = set(before) & set(after)
        out["reload_kept_reals"] = len(kept)
        out["reload_kept_reals_that_changed_state"] = sum(before[k] != after[k] for k in kept)
        out["start_lag_after_reload_ms"] = {
            k: round(v * 1000, 1) for k, v in st["start_lag"].items() if k != "count"
        }
        # -- kill -9 -----------------------------------------------------------------------
        workers = d10k.children(daemon.pid)
        before = after
        tr0 = metric(mport, "lvscheck_transitions_total")
        if workers:
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            while True:
                now = d10k.children(daemon.pid)
                if len(now) == len(workers) and victim not in now:
                    break
                time.sleep(0.01)
            out["worker_back_after_s"] = round(time.monotonic() - killed, 2)
            time.sleep(2 * args.interval)
            after = phases(query(sock, timeout=60))
            # reals added by the reload may still be on their first check: only the decided ones count
            decided = [k for k in before if before[k] != "unknown"]
            moved = [f"{before[k]}->{after.get(k)}" for k in decided if before[k] != after.get(k)]
            out["kill9_decided_reals"] = len(decided)
            out["kill9_decided_reals_that_changed_state"] = {m: moved.count(m) for m in set(moved)}
            out["kill9_transitions_any_real"] = metric(mport, "lvscheck_transitions_total") - tr0
        out["load"] = os.getloadavg()
        print(json.dumps(out, indent=2))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        ng.send_signal(signal.SIGQUIT)
        ng.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
