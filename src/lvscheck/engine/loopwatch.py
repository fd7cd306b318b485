"""How long the event loop was blocked: a ticker that notices when it wakes up late.

Every check shares one loop.  If something holds it (a driver parsing a flood of
input, a slow callback), timers fire late and a healthy real's check can time out
without the real being at fault.  :class:`LoopWatch` ticks every ``period``
seconds and adds up how late each tick woke (the part above ``noise``): that sum
only grows, so a check reads it when it starts and when it ends and knows how
long the loop was blocked in between (:meth:`blocked_since`), including a block
that has just ended but whose late tick has not run yet.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["LoopWatch"]

log = logging.getLogger("lvscheck.engine")


class LoopWatch:
    """Measures event-loop blocking; :attr:`blocked` is the total seconds so far."""

    def __init__(self, period: float = 0.05, noise: float = 0.02, warn: float = 0.5) -> None:
        self.period = period
        self.noise = noise
        self.warn = warn  # a block at least this long is logged
        self.blocked = 0.0
        self.longest = 0.0
        self.blocks = 0  # ticks that woke more than ``noise`` late
        self.window_longest = 0.0  # the latest tick since :meth:`open_window` (a reload's, say)
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking on the running loop (once; later calls do nothing)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.period
        self._task = self._loop.create_task(self._tick(), name="lvscheck-loopwatch")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def open_window(self) -> None:
        """Start measuring :attr:`window_longest` afresh."""
        self.window_longest = 0.0

    def blocked_since(self, mark: float) -> float:
        """Seconds the loop was blocked since :attr:`blocked` read ``mark``, the current block included."""
        pending = 0.0
        if self._loop is not None and self._task is not None:
            pending = max(0.0, self._loop.time() - self._due - self.noise)
        return self.blocked - mark + pending

    def snapshot(self) -> dict[str, float]:
        return {
            "blocked_s": round(self.blocked, 3),
            "longest_s": round(self.longest, 3),
            "blocks": self.blocks,
        }

    async def _tick(self) -> None:
        assert self._loop is not None
        loop = self._loop
        while True:
            await asyncio.sleep(self.period)
            now = loop.time()
            late = now - self._due
            if late > self.window_longest:
                self.window_longest = late
            if late > self.noise:
                excess = late - self.noise
                self.blocked += excess
                self.blocks += 1
                if late > self.longest:
                    self.longest = late
                if late >= self.warn:
                    log.warning("the event loop was blocked for %.3f s (checks started or ended late)", late)
            self._due = now + self.period
