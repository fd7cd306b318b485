"""What the daemon benchmarks share: nginx as the reals, ``lvscheck daemon`` as a process, /proc readings.

* :func:`write_config`: N HTTP (or connect) reals on 127.0.x.y, 100 per virtual;
* :func:`nginx`: Debian nginx answering for all of them (listens on 0.0.0.0:PORT, allows
  only 127.0.0.0/8), pinned with ``taskset``;
* :func:`daemon`: ``lvscheck daemon --ipvs none`` (checks run, the IPVS table is kept
  in memory: the writes are counted, not made), its control socket and metrics port;
* :func:`cpu_seconds`, :func:`rss_mb`, :func:`children`, :func:`core_jiffies`,
  :func:`runqueue_wait_s`, :func:`main_thread_sched`: readings from /proc.

Scripts run as ``python bench/NAME.py``, so this directory is on ``sys.path`` and
``import _daemon`` finds this file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Daemon",
    "changed_config",
    "children",
    "core_jiffies",
    "cpu_seconds",
    "daemon",
    "free_port",
    "main_thread_sched",
    "nginx",
    "nginx_cpu_seconds",
    "phases",
    "rss_mb",
    "runqueue_wait_s",
    "write_config",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, reals: int, port: int, interval: float, check: str, timeout: int = 3) -> None:
    """``reals`` reals, 100 per virtual (10.200.x.y:80), every one 127.0.x.y:``port``."""
    per_virtual = 100
    lines = [
        f"checkinterval={int(interval)}",
        f"checktimeout={timeout}",
        f"negotiatetimeout={timeout}",
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


@contextlib.contextmanager
def nginx(d: Path, workers: int = 1, cpus: str = "1", servers: str = "") -> Iterator[int]:
    """nginx serving ``/test.html`` ("Still alive") from ``d``; yields its port (``cpus``: taskset list).

    ``servers``: more ``server { ... }`` blocks for its ``http`` section (e.g. a ``stub_status``)."""
    port = free_port()
    (d / "root").mkdir(exist_ok=True)
    (d / "root" / "test.html").write_text("Still alive\n")
    user = "user root;" if os.geteuid() == 0 else ""
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
    {servers}
}}
""")
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    pin = ["taskset", "-c", cpus] if cpus else []
    ng = subprocess.Popen([*pin, binary, "-c", str(d / "nginx.conf"), "-p", str(d), "-g", "daemon off;"])
    try:
        time.sleep(0.5)
        yield port
    finally:
        ng.send_signal(signal.SIGQUIT)
        ng.wait(10)


def nginx_cpu_seconds(d: Path) -> float:
    """CPU of the nginx processes started by :func:`nginx` in ``d``."""
    pids = subprocess.run(["pgrep", "-f", str(d / "nginx.conf")], capture_output=True, text=True).stdout
    return sum(cpu_seconds(int(p)) for p in pids.split())


@dataclass
class Daemon:
    """A running ``lvscheck daemon``: its process, control socket and metrics port (0: none)."""

    proc: subprocess.Popen[bytes]
    sock: Path
    metrics_port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def query(self, request: str = "status", timeout: float = 60) -> dict[str, Any]:
        from lvscheck.daemon.control import query

        return query(str(self.sock), request, timeout=timeout)

    def timed(self, request: str = "status") -> tuple[float, dict[str, Any]]:
        """Seconds the daemon took to answer ``request`` on its control socket, and the answer."""
        t0 = time.perf_counter()
        answer = self.query(request)
        return time.perf_counter() - t0, answer

    def metric(self, name: str) -> float:
        text = self.metrics_text()
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else -1.0

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return str(urllib.request.urlopen(url, timeout=30).read().decode())

    def wait_for_socket(self, timeout: float = 120) -> float:
        """Seconds until the control socket exists."""
        t0 = time.monotonic()
        while not self.sock.exists():
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited with {self.proc.returncode}")
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"no control socket within {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - t0

    def wait_decided(self, timeout: float = 300) -> float:
        """Seconds until every real is decided (the daemon's ``ready``)."""
        t0 = time.monotonic()
        while not self.query("ready").get("ready"):
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"not every real decided within {timeout} s")
            time.sleep(0.5)
        return time.monotonic() - t0


@contextlib.contextmanager
def daemon(
    d: Path,
    config: Path,
    *,
    cpus: str = "0",
    loop: str = "asyncio",
    workers: int = 1,
    metrics: bool = True,
    extra: Sequence[str] = (),
) -> Iterator[Daemon]:
    """``lvscheck daemon --ipvs none`` on ``config`` (pinned to ``cpus``); stopped with SIGTERM at exit."""
    mport = free_port() if metrics else 0
    sock = d / "ctl.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    proc = subprocess.Popen(
        [
            *(["taskset", "-c", cpus] if cpus else []),
            sys.executable,
            "-m",
            "lvscheck",
            "daemon",
            "--config",
            str(config),
            "--ipvs",
            "none",
            "--control",
            str(sock),
            *(["--metrics", f"127.0.0.1:{mport}"] if metrics else []),
            "--reconcile",
            "0",
            "--max-in-flight",
            "1024",
            "--log-level",
            "warning",
            "--loop",
            loop,
            "--workers",
            str(workers),
            *extra,
        ],
        stderr=open(d / "daemon.log", "wb"),  # noqa: SIM115
    )
    try:
        yield Daemon(proc, sock, mport)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_wait_s(pid: int) -> float:
    """Seconds the daemon's threads were runnable but waiting for a CPU (other load on the core)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def main_thread_sched(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of the process's main thread:
    how much of a wall-clock loop block was the loop's own work and how much other load."""
    run_ns, wait_ns = (int(v) for v in Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2])
    return run_ns / 1e9, wait_ns / 1e9


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


def changed_config(cf: Path, port: int) -> None:
    """The reload of issue 17: 1,000 weights 1 -> 2, the first 500 reals removed, 500 new ones
    (127.1.x.y, in a new virtual 10.201.0.1:80) added."""
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
    out += [f"\treal=127.1.{i // 250 + 1}.{i % 250 + 1}:{port} masq 1" for i in range(500)]
    out += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    cf.write_text("\n".join(out))


def phases(status: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(virtual, real) -> state, from a status document."""
    return {(v["virtual"], r["real"]): r["state"] for v in status["virtuals"] for r in v["reals"]}
