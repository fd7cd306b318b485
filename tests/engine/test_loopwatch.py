"""LoopWatch: a timer callback that measures how long the loop was blocked (engine/loopwatch.py).

Its ticks are ``loop.call_later`` callbacks, not a task in ``asyncio.sleep``: no task, no
future per tick, and no ``getpid`` syscall on CPython 3.11 (``asyncio.sleep`` looks the
running loop up), twenty times a second in every loop of the daemon.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lvscheck.engine import LoopWatch


def test_a_block_is_measured_and_the_watch_keeps_ticking_after_it() -> None:
    async def scenario() -> tuple[float, float, int]:
        watch = LoopWatch(period=0.01, noise=0.005)
        watch.start()
        await asyncio.sleep(0.05)
        mark = watch.blocked
        time.sleep(0.2)  # the block the watch must see
        during = watch.blocked_since(mark)  # before its late tick ran: counted as pending
        await asyncio.sleep(0.05)
        after = watch.blocked - mark
        blocks = watch.blocks
        watch.stop()
        return during, after, blocks

    during, after, blocks = asyncio.run(scenario())
    assert 0.15 <= during <= 0.3
    assert 0.15 <= after <= 0.3
    assert blocks >= 1


def test_the_watch_is_a_timer_not_a_task_and_stop_ends_it() -> None:
    async def scenario() -> tuple[int, bool, bool, int]:
        watch = LoopWatch(period=0.01)
        watch.start()
        watch.start()  # a second start on the same loop adds nothing
        tasks = len(asyncio.all_tasks()) - 1  # this coroutine's own task left out
        await asyncio.sleep(0.05)
        ticking = watch.ticking
        watch.stop()
        due = watch._due
        await asyncio.sleep(0.05)
        return tasks, ticking, watch.ticking, int(watch._due == due)

    tasks, ticking, after_stop, still = asyncio.run(scenario())
    assert tasks == 0
    assert ticking
    assert not after_stop
    assert still == 1  # no tick ran after stop()


def test_the_watch_starts_again_on_a_new_loop() -> None:
    watch = LoopWatch(period=0.01, noise=0.005)

    async def one_loop() -> float:
        watch.start()
        await asyncio.sleep(0.03)
        mark = watch.blocked
        time.sleep(0.1)  # a block on the second loop
        await asyncio.sleep(0.03)
        return watch.blocked - mark

    asyncio.run(one_loop())
    assert asyncio.run(one_loop()) >= 0.05  # ticks on the second loop too


IDLE = """
import asyncio, os
from lvscheck.engine import LoopWatch

async def main():
    watch = LoopWatch(period=0.005)
    watch.start()
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    idle = loop.create_future()
    os.write(2, b"MARK-START\\n")
    loop.call_later(0.5, idle.set_result, None)  # this wait itself makes no getpid
    await idle
    os.write(2, b"MARK-END\\n")
    watch.stop()
    print(watch.blocks)

asyncio.run(main())
"""


def test_an_idle_loop_with_a_watch_makes_no_getpid(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    out = tmp_path / "trace"
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=getpid,write", "-o", str(out), sys.executable, "-c", IDLE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace may not trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    trace = out.read_text()
    window = trace[trace.index("MARK-START") : trace.index("MARK-END")]
    # 0.5 s at a 5 ms period: about 100 ticks; a task in asyncio.sleep made one getpid each
    assert window.count("getpid(") == 0, window[:2000]
    assert proc.stdout.strip().isdigit()  # the watch ran to the end
