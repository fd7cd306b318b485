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
and the scheduler logs a warning when the loop falls behind.  A
:class:`~lvscheck.engine.LoopWatch` measures how long the loop is blocked; the
engine marks a down result whose check ran while the loop was blocked
(``details["starved"]``), so the daemon does not count it against the real.

*Stopping* is bounded: :meth:`Scheduler.close` cancels every job, cancels again
those that swallowed the cancel (a driver's ``asyncio.wait_for`` on Python
3.11 can), and returns after at most :data:`CLOSE_TIMEOUT` seconds whatever the
checks do.  A job whose task saw a cancel never starts another check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lvscheck.engine import Engine, LoopWatch
from lvscheck.model import Result
from lvscheck.plugin.check import Check

__all__ = ["CLOSE_TIMEOUT", "Job", "LagStats", "Scheduler"]

#: Seconds :meth:`Scheduler.close` waits for the jobs' checks to go before it gives up on them.
CLOSE_TIMEOUT = 2.0

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
        self._closed = False
        self.watch = engine.watch or LoopWatch()
        engine.watch = self.watch

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._tasks

    def start(self, job: Job, first_within: float | None = None) -> None:
        """Run ``job``; its first check comes at a random moment within ``first_within`` s."""
        self.stop(job.id)
        self.watch.start()
        spread = job.interval if first_within is None else first_within
        delay = random.uniform(0.0, max(0.0, spread))
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job, delay), name=job.id)

    def stop(self, job_id: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop every job; return once they are gone, or after ``timeout`` s whatever they do."""
        self._closed = True
        self.watch.stop()
        pending = set(self._tasks.values())
        self._tasks.clear()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while pending:
            for task in pending:
                task.cancel()  # again for a task whose driver swallowed the last one
            left = end - loop.time()
            if left <= 0:
                break
            _, pending = await asyncio.wait(pending, timeout=min(0.05, left))
        if pending:
            log.warning(
                "%d check(s) did not stop within %g s of the shutdown and are abandoned: %s",
                len(pending),
                timeout,
                ", ".join(sorted(t.get_name() for t in pending)[:5]),
            )

    async def _run(self, job: Job, delay: float) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        due = loop.time() + delay
        while True:
            wait = due - loop.time()
            if wait > 0:
                await _sleep(loop, wait)
            result = await self.engine.run(job.pick(), loop)
            if self._closed or me.cancelling():
                return  # stopped while the check ran, and its driver swallowed the cancel
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


async def _sleep(loop: asyncio.AbstractEventLoop, delay: float) -> None:
    """``asyncio.sleep(delay)`` on the loop at hand.

    ``asyncio.sleep`` looks the running loop up, and on CPython 3.11 that is a ``getpid``
    syscall: one per check for nothing (bench/README.md, ``keepalived_compare.py``).
    ``call_later``, not ``call_at``: uvloop's ``call_at`` reads the clock once more, and
    without a vDSO (the IPVS guest, some VMs) every clock read is a syscall.
    """
    waiter = loop.create_future()
    handle = loop.call_later(delay, _wake, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # cancelled meanwhile
        waiter.set_result(None)
