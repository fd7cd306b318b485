"""One asyncio loop that runs every real's check on its own interval.

Each real has one long-lived coroutine: sleep until due, run the check through
the :class:`~lvscheck.engine.Engine` (global and per-host caps on checks in
flight), hand the result over, and schedule the next check ``interval``
(+-``jitter``) after this one ended -- or ``fastinterval`` while the real's
state is changing.  The first check of every real is staggered over the
interval, so a start or a reload never fires every check at once.

*Start lag* is how late a check started: the time from its due moment to its
end, minus the check's own latency (it counts a late wake-up and the wait for
a free slot under the caps).  :class:`LagStats` keeps recent samples for p50/p99
and the scheduler logs a warning when the loop falls behind.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lvscheck.checktype import Check
from lvscheck.engine import Engine
from lvscheck.model import Result

__all__ = ["Job", "LagStats", "Scheduler"]

log = logging.getLogger("lvscheck.daemon")


class LagStats:
    """Recent start-lag samples (seconds): count, max, p50, p99."""

    def __init__(self, keep: int = 20000) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, lag: float) -> None:
        self._samples.append(lag)
        self.count += 1
        self.total += lag
        if lag > self.max:
            self.max = lag

    def quantile(self, q: float) -> float:
        if not self._samples:
            return 0.0
        data = sorted(self._samples)
        return data[min(len(data) - 1, int(q * len(data)))]

    def snapshot(self) -> dict[str, float]:
        return {
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "max": self.max,
            "count": float(self.count),
        }


@dataclass(slots=True)
class Job:
    """What the scheduler needs about one real; the daemon owns and updates it.

    ``pick`` returns the check to run now (combined checktypes alternate);
    ``changing`` says whether the state is moving (then ``fastinterval`` applies).
    """

    id: str
    pick: Callable[[], Check]
    interval: float
    fastinterval: float
    jitter: float
    changing: Callable[[], bool]


class Scheduler:
    """Runs :class:`Job` objects on one loop; ``on_result(job, result, lag)`` gets every result."""

    def __init__(
        self,
        engine: Engine,
        on_result: Callable[[Job, Result, float], None],
        *,
        behind: float = 1.0,
    ) -> None:
        self.engine = engine
        self.on_result = on_result
        self.behind = behind  # seconds of start lag that count as "far behind"
        self.lag = LagStats()
        self.checks = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._last_warning = 0.0
        self._recent_behind = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._tasks

    def start(self, job: Job, first_within: float | None = None) -> None:
        """Run ``job``; its first check comes at a random moment within ``first_within`` s."""
        self.stop(job.id)
        spread = job.interval if first_within is None else first_within
        delay = random.uniform(0.0, max(0.0, spread))
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job, delay), name=job.id)

    def stop(self, job_id: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: Job, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        while True:
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            result = await self.engine.run(job.pick())
            done = loop.time()
            lag = max(0.0, done - due - result.latency)
            self.checks += 1
            self.lag.add(lag)
            if lag > self.behind:
                self._fell_behind(lag)
            try:
                self.on_result(job, result, lag)
            except Exception:
                log.exception("%s: handling a check result failed", job.id)
            base = job.fastinterval if job.changing() else job.interval
            due = done + base * (1.0 + random.uniform(-job.jitter, job.jitter))

    def _fell_behind(self, lag: float) -> None:
        self._recent_behind += 1
        now = time.monotonic()
        if now - self._last_warning >= 10.0:
            snap = self.lag.snapshot()
            log.warning(
                "the check loop is behind: a check started %.3f s late (%d late starts since the last "
                "warning; p50 %.3f s, p99 %.3f s over the last %d checks); %d reals scheduled",
                lag,
                self._recent_behind,
                snap["p50"],
                snap["p99"],
                min(self.lag.count, 20000),
                len(self._tasks),
            )
            self._last_warning = now
            self._recent_behind = 0
