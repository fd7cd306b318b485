"""The CPU meter: a check that its server keeps busy is cut off at its budget, with a clear reason.

The hostile server (tests/peers/hostile.py, fault injection: no real server does this on
demand) answers HTTP 200 with a chunked body of one-byte chunks for ever: every chunk is a
parser callback in the check, all within the check's byte limits.
"""

from __future__ import annotations

import asyncio
import time

from tests.peers.hostile import serve, tiny_chunks

from lvscheck import CheckSpec, Engine, State, Target
from lvscheck.engine import cpumeter
from lvscheck.engine.cpumeter import Meter, Metered

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


def test_work_in_a_connection_callback_is_charged_to_the_check_that_opened_it() -> None:
    """A driver parsing in ``data_received`` (asyncpg does) charges the meter found in its context."""
    cuts: list[str] = []

    async def check() -> str:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback() -> None:  # runs outside the task's steps, in the context it was scheduled from
            with cpumeter.charging(cpumeter.current()):
                end = time.perf_counter() + 0.03
                while time.perf_counter() < end:
                    pass
            done.set_result(None)

        loop.call_soon(callback)
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
