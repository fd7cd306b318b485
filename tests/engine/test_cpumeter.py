"""The CPU meter: a check that its server keeps busy is cut off at its budget, with a clear reason;
time the process does not run (preempted, stopped) never cuts a check.

The hostile server (tests/peers/hostile.py, fault injection: no real server does this on
demand) answers HTTP 200 with a chunked body of one-byte chunks for ever: every chunk is a
parser callback in the check, all within the check's byte limits.  A check starved by other
processes against a real server: tests/checks/test_cpumeter_starved.py.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from tests.peers.hostile import serve, tiny_chunks

from lvscheck import CheckSpec, Engine, State, Target
from lvscheck.engine import cpumeter
from lvscheck.engine.cpumeter import CPU_BUDGET, Meter, Metered

BUSY = {"request": "/", "receive": "never there", "maxbody": "64m", "checktimeout": "20"}


def test_a_check_its_server_keeps_busy_is_cut_off_at_its_budget() -> None:
    with serve(tiny_chunks()) as port:

        async def main() -> tuple[object, float, float]:
            engine = Engine(cpu_budget=0.05)
            t0, c0 = time.monotonic(), time.thread_time()
            result = await engine.run(CheckSpec("http", Target("127.0.0.1", port), BUSY))
            return result, time.monotonic() - t0, time.thread_time() - c0

        result, wall, cpu = asyncio.run(main())
    assert result.state is State.DOWN  # type: ignore[attr-defined]
    assert "used more than 50 ms of CPU" in result.reason, result.reason  # type: ignore[attr-defined]
    assert "kept the check busy" in result.reason  # type: ignore[attr-defined]
    assert wall < 15, wall  # long before its 20 s deadline
    assert cpu < 2.0, cpu  # not the whole 64 MiB parsed


def test_without_a_budget_the_same_check_runs_on() -> None:
    """The control: unmetered, the check is still reading when the meter would have cut it."""
    with serve(tiny_chunks()) as port:

        async def main() -> object:
            engine = Engine(cpu_budget=None)
            spec = CheckSpec("http", Target("127.0.0.1", port), {**BUSY, "checktimeout": "1"})
            return await engine.run(spec)

        result = asyncio.run(main())
    assert result.state is State.DOWN  # type: ignore[attr-defined]
    assert "timed out after 1 s" in result.reason, result.reason  # type: ignore[attr-defined]


def test_the_default_engine_cuts_the_endless_one_byte_chunk_body_before_its_deadline() -> None:
    """On by default (0.5 s): down within deadline + 0.5 s, and for the CPU, not the deadline."""
    assert Engine().cpu_budget == CPU_BUDGET == 0.5
    with serve(tiny_chunks()) as port:

        async def main() -> tuple[object, float]:
            t0 = time.monotonic()
            spec = CheckSpec("http", Target("127.0.0.1", port), {**BUSY, "checktimeout": "10"})
            result = await Engine().run(spec)
            return result, time.monotonic() - t0

        result, wall = asyncio.run(main())
    assert result.state is State.DOWN  # type: ignore[attr-defined]
    assert "used more than 500 ms of CPU" in result.reason, result.reason  # type: ignore[attr-defined]
    assert wall < 10.5, wall


def test_a_check_option_cpubudget_wins_over_the_engine() -> None:
    with serve(tiny_chunks()) as port:

        async def main() -> tuple[object, object]:
            tight = CheckSpec("http", Target("127.0.0.1", port), {**BUSY, "cpubudget": "0.05"})
            unbound = CheckSpec(
                "http", Target("127.0.0.1", port), {**BUSY, "cpubudget": "0", "checktimeout": "1"}
            )
            engine = Engine(cpu_budget=30)
            return await engine.run(tight), await engine.run(unbound)

        tight, unbound = asyncio.run(main())
    assert "used more than 50 ms of CPU" in tight.reason, tight.reason  # type: ignore[attr-defined]
    assert "timed out after 1 s" in unbound.reason, unbound.reason  # type: ignore[attr-defined]


async def _metered(coro: Coroutine[Any, Any, str], meter: Meter) -> str:
    metered: Metered[str] = Metered(coro, meter)
    token = metered.enter()
    try:
        return await metered
    finally:
        metered.leave(token)


def _burn(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_time_the_thread_does_not_run_is_never_charged() -> None:
    """Each step is 50 ms of wall clock with the thread off the CPU: what a step looks like when the
    kernel runs other processes meanwhile or the process is stopped.  1 s of such steps is twice
    the budget on the wall clock (the old meter cut this check); the thread's CPU clock says ~0."""
    cuts: list[str] = []
    meter = Meter(0.5, cuts.append)

    async def check() -> str:
        for _ in range(20):
            time.sleep(0.05)  # inside the step: the loop is held, the thread does not run
            await asyncio.sleep(0)
        return "finished"

    assert asyncio.run(_metered(check(), meter)) == "finished"
    assert cuts == []
    assert meter.confirming  # it was a suspect: past 20 % of the budget on the wall clock
    assert meter.wall >= 0.1
    assert meter.spent < 0.1  # CPU counted from the switch: the sleeps are not in it


def test_a_suspect_is_cut_on_its_thread_cpu() -> None:
    cuts: list[str] = []
    meter = Meter(0.05, cuts.append)

    async def check() -> str:
        for _ in range(100):
            _burn(0.005)
            await asyncio.sleep(0)
            if cuts:
                return "cut"
        return "finished"

    assert asyncio.run(_metered(check(), meter)) == "cut"
    assert len(cuts) == 1
    assert "used more than 50 ms of CPU" in cuts[0]
    assert 0.05 < meter.spent < 0.08, meter.spent  # CPU from the switch (after 10 ms of steps)


def test_a_step_that_imports_a_module_is_not_charged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver loaded by the first check of its type (aiomysql: 60 ms of CPU here, 0.6 s in the
    IPVS guest) is the director's cost, not the server's: the step that imports is not charged."""
    (tmp_path / "lvscheck_test_heavy_module.py").write_text(
        "import time\nend = time.thread_time() + 0.1\nwhile time.thread_time() < end:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cuts: list[str] = []
    meter = Meter(0.05, cuts.append)

    async def check() -> str:
        _burn(0.015)  # past 20 % of the budget: the CPU clock from now on
        await asyncio.sleep(0)
        assert meter.confirming
        importlib.import_module("lvscheck_test_heavy_module")  # 0.1 s of CPU: twice the budget

        await asyncio.sleep(0)
        assert not cuts, cuts
        _burn(0.06)  # the check's own work: charged
        await asyncio.sleep(0)
        return "finished"

    try:
        assert asyncio.run(_metered(check(), meter)) == "finished"
    finally:
        sys.modules.pop("lvscheck_test_heavy_module", None)
    assert len(cuts) == 1


def test_a_full_garbage_collection_in_a_step_is_not_charged() -> None:
    """A full collection walks the whole process's heap (large in a daemon of 40,000 reals): it
    is not the check's doing, whichever step it happens to start in."""
    heap = [[i] for i in range(1_000_000)]  # a million containers for the collector to walk
    cuts: list[str] = []
    meter = Meter(0.02, cuts.append)
    took: list[float] = []

    async def check() -> str:
        _burn(0.005)  # past 20 % of the budget: the CPU clock from now on
        await asyncio.sleep(0)
        assert meter.confirming
        start = time.thread_time()
        gc.collect()  # generation 2
        took.append(time.thread_time() - start)
        await asyncio.sleep(0)
        return "finished"

    assert asyncio.run(_metered(check(), meter)) == "finished"
    assert took[0] > 0.02, took  # the collection alone was over the budget
    assert cuts == []
    assert meter.spent < 0.02, meter.spent
    del heap


def test_work_in_a_connection_callback_is_charged_to_the_check_that_opened_it() -> None:
    """A driver parsing in ``data_received`` (asyncpg does) charges the meter found in its context."""
    cuts: list[str] = []

    async def check() -> str:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback(
            last: bool,
        ) -> None:  # runs outside the task's steps, in the context it was scheduled from
            with cpumeter.charging(cpumeter.current()):
                _burn(0.03)
            if last:
                done.set_result(None)

        loop.call_soon(callback, False)  # 30 ms: past 20 % of the budget, the meter confirms on the CPU clock
        loop.call_soon(callback, True)  # 30 ms of CPU: past the budget
        await done
        return "finished"

    async def main() -> str:
        meter = Meter(0.02, cuts.append)
        metered = Metered(check(), meter)
        token = metered.enter()
        try:
            return await metered
        finally:
            metered.leave(token)

    assert asyncio.run(main()) == "finished"  # the cut callback decides what happens; here it records
    assert len(cuts) == 1
    assert "used more than 20 ms of CPU" in cuts[0]
