"""Syscalls of one HTTP check on the daemon's road (Scheduler -> Engine -> http), counted with strace.

A check should cost what the kernel needs for one TCP exchange and nothing more.
Two costs that were not the kernel's work are gone and must stay gone:

* ``getpid``: CPython 3.11's ``asyncio.get_running_loop()`` (and what calls it:
  ``asyncio.sleep``, ``open_connection``, ``current_task()``) makes one per call, five
  per check; the scheduler now passes its loop down, so a check makes none;
* ``mmap``/``mremap``/``munmap``: asyncio's transport received into a new 256 KiB
  bytes object, above glibc's mmap threshold; the probe caps it at 64 KiB.

The budget for the rest is today's count on the default asyncio loop: socket, ioctl x2
(asyncio sets non-blocking twice), connect, getsockopt, epoll_ctl x4, setsockopt,
getsockname, getpeername (asyncio's transport), sendto, recvfrom, close = 15, plus room
for a response that arrives in two reads.  The loop's own waits (epoll_wait) are not
counted.  Skipped where strace is missing or may not trace.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.peers.nginx import Nginx

CHECKS = 40
#: Per check, the loop's own wait (epoll_wait) left out.
BUDGET = 17

CHILD = """
import asyncio, os, sys
from lvscheck.daemon.scheduler import Job, Scheduler
from lvscheck.engine import Engine, LoopWatch
from lvscheck.model import CheckSpec, State, Target

port, checks = int(sys.argv[1]), int(sys.argv[2])

async def main():
    engine = Engine()
    engine.watch = LoopWatch(period=3600.0)  # its ticks (20 a second) are not the checks'
    spec = CheckSpec("http", Target("127.0.0.1", port), {"request": "/test.html", "receive": "Still alive"})
    check = engine.prepare(spec)
    done = asyncio.get_running_loop().create_future()
    states = []

    def on_result(job, result, lag):
        states.append(result.state)
        if len(states) == 5:
            os.write(2, b"MARK-START\\n")
        elif len(states) == 5 + checks:
            os.write(2, b"MARK-END\\n")
            done.set_result(None)

    sched = Scheduler(engine, on_result)
    sched.start(Job("j", lambda: check, 0.005, 0.005, 0.0, lambda: False), first_within=0)
    await done
    await sched.close()
    print(sum(s is State.UP for s in states), len(states))

asyncio.run(main())
"""

_CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)")


def _count(trace: str) -> collections.Counter[str]:
    calls: collections.Counter[str] = collections.Counter()
    inside = False
    for line in trace.splitlines():
        if "MARK-START" in line:
            inside = True
        elif "MARK-END" in line:
            break
        elif inside and "resumed>" not in line and (m := _CALL.match(line)):
            calls[m[1]] += 1
    return calls


def test_an_http_check_makes_no_getpid_and_few_syscalls(nginx: Nginx, tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    out = tmp_path / "trace"
    proc = subprocess.run(
        [strace, "-f", "-qq", "-o", str(out), sys.executable, "-c", CHILD, str(nginx.http_port), str(CHECKS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace may not trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    up, total = map(int, proc.stdout.split())
    assert up == total >= CHECKS + 5
    calls = _count(out.read_text())
    assert calls["connect"] == CHECKS, calls  # the window holds exactly CHECKS checks
    assert calls["getpid"] == 0, calls
    work = sum(n for name, n in calls.items() if name not in ("epoll_wait", "epoll_pwait", "write"))
    assert work / CHECKS <= BUDGET, sorted(calls.items(), key=lambda kv: -kv[1])
