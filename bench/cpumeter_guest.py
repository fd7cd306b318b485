"""What the CPU meter sees of healthy MySQL and DNS checks on a busy machine (issue 18 part 1).

Meant for the IPVS guest (one vCPU, every syscall a trap: where the wall-clock-only meter cut
healthy MySQL and DNS checks at 628 and 706 ms), and runs on the host too:

    ../shared/ipvs-guest/run-in-ipvs-guest -t 600 'nice -n 10 .venv/bin/python bench/cpumeter_guest.py'

Starts a real MariaDB and a real unbound (tests/peers), then runs ``--checks`` mysql and dns
checks in a fresh process each (the first check of a type imports its driver inside the check,
as in the daemon), with ``--hogs`` CPU-bound processes beside it (0 and 2 by default: idle and
busy).  For each check it prints what the meter measured: the wall-clock sum of the check's
steps, whether that passed 20 % of the budget (a suspect, timed on the thread's CPU clock from
then on), and the CPU it was charged; and its verdict.  A check is cut only when the charged
CPU passes the budget (0.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHILD = r"""
import asyncio, json, os, sys
from lvscheck import CheckSpec, Engine, Target
from lvscheck.engine import cpumeter, runner

meters = []
class Recorded(cpumeter.Meter):
    __slots__ = ()
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        meters.append(self)
runner.Meter = Recorded

async def main():
    spec = json.loads(sys.argv[1])
    engine = Engine()
    out = []
    for _ in range(int(sys.argv[2])):
        target = Target("127.0.0.1", spec["port"])
        result = await engine.run(CheckSpec(spec["check"], target, spec["options"]))
        m = meters[-1]
        out.append({
            "state": result.state.value, "reason": result.reason,
            "latency_ms": round(result.latency * 1000, 1), "suspect": m.confirming,
            "wall_ms": round((m.wall if m.confirming else m.spent) * 1000, 1),
            "cpu_ms": round(m.spent * 1000, 1) if m.confirming else None,
        })
    print(json.dumps(out))

asyncio.run(main())
"""


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(spec: dict[str, object], checks: int) -> list[dict[str, object]]:
    env = {**os.environ, "LVS_TEST_MYSQL_PW": os.environ.get("LVS_TEST_MYSQL_PW", "")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec), str(checks)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=5, help="checks per process (1st: driver import)")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--hogs", default="0,2", help="CPU-bound processes beside the checks, per case")
    args = parser.parse_args()
    from tests.peers.mariadb import PASSWORD, USER, single_server
    from tests.peers.unbound import start_unbound

    os.environ["LVS_TEST_MYSQL_PW"] = PASSWORD
    with single_server() as db, tempfile.TemporaryDirectory() as tmp, start_unbound(Path(tmp)) as dns:
        specs = {
            "mysql": {
                "check": "mysql",
                "port": db.port,
                "options": {"login": USER, "passwdenv": "LVS_TEST_MYSQL_PW", "checktimeout": "30"},
            },
            "dns": {
                "check": "dns",
                "port": dns.port,
                "options": {
                    "request": "www.example.test A",
                    "receive": r"^127\.0\.0\.9$",
                    "checktimeout": "30",
                },
            },
        }
        print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, budget 0.5 s, suspect after 0.1 s")
        worst = 0.0
        for count in (int(h) for h in args.hogs.split(",")):
            with hogs(count):
                for name, spec in specs.items():
                    for p in range(args.processes):
                        rows = run(spec, args.checks)
                        for i, row in enumerate(rows):
                            cpu = row["cpu_ms"]
                            if isinstance(cpu, float):
                                worst = max(worst, cpu)
                            suspect = f"  suspect: {cpu} ms of thread CPU charged" if row["suspect"] else ""
                            verdict = "" if row["state"] == "up" else f"  ({row['reason']})"
                            print(
                                f"hogs {count} {name:5} process {p + 1} check {i + 1}: {row['state']:4} "
                                f"latency {row['latency_ms']:7.1f} ms  "
                                f"steps on the wall clock {row['wall_ms']:6.1f} ms{suspect}{verdict}"
                            )
        load = os.getloadavg()[0]
        print(f"most CPU charged to a healthy check: {worst:.1f} ms of the 500 ms budget; load {load:.2f}")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
