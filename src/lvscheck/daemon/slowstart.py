"""Slow start: a recovered real's weight climbs to its target in steps.  Pure: the caller gives ``now``.

``#lvscheck: slowstart=SECONDS`` on a virtual: when one of its reals comes back
(DOWN -> UP), it does not get its whole weight at once (a thundering herd of
new connections onto a cold cache, as HAProxy's ``slowstart`` and nginx's
``slow_start`` prevent).  Its weight goes up in :func:`steps_for` equal steps
over the duration: step *k* of *N* caps the weight at ``max(1, target * k // (N+1))``,
and at the end of the duration the cap is lifted (3 steps over 3 s for a weight of
10: 2, 5, 7, then 10 at 3 s).  The target is whatever the real should have
(the configured weight, or one its check derived), read at every step.

* A real the daemon has never seen (start, or added by a reload) ramps only when
  its pool already had a real up when it was added (kept UP from the kernel at a
  restart, or serving before a reload): a cold start is not throttled, since
  nobody else carries the traffic.
* A real that goes down during its ramp loses it; the next recovery starts anew.
* The cap changes at most once a second (``N`` is at most the duration in
  seconds, and at most :data:`MAX_STEPS`), and every change is one more pool
  marked for the daemon's batched IPVS write, never a write of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_STEPS", "Ramp", "advance", "cap", "start", "steps_for"]

#: Most steps of a ramp (a 300 s slow start climbs in 10 steps of 30 s).
MAX_STEPS = 10


@dataclass(slots=True)
class Ramp:
    """One real's climb: started at ``since`` (monotonic), ``steps`` steps over ``duration`` s."""

    since: float
    duration: float
    steps: int
    step: int = 1  # the current step, 1..steps

    def ends_in(self, now: float) -> float:
        return max(0.0, self.since + self.duration - now)


def steps_for(duration: float) -> int:
    """How many steps a ramp of ``duration`` seconds takes: one a second at most, 1..MAX_STEPS."""
    return max(1, min(MAX_STEPS, int(duration)))


def start(now: float, duration: float) -> Ramp | None:
    """A new ramp from ``now``; ``None`` when slow start is off (``duration`` 0)."""
    if duration <= 0:
        return None
    return Ramp(now, duration, steps_for(duration))


def advance(ramp: Ramp, now: float) -> bool | None:
    """Move ``ramp`` to the step ``now`` falls in: True when the step changed, ``None`` when it is over."""
    elapsed = now - ramp.since
    if elapsed >= ramp.duration:
        return None
    step = min(ramp.steps, int(elapsed * ramp.steps / ramp.duration) + 1)
    if step == ramp.step:
        return False
    ramp.step = step
    return True


def cap(ramp: Ramp | None, target: int) -> int:
    """The weight a real with ``ramp`` may have when it should have ``target``."""
    if ramp is None or target <= 1:
        return target
    return max(1, target * ramp.step // (ramp.steps + 1))
