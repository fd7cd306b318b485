"""CPU and syscalls per HTTP check: ``lvscheck daemon`` against keepalived's checker, in the IPVS guest.

Runs itself inside ``/work/shared/ipvs-guest/run-in-ipvs-guest`` (one vCPU, its own
kernel and IPVS table) when started on the host.  In the guest:

* N guest-local reals: the addresses 10.201.x.y on a dummy interface, all served by one
  Debian nginx (one worker) on port 8080, ``/test.html`` = "Still alive"; every request
  is one line of nginx's access log, so the log counts the checks both checkers did;
* keepalived (``keepalived -n -C``: a parent and its checker child) with one
  ``HTTP_GET`` per real (``status_code 200``, ``regex "Still alive"``, HTTP/1.1) and
  ``lvscheck daemon`` on the equivalent ldirectord.cf (``service=http``,
  ``request="test.html"``, ``receive="Still alive"``), both writing the guest's IPVS
  table; the check interval is N / ``--rate`` s for both, so both do the same checks/s;
* each runs alone for ``--seconds`` after a warm-up, A B C A B C (keepalived, lvscheck
  with each ``--loop``); CPU is utime+stime from ``/proc/PID/stat`` of every process of
  each (keepalived's parent and checker, the daemon and its threads) divided by the
  checks nginx logged in the same window;
* then once each under ``strace -c -f`` (strace slows the traced process: these runs
  count syscalls, their CPU is not used).

The guest makes every syscall expensive (UML runs on ptrace): compare the two checkers
only within one run.  Usage::

    .venv/bin/python bench/keepalived_compare.py [--reals 100,1000] [--rate 100] [--seconds 30]
        [--rounds 2] [--loops uvloop,asyncio] [--strace-seconds 15] [--mem 1536M] [--base-src DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

GUEST = Path("/work/shared/ipvs-guest/run-in-ipvs-guest")
NGINX_PORT = 8080
PER_VIRTUAL = 100


def in_guest() -> bool:
    return Path("/proc/net/ip_vs").exists()


def real_address(n: int) -> str:
    return f"10.201.{n // 250}.{n % 250 + 1}"


def virtuals(reals: int) -> Iterator[tuple[str, list[str]]]:
    for v in range(0, reals, PER_VIRTUAL):
        yield (
            f"10.200.0.{v // PER_VIRTUAL + 1}",
            [real_address(n) for n in range(v, min(reals, v + PER_VIRTUAL))],
        )


def keepalived_conf(reals: int, interval: int) -> str:
    out = ["global_defs {", "    router_id kacompare", "}"]
    for vip, rips in virtuals(reals):
        out += [
            f"virtual_server {vip} 80 {{",
            f"    delay_loop {interval}",
            "    lb_algo wlc",
            "    lb_kind NAT",
            "    protocol TCP",
        ]
        for rip in rips:
            out += [
                f"    real_server {rip} {NGINX_PORT} {{",
                "        weight 1",
                "        HTTP_GET {",
                "            url {",
                "                path /test.html",
                "                status_code 200",
                '                regex "Still alive"',
                "            }",
                "            http_protocol 1.1",
                "            connect_timeout 3",
                "            retry 3",
                "        }",
                "    }",
            ]
        out.append("}")
    return "\n".join(out) + "\n"


def ldirectord_cf(reals: int, interval: int) -> str:
    out = [
        f"checkinterval={interval}",
        "checktimeout=3",
        "negotiatetimeout=3",
        "failurecount=3",
        "quiescent=yes",
        "",
    ]
    for vip, rips in virtuals(reals):
        out.append(f"virtual={vip}:80")
        out += [f"\treal={rip}:{NGINX_PORT} masq 1" for rip in rips]
        out += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', "\tscheduler=wlc", ""]
    return "\n".join(out)


def nginx_conf(d: Path) -> str:
    return f"""
user root;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log error;
events {{ worker_connections 8192; }}
http {{
    log_format one '$remote_addr $http_user_agent';
    access_log {d}/access.log one;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{ listen 0.0.0.0:{NGINX_PORT} backlog=4096; root {d}/root; }}
}}
"""


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (keepalived's checker child; lvscheck's workers, if any)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += parents.get(p, [])
    return tree


class AccessLog:
    """Counts the lines nginx appended to its access log: one per check."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> int:
        with open(self.path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


@dataclass
class Sample:
    name: str
    reals: int
    cpu_s: float
    checks: int
    seconds: float
    load: float
    syscalls: dict[str, int] = field(default_factory=dict)

    @property
    def ms_per_check(self) -> float:
        return self.cpu_s / max(1, self.checks) * 1e3


@dataclass
class Setup:
    dir: Path
    python: str
    interval: int
    reals: int

    base_src: str = ""

    def command(self, name: str) -> list[str]:
        d = self.dir
        if name == "keepalived":
            return [
                "keepalived", "-n", "-C", "-l", "-G", "-f", str(d / "keepalived.conf"),
                "-p", str(d / "ka.pid"), "-c", str(d / "ka-check.pid"), "-r", str(d / "ka-vrrp.pid"),
            ]  # fmt: skip
        loop = name.rsplit("-", 1)[1]
        return [
            self.python, "-m", "lvscheck", "daemon", "--config", str(d / "ldirectord.cf"),
            "--control", "", "--state-dir", str(d / "state"), "--reconcile", "0", "--logfile", "none",
            "--log-level", "warning", "--loop", loop,
        ]  # fmt: skip


def start(setup: Setup, name: str) -> subprocess.Popen[bytes]:
    log = open(setup.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    env = dict(os.environ)
    if name.startswith("base-"):  # lvscheck from another source tree (the code before a change)
        env["PYTHONPATH"] = setup.base_src
    return subprocess.Popen(setup.command(name), stdout=log, stderr=log, start_new_session=True, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    subprocess.run(["ipvsadm", "-C"], check=False)


def warm_up(setup: Setup, log: AccessLog, proc: subprocess.Popen[bytes]) -> None:
    """Until every real had a check (the first ones are spread over an interval), and 2 s more."""
    before = log.lines()
    deadline = time.monotonic() + 120 + 3 * setup.interval
    while log.lines() - before < setup.reals:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}: see {setup.dir}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{proc.args[0]}: not every real checked after the warm-up: see {setup.dir}")
        time.sleep(0.5)
    time.sleep(2)


def measure(setup: Setup, name: str, log: AccessLog, seconds: float) -> Sample:
    proc = start(setup, name)
    try:
        warm_up(setup, log, proc)
        pids = process_tree(proc.pid)
        c0, n0, t0 = sum(cpu_ticks(p) for p in pids), log.lines(), time.monotonic()
        time.sleep(seconds)
        c1, n1, t1 = sum(cpu_ticks(p) for p in pids), log.lines(), time.monotonic()
        load = os.getloadavg()[0]
    finally:
        stop(proc)
    cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK")
    return Sample(name, setup.reals, cpu, n1 - n0, t1 - t0, load)


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def count_syscalls(setup: Setup, name: str, log: AccessLog, seconds: float) -> Sample:
    proc = start(setup, name)
    out = setup.dir / f"strace-{name}-{setup.reals}.txt"
    try:
        warm_up(setup, log, proc)
        pids = process_tree(proc.pid)
        attach = [a for p in pids for a in ("-p", str(p))]
        n0, t0 = log.lines(), time.monotonic()
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), *attach])
        time.sleep(seconds)
        tracer.send_signal(signal.SIGINT)
        n1, t1 = log.lines(), time.monotonic()
        tracer.wait(60)
        load = os.getloadavg()[0]
    finally:
        stop(proc)
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        if (m := _STRACE_ROW.match(line)) and m[2] != "total":
            calls[m[2]] = int(m[1])
    return Sample(name, setup.reals, 0.0, n1 - n0, t1 - t0, load, calls)


def guest_main(args: argparse.Namespace) -> int:
    d = Path(tempfile.mkdtemp(prefix="kacompare-", dir=args.workdir))
    (d / "root").mkdir()
    (d / "root" / "test.html").write_text("Still alive\n")
    (d / "state").mkdir()
    sizes = [int(n) for n in args.reals.split(",")]
    top = max(sizes)
    subprocess.run(["ip", "link", "add", "kab0", "type", "dummy"], check=True)
    subprocess.run(["ip", "link", "set", "kab0", "up"], check=True)
    batch = "".join(f"addr add {real_address(n)}/32 dev kab0\n" for n in range(top))
    subprocess.run(["ip", "-batch", "-"], input=batch.encode(), check=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (d / "nginx.conf").write_text(nginx_conf(d))
    (d / "access.log").touch()
    ng = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d), "-g", "daemon off;"])
    time.sleep(1)
    log = AccessLog(d / "access.log")
    names = ["keepalived", *(f"lvscheck-{loop}" for loop in args.loops.split(","))]
    if args.base_src:
        names += [f"base-{loop}" for loop in args.loops.split(",")]
    results: list[Sample] = []
    straced: list[Sample] = []
    print(f"guest: {os.cpu_count()} CPU, load {os.getloadavg()[0]:.2f}, dir {d}", flush=True)
    try:
        for reals in sizes:
            interval = max(1, round(reals / args.rate))
            setup = Setup(d, args.python, interval, reals, args.base_src)
            (d / "keepalived.conf").write_text(keepalived_conf(reals, interval))
            (d / "ldirectord.cf").write_text(ldirectord_cf(reals, interval))
            print(f"\nN={reals} reals, interval {interval} s ({reals / interval:.0f} checks/s)", flush=True)
            for rnd in range(args.rounds):
                for name in names:
                    s = measure(setup, name, log, args.seconds)
                    results.append(s)
                    print(
                        f"  round {rnd + 1} {name:18} {s.checks:6d} checks {s.checks / s.seconds:6.1f}/s"
                        f"  CPU {s.cpu_s:6.2f} s  {s.ms_per_check:6.3f} ms/check  guest load {s.load:.2f}",
                        flush=True,
                    )
            if args.strace_seconds > 0:  # after the timed runs: the same config, traced once each
                for name in names:
                    s = count_syscalls(setup, name, log, args.strace_seconds)
                    straced.append(s)
                    total = sum(s.syscalls.values())
                    per = {k: v / max(1, s.checks) for k, v in s.syscalls.items()}
                    shown = ", ".join(
                        f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:14]
                    )
                    per_check = total / max(1, s.checks)
                    print(
                        f"  strace {name:18} {s.checks:6d} checks, {per_check:6.1f} syscalls/check: {shown}",
                        flush=True,
                    )
        print("\nsummary (median of rounds):")
        for reals in sizes:
            ka = statistics.median(
                [s.ms_per_check for s in results if s.reals == reals and s.name == "keepalived"]
            )
            for name in names:
                mine = statistics.median(
                    [s.ms_per_check for s in results if s.reals == reals and s.name == name]
                )
                sys_per = [
                    sum(s.syscalls.values()) / max(1, s.checks)
                    for s in straced
                    if s.reals == reals and s.name == name
                ]
                sc = f"{sys_per[0]:.1f}" if sys_per else "-"
                print(
                    f"  N={reals:5d} {name:18} {mine:6.3f} ms/check  {mine / ka:5.2f}x keepalived"
                    f"  syscalls/check {sc}"
                )
    finally:
        ng.terminate()
        ng.wait(10)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reals", default="100,1000", help="comma-separated N (default 100,1000)")
    ap.add_argument("--rate", type=float, default=100.0, help="checks/s for every N (interval = N / rate)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window of each run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--loops", default="uvloop,asyncio", help="lvscheck --loop values to run")
    ap.add_argument("--strace-seconds", type=float, default=15.0, help="0: no strace runs")
    ap.add_argument("--mem", default="1536M", help="guest memory")
    ap.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    ap.add_argument(
        "--base-src",
        default="",
        help="also run lvscheck from this src/ directory (e.g. main's, from git archive) as base-LOOP",
    )
    ap.add_argument("--workdir", default=None, help="where the run's files go (default: /tmp)")
    args = ap.parse_args()
    if in_guest():
        return guest_main(args)
    if shutil.which("keepalived") is None:
        print("keepalived is not installed: apt-get install keepalived", file=sys.stderr)
        return 2
    argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    cmd = [str(GUEST), "-m", args.mem, "-M", "dummy", "-t", "5400", "--", shlex.join(argv)]
    print(f"host load before: {os.getloadavg()}", flush=True)
    rc = subprocess.run(cmd, check=False).returncode
    print(f"host load after: {os.getloadavg()}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
