"""Wall-clock bounds for tests that time a check's deadline, kept robust on a busy CI machine.

A deadline test proves that a check gave up *because of* its deadline (its reason names it:
"timed out after 1 s waiting for ...") and *at* it:

* not before it: the lower bound, ``deadline - EARLY``; a busy machine only makes things later;
* not at some longer deadline: the upper bound, ``deadline + LATE``.  LATE is room for a loaded
  machine (CI shares 2 cores with other jobs) between the timer firing and the caller seeing the
  result; it stays well below :data:`~lvscheck.plugin.check.DEFAULT_TIMEOUT` (5 s), which is what
  a check that ignored its own option would wait, so the bound still tells the two apart.
"""

from __future__ import annotations

from lvscheck.plugin.check import DEFAULT_TIMEOUT

__all__ = ["EARLY", "LATE", "assert_at_deadline", "assert_by_deadline"]

#: Seconds a timer may fire early (monotonic clock granularity, rounding in reasons).
EARLY = 0.1
#: Seconds a loaded machine may add after a deadline before the test sees the result.
LATE = 1.0


def _check_bound(deadline: float) -> None:
    assert deadline + LATE < DEFAULT_TIMEOUT, "this deadline is too long to tell from the default one"


def assert_at_deadline(took: float, deadline: float, what: str = "") -> None:
    """``took`` seconds is the ``deadline`` firing: not before it, not much after it."""
    _check_bound(deadline)
    label = f"{what}: " if what else ""
    assert deadline - EARLY <= took < deadline + LATE, f"{label}{took:.2f} s for a {deadline:g} s deadline"


def assert_by_deadline(took: float, deadline: float, what: str = "") -> None:
    """``took`` seconds is no later than the ``deadline`` (an answer that may come earlier)."""
    _check_bound(deadline)
    label = f"{what}: " if what else ""
    assert took < deadline + LATE, f"{label}{took:.2f} s for a {deadline:g} s deadline"
