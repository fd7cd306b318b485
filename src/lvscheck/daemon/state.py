"""Rise and fall counting: a pure function from (track, observation) to the next track.

A real server's *phase* is what the daemon acts on (its weight in IPVS); check
results only move it after enough of them agree::

    UNKNOWN --ok--> UP            (first result decides at once: nothing to protect yet)
    UNKNOWN --fail--> DOWN
    UP   --fail x fall--> DOWN    (fewer failures are "soft": the real keeps its weight)
    DOWN --ok x rise--> UP        (one failure in between starts the count again)

``HOLD`` observations (a director-side fault, a guarded pool) change nothing.
The functions here never look at clocks, sockets or IPVS: the scheduler feeds
them and acts on what they return (Seesaw's design: checks return results,
state is derived separately).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Observation", "Phase", "Track", "initial_track", "step"]


class Phase(enum.Enum):
    """Where a real stands, as far as the director is concerned."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


class Observation(enum.Enum):
    """One check result, reduced to what the counters need."""

    OK = "ok"  # up or degraded: the real serves
    FAIL = "fail"  # down, for a reason on the real's side
    HOLD = "hold"  # no verdict about the real (director-side fault, guarded pool)


@dataclass(frozen=True, slots=True)
class Track:
    """The phase and how many results in a row disagree with it (0 = settled)."""

    phase: Phase
    streak: int = 0

    @property
    def changing(self) -> bool:
        """True while results disagree with the phase (the scheduler checks faster then)."""
        return self.streak > 0 or self.phase is Phase.UNKNOWN


def initial_track(kernel_weight: int | None) -> Track:
    """The track of a real when the daemon starts or a reload adds it.

    A real already in the kernel with a weight above 0 was judged healthy by
    whoever wrote it (usually our previous run): it stays UP, so a restart never
    drains it, until ``fall`` failures say otherwise.  Present with weight 0 it
    stays DOWN until ``rise`` successes.  Absent (``None``), the first result
    decides.
    """
    if kernel_weight is None:
        return Track(Phase.UNKNOWN)
    return Track(Phase.UP if kernel_weight > 0 else Phase.DOWN)


def step(track: Track, seen: Observation, rise: int, fall: int) -> Track:
    """The next track after one observation; ``rise``/``fall`` are counts >= 1."""
    if seen is Observation.HOLD:
        return track
    ok = seen is Observation.OK
    if track.phase is Phase.UNKNOWN:
        return Track(Phase.UP if ok else Phase.DOWN)
    if (track.phase is Phase.UP) == ok:  # agrees with the phase: settled
        return track if track.streak == 0 else Track(track.phase)
    streak = track.streak + 1
    if streak >= (fall if track.phase is Phase.UP else rise):
        return Track(Phase.DOWN if ok is False else Phase.UP)
    return Track(track.phase, streak)
