"""How long the event loop was blocked: a ticker that notices when it wakes up late.

Every check shares one loop.  If something holds it (a driver parsing a flood of
input, a slow callback), timers fire late and a healthy real's check can time out
without the real being at fault.  :class:`LoopWatch` ticks every ``period``
seconds and adds up how late each tick woke (the part above ``noise``): that sum
only grows, so a check reads it when it starts and when it ends and knows how
long the loop was blocked in between (:meth:`blocked_since`), including a block
that has just ended but whose late tick has not run yet.

A tick is a plain timer callback (``loop.call_later``), not a task sleeping in
``asyncio.sleep``: no task step, no future, and on CPython 3.11 no ``getpid``
syscall (``asyncio.sleep`` looks the running loop up) twenty times a second.
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
        self._timer: asyncio.TimerHandle | None = None

    @property
    def ticking(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        """Start ticking on the running loop (once per loop; later calls do nothing)."""
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._loop is loop:
            return
        self._loop = loop
        self._due = loop.time() + self.period
        self._timer = loop.call_later(self.period, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def open_window(self) -> None:
        """Start measuring :attr:`window_longest` afresh."""
        self.window_longest = 0.0

    def blocked_since(self, mark: float) -> float:
        """Seconds the loop was blocked since :attr:`blocked` read ``mark``, the current block included."""
        pending = 0.0
        if self._loop is not None and self._timer is not None:
            pending = max(0.0, self._loop.time() - self._due - self.noise)
        return self.blocked - mark + pending

    def snapshot(self) -> dict[str, float]:
        return {
            "blocked_s": round(self.blocked, 3),
            "longest_s": round(self.longest, 3),
            "blocks": self.blocks,
        }

    def _tick(self) -> None:
        loop = self._loop
        if loop is None or self._timer is None:
            return  # stopped
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
        self._timer = loop.call_later(self.period, self._tick)
