"""Long jobs on the event loop, cut into slices that hand the loop back.

Installing a 40,000-real config touches every real: creating its state, starting
its check, diffing its kernel entry.  Done in one go that holds the loop for
seconds, and every check that should start meanwhile starts late.  A
:class:`Slicer` lets such a job run in slices of at most ``budget`` seconds
(5 ms by default): between two slices the loop runs whatever is due (checks,
results, ``lvscheck status``).  It counts the slices and remembers the longest,
so tests and the status document can show that the job was cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

__all__ = ["SLICE", "Slicer"]

#: Seconds of loop time one slice may take (issue 18: a reload never blocks the loop 50 ms).
#: The loop's turn after a slice also runs what the slice started (the first step of each
#: check it scheduled, a young GC): with 5 ms slices a turn of a 40,000-real start stays
#: around 10 ms of CPU.
SLICE = 0.005

T = TypeVar("T")


class Slicer:
    """Hands the loop back whenever the current slice has run ``budget`` seconds."""

    def __init__(self, budget: float = SLICE) -> None:
        self.budget = budget
        self.slices = 1
        self.longest = 0.0  # seconds of the longest slice that ended so far (wall clock)
        #: CPU seconds of the longest slice: the same, without the time another process had the
        #: core (a busy machine stretches wall-clock slices; tests compare this one)
        self.longest_cpu = 0.0
        self._start = time.perf_counter()
        self._start_cpu = time.thread_time()

    async def pause(self) -> None:
        """End this slice if its time is up (let the loop run), else return at once."""
        now = time.perf_counter()
        if now - self._start >= self.budget:
            await self.yield_now(now)

    async def yield_now(self, now: float | None = None) -> None:
        """End this slice now."""
        self._end_slice(now)
        self.slices += 1
        await asyncio.sleep(0)
        self.restart()

    async def each(self, items: Iterable[T]) -> AsyncIterator[T]:
        """``items``, one by one, with a pause between slices."""
        for (
            item
        ) in items:  # the clock is read before every item: items differ in cost (a pool of 1 or 4,000 reals)
            await self.pause()
            yield item

    def restart(self) -> None:
        """A new slice starts now (after an ``await`` that let the loop run, e.g. a thread's work)."""
        self._start = time.perf_counter()
        self._start_cpu = time.thread_time()

    def finish(self) -> None:
        """Count the last slice in :attr:`longest`."""
        self._end_slice(None)

    def _end_slice(self, now: float | None) -> None:
        self.longest = max(self.longest, (now if now is not None else time.perf_counter()) - self._start)
        self.longest_cpu = max(self.longest_cpu, time.thread_time() - self._start_cpu)
