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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, reals: int, port: int, interval: float, check: str) -> None:
    per_virtual = 100
    lines = [
        f"checkinterval={int(interval)}",
        "checktimeout=3",
        "negotiatetimeout=3",
        "failurecount=3",
        "quiescent=yes",
        f"#lvscheck: interval={interval} jitter=0.1 rise=2",
        "",
    ]
    n = 0
    v = 0
    while n < reals:
        lines.append(f"virtual=10.200.{v // 250}.{v % 250 + 1}:80")
        for _ in range(min(per_virtual, reals - n)):
            host = f"127.0.{n // 250 + 1}.{n % 250 + 1}"
            lines.append(f"\treal={host}:{port} masq 1")
            n += 1
        if check == "http":
            lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"']
        else:
            lines.append("\tchecktype=connect")
        lines.append("")
        v += 1
    path.write_text("\n".join(lines))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_wait_s(pid: int) -> float:
    """Seconds the daemon's threads were runnable but waiting for a CPU (other load on the core)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def children(pid: int) -> list[int]:
    """The daemon's check workers (its direct children)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def core_jiffies() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core, from /proc/stat (the whole machine: others' load included)."""
    rows = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            vals = [int(v) for v in line.split()[1:]]
            idle = vals[3] + vals[4]
            rows.append((sum(vals) - idle, sum(vals)))
    return rows


def rss_mb(pid: int) -> tuple[float, float]:
    info = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(info["VmRSS"].split()[0]) / 1024, int(info["VmHWM"].split()[0]) / 1024


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
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    port = free_port()
    (d / "root").mkdir()
    (d / "root" / "test.html").write_text("Still alive\n")
    user = "user root;" if os.geteuid() == 0 else ""
    workers = args.nginx_workers
    (d / "nginx.conf").write_text(f"""
{user}
worker_processes {workers};
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
    pin = ["taskset", "-c", args.nginx_cpus] if args.nginx_cpus else []
    ng = subprocess.Popen([*pin, nginx, "-c", str(d / "nginx.conf"), "-p", str(d), "-g", "daemon off;"])
    cf = d / "bench.cf"
    write_config(cf, args.reals, port, args.interval, args.check)
    mport = free_port()
    sock = d / "ctl.sock"
    time.sleep(0.5)
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
            str(sock),
            *([] if args.no_metrics else ["--metrics", f"127.0.0.1:{mport}"]),
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
    from lvscheck.daemon.control import query

    try:
        started = time.monotonic()
        while not sock.exists():
            time.sleep(0.1)
        ready = time.monotonic() - started
        time.sleep(args.warmup)
        s0 = query(str(sock), timeout=60)
        procs = [daemon.pid, *children(daemon.pid)]
        m0 = cpu_seconds(daemon.pid)
        c0 = sum(cpu_seconds(p) for p in procs)
        w0 = sum(runqueue_wait_s(p) for p in procs)
        cores0 = core_jiffies()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        s1 = query(str(sock), timeout=60)
        m1 = cpu_seconds(daemon.pid)
        c1 = sum(cpu_seconds(p) for p in procs)
        w1 = sum(runqueue_wait_s(p) for p in procs)
        cores1 = core_jiffies()
        t1 = time.monotonic()
        rss = hwm = 0.0
        for p in procs:
            r, h = rss_mb(p)
            rss, hwm = rss + r, hwm + h
        ng_cpu = sum(
            cpu_seconds(int(p))
            for p in subprocess.run(
                ["pgrep", "-f", str(d / "nginx.conf")], capture_output=True, text=True
            ).stdout.split()
        )
        metrics = (
            ""
            if args.no_metrics
            else urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
        )
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
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        ng.send_signal(signal.SIGQUIT)
        ng.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
