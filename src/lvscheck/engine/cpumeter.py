"""A bound on the CPU one check may use: a check kept busy by its server is cut off.

Every check shares the event loop.  A deadline bounds how *long* a check lasts, not how
much of the loop it takes meanwhile: a server that streams frames for ever keeps its
check parsing, step after step, until the deadline, and healthy reals' checks start late
(issue 18: one PostgreSQL real took 61 % of the daemon's loop).

A :class:`Meter` adds up the time the check held the loop:

* each step of the check's own task (:class:`Metered` wraps the check's coroutine);
* the parsing that drivers do in protocol callbacks, outside the task's steps: the
  byte guards (:mod:`lvscheck.checks._pgguard` in front of asyncpg) charge it with
  :func:`charging` (the meter of the check is found through a context variable: a
  connection's callbacks run in the context of the task that opened it).

Two clocks, so that the common case stays cheap and only the check's own work can cut it:

1. **wall** (``perf_counter``, no syscall): every check starts here.  A step runs without
   waiting, so its wall time is the check's CPU *plus* whatever the kernel gave other
   processes meanwhile (a preempted or stopped process).  That alone never cuts a check:
   once the steps add up to :data:`CONFIRM_AFTER` of the budget (100 ms of 0.5 s; a healthy
   HTTP check takes about 0.25 ms, a PostgreSQL login with TLS 3.5 ms), the check is a
   suspect and its meter switches clocks;
2. **thread CPU** (``time.thread_time``, ``CLOCK_THREAD_CPUTIME_ID``: a real syscall, paid
   by suspects only): from then on each step is timed with the CPU clock of the loop's
   thread, which does not run while the process is preempted or stopped.  The check is
   cut off when *that* sum passes the budget.  A step during which Python imported a
   module (a driver loaded on the first check of its type) is not charged: loading code
   is the director's cost, once per process, not the server's doing; nor is the CPU of a
   full garbage collection (generation 2: the whole process's garbage, however large
   the daemon's heap) that happened to start inside the check's step.

Past the budget the check is cut off like at its deadline (sockets aborted, task
cancelled) and reported down: "used more than N ms of CPU".
"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["CONFIRM_AFTER", "CPU_BUDGET", "Meter", "Metered", "charging", "current", "reason"]

#: Seconds of CPU one check run may use by default (``--check-cpu-budget``, ``cpubudget=``).
CPU_BUDGET = 0.5

#: The fraction of the budget of wall-clock step time after which a check's steps are
#: timed with its thread's CPU clock (see the module's docstring).
CONFIRM_AFTER = 0.2

T = TypeVar("T")

_wall = time.perf_counter
_thread_cpu = time.thread_time
_modules = sys.modules
_thread_id = threading.get_ident

#: CPU seconds of full collections, by thread (collections run in the thread that triggered them)
_full_gc_cpu: dict[int, float] = {}
_full_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    """Add up the CPU of full collections (gc.callbacks; younger generations return at once)."""
    if info["generation"] != 2:
        return
    if phase == "start":
        _full_gc_started[0] = _thread_cpu()
    else:
        ident = _thread_id()
        _full_gc_cpu[ident] = _full_gc_cpu.get(ident, 0.0) + _thread_cpu() - _full_gc_started[0]


gc.callbacks.append(_on_gc)


class Meter:
    """The loop time one check run used so far; calls ``cut(reason)`` once past ``budget``.

    ``spent`` is on ``clock``: the wall clock until ``limit`` (:data:`CONFIRM_AFTER` of the
    budget) is passed, then the thread's CPU clock, counted from zero, up to ``budget``.
    """

    __slots__ = ("_cut", "budget", "clock", "limit", "spent", "wall")

    def __init__(self, budget: float, cut: Callable[[str], None]) -> None:
        self.budget = budget
        self.spent = 0.0
        self.limit = budget * CONFIRM_AFTER
        self.clock: Callable[[], float] = _wall
        self.wall = 0.0  # wall-clock step time before the switch to the CPU clock
        self._cut: Callable[[str], None] | None = cut

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        if self.spent > self.limit:
            self.passed()

    def passed(self) -> None:
        """``spent`` passed ``limit``: on the wall clock, switch to the CPU clock; on it, cut."""
        if self.clock is _wall:
            self.wall = self.spent
            self.spent = 0.0
            self.limit = self.budget
            self.clock = _CpuClock()
            return
        self.exceeded()

    def exceeded(self) -> None:
        """Past the budget: cut the check off (once)."""
        if self._cut is not None:
            cut, self._cut = self._cut, None
            cut(self.reason())

    def reason(self) -> str:
        return reason(self.budget, self.spent)

    @property
    def confirming(self) -> bool:
        """True once the steps are timed with the thread's CPU clock."""
        return self.clock is not _wall

    @property
    def over(self) -> bool:
        """True once the check was cut off."""
        return self._cut is None


def reason(budget: float, spent: float) -> str:
    """Why a check past its CPU budget is down."""
    return (
        f"used more than {budget * 1000:g} ms of CPU ({spent * 1000:.0f} ms): "
        "what the server sent kept the check busy"
    )


class _CpuClock:
    """The thread's CPU time, less the stretches between readings during which a module was
    imported, and less the CPU of full garbage collections."""

    __slots__ = ("_excluded", "_full_gc", "_ident", "_last", "_loaded")

    def __init__(self) -> None:
        self._excluded = 0.0
        self._ident = _thread_id()
        self._full_gc = _full_gc_cpu.get(self._ident, 0.0)
        self._loaded = len(_modules)
        self._last = _thread_cpu()

    def __call__(self) -> float:
        now = _thread_cpu()
        loaded = len(_modules)
        full_gc = _full_gc_cpu.get(self._ident, 0.0)
        if loaded != self._loaded:  # an import since the last reading: that stretch is not charged
            self._loaded = loaded
            self._excluded += now - self._last
        elif full_gc != self._full_gc:  # a full collection since the last reading: not charged
            self._excluded += full_gc - self._full_gc
        self._full_gc = full_gc
        self._last = now
        return now - self._excluded


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("lvscheck_cpumeter", default=None)


def current() -> Meter | None:
    """The meter of the check whose task (or connection callback) is running, if any."""
    return _current.get()


class charging:  # used like a function: ``with charging(meter):``
    """Charge the time of the block to ``meter`` (``None``: nothing to charge)."""

    __slots__ = ("_clock", "_meter", "_start")

    def __init__(self, meter: Meter | None) -> None:
        self._meter = meter
        self._start = 0.0
        self._clock = _wall

    def __enter__(self) -> None:
        if self._meter is not None:
            self._clock = clock = self._meter.clock
            self._start = clock()

    def __exit__(self, *_exc: object) -> None:
        if self._meter is not None:
            self._meter.charge(self._clock() - self._start)


class Metered(Generic[T]):
    """Await ``coro`` with each of its steps charged to ``meter`` (and ``meter`` current).

    The awaiting task drives this object like the coroutine itself (``send``/``throw``);
    each call is timed.  The context variable is set for the whole task by :meth:`enter`
    (the caller resets it), so the connections the check opens carry the meter to their
    callbacks.
    """

    __slots__ = ("_coro", "_meter")

    def __init__(self, coro: Coroutine[Any, Any, T], meter: Meter) -> None:
        self._coro = coro
        self._meter = meter

    def enter(self) -> contextvars.Token[Meter | None]:
        return _current.set(self._meter)

    @staticmethod
    def leave(token: contextvars.Token[Meter | None]) -> None:
        _current.reset(token)

    def __await__(self) -> Generator[Any, None, T]:
        return self

    def __iter__(self) -> Metered[T]:
        return self

    # the hot path: the awaiting coroutine resumes this with ``__next__`` (``send`` for a value);
    # the charge is inlined (a method call per step was a measurable part of the cost).  The clock
    # is read from the meter once per step, so a step starts and ends on the same clock.

    def __next__(self) -> Any:
        meter = self._meter
        clock = meter.clock
        start = clock()
        try:
            return self._coro.send(None)
        finally:
            meter.spent += clock() - start
            if meter.spent > meter.limit:
                meter.passed()

    def send(self, value: Any) -> Any:
        meter = self._meter
        clock = meter.clock
        start = clock()
        try:
            return self._coro.send(value)
        finally:
            meter.spent += clock() - start
            if meter.spent > meter.limit:
                meter.passed()

    def throw(self, *exc: Any) -> Any:
        meter = self._meter
        clock = meter.clock
        start = clock()
        try:
            return self._coro.throw(*exc)
        finally:
            meter.charge(clock() - start)

    def close(self) -> None:
        self._coro.close()
