"""The scheduler: staggered first checks, interval with jitter, fast interval while changing, start lag.

The checks are real ``connect`` checks against a closed port on 127.0.0.1 (refused at once).
"""

from __future__ import annotations

import asyncio
import itertools
import time

from tests.peers import free_port

from lvscheck.daemon.scheduler import Job, LagStats, Scheduler
from lvscheck.engine import Engine
from lvscheck.model import CheckSpec, Result, Target


def run(jobs: int, interval: float, fast: float, changing: bool, seconds: float) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {}

    async def main() -> None:
        engine = Engine()
        check = engine.prepare(CheckSpec("connect", Target("127.0.0.1", free_port()), {"checktimeout": "1"}))

        def on_result(job: Job, result: Result, lag: float) -> None:
            seen.setdefault(job.id, []).append(time.monotonic())

        sched = Scheduler(engine, on_result)
        for i in range(jobs):
            sched.start(Job(f"j{i}", lambda: check, interval, fast, 0.1, lambda: changing))
        await asyncio.sleep(seconds)
        await sched.close()
        assert sched.lag.count == sum(len(v) for v in seen.values())

    asyncio.run(main())
    return seen


def test_first_checks_are_staggered_and_intervals_jittered() -> None:
    t0 = time.monotonic()
    seen = run(40, 0.5, 0.1, False, 1.6)
    firsts = sorted(v[0] - t0 for v in seen.values())
    assert firsts[-1] - firsts[0] > 0.3  # spread over the interval, not a storm
    assert max(sum(1 for f in firsts if a <= f < a + 0.05) for a in firsts) <= 15
    gaps = [b - a for v in seen.values() for a, b in itertools.pairwise(v)]
    assert gaps
    assert all(0.44 <= g <= 1.0 for g in gaps), sorted(gaps)[:3] + sorted(gaps)[-3:]
    assert len({round(g, 3) for g in gaps}) > len(gaps) // 2  # jitter: not all equal


def test_fast_interval_while_changing() -> None:
    # first checks are staggered over the 1 s interval: run long enough that every job has
    # at least ~1 s at the fast interval, even on a loaded machine
    seen = run(5, 1.0, 0.1, True, 2.2)
    gaps = [b - a for v in seen.values() for a, b in itertools.pairwise(v)]
    assert len(gaps) >= 20
    assert max(gaps) < 0.3


def test_lag_stats_quantiles() -> None:
    s = LagStats(keep=100)
    for i in range(1000):
        s.add(i / 1000)
    snap = s.snapshot()
    assert snap["count"] == 1000
    assert 0.94 <= snap["p50"] <= 0.96  # over the last 100 samples
    assert snap["p99"] >= 0.99
    assert snap["max"] == 0.999
