"""A bound on the loop time one check may use: a check kept busy by its server is cut off.

Every check shares the event loop.  A deadline bounds how *long* a check lasts, not how
much of the loop it takes meanwhile: a server that streams frames for ever keeps its
check parsing, step after step, until the deadline, and healthy reals' checks start late
(issue 18: one PostgreSQL real took 61 % of the daemon's loop).

A :class:`Meter` adds up the time the check held the loop:

* each step of the check's own task (:class:`Metered` wraps the check's coroutine: two
  reads of ``perf_counter`` per step, no syscall);
* the parsing that drivers do in protocol callbacks, outside the task's steps: the
  byte guards (:mod:`lvscheck.checks._pgguard` in front of asyncpg, the MySQL packet
  guard, :mod:`lvscheck.checks._berguard` for LDAP) charge it with :func:`charging`
  (the meter of the check is found through a context variable: a connection's
  callbacks run in the context of the task that opened it).

The clock is the wall clock of the steps: a step runs without waiting (that is what
holding the loop means), so its length is CPU time, plus whatever the kernel gave to
other processes meanwhile (on a busy machine the budget is reached sooner; the default
is far above what any check needs: an HTTP check takes about 0.25 ms, a PostgreSQL
login with TLS about 3.5 ms).  Past the budget the check is cut off like at its
deadline (sockets aborted, task cancelled) and reported down: "used more than N ms of
CPU".
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["CPU_BUDGET", "Meter", "Metered", "charging", "current"]

#: Seconds of loop time one check run may use, where the meter is turned on (off by default:
#: the wall clock of a step also counts other processes' time on a busy machine; docs/hostile.md).
CPU_BUDGET = 0.5

T = TypeVar("T")

_now = time.perf_counter


class Meter:
    """The loop time one check run used so far; calls ``cut(reason)`` once past ``budget``."""

    __slots__ = ("_cut", "budget", "spent")

    def __init__(self, budget: float, cut: Callable[[str], None]) -> None:
        self.budget = budget
        self.spent = 0.0
        self._cut: Callable[[str], None] | None = cut

    def charge(self, seconds: float) -> None:
        self.spent += seconds
        if self.spent > self.budget:
            self.exceeded()

    def exceeded(self) -> None:
        """Past the budget: cut the check off (once)."""
        if self._cut is not None:
            cut, self._cut = self._cut, None
            cut(self.reason())

    def reason(self) -> str:
        return (
            f"used more than {self.budget * 1000:g} ms of CPU "
            f"({self.spent * 1000:.0f} ms): what the server sent kept the check busy"
        )

    @property
    def over(self) -> bool:
        return self.spent > self.budget


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("lvscheck_cpumeter", default=None)


def current() -> Meter | None:
    """The meter of the check whose task (or connection callback) is running, if any."""
    return _current.get()


class charging:  # used like a function: ``with charging(meter):``
    """Charge the time of the block to ``meter`` (``None``: nothing to charge)."""

    __slots__ = ("_meter", "_start")

    def __init__(self, meter: Meter | None) -> None:
        self._meter = meter
        self._start = 0.0

    def __enter__(self) -> None:
        if self._meter is not None:
            self._start = _now()

    def __exit__(self, *_exc: object) -> None:
        if self._meter is not None:
            self._meter.charge(_now() - self._start)


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
    # the charge is inlined (a method call per step was a measurable part of the cost)

    def __next__(self) -> Any:
        start = _now()
        try:
            return self._coro.send(None)
        finally:
            meter = self._meter
            meter.spent += _now() - start
            if meter.spent > meter.budget:
                meter.exceeded()

    def send(self, value: Any) -> Any:
        start = _now()
        try:
            return self._coro.send(value)
        finally:
            meter = self._meter
            meter.spent += _now() - start
            if meter.spent > meter.budget:
                meter.exceeded()

    def throw(self, *exc: Any) -> Any:
        start = _now()
        try:
            return self._coro.throw(*exc)
        finally:
            self._meter.charge(_now() - start)

    def close(self) -> None:
        self._coro.close()
