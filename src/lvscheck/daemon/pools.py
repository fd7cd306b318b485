"""Pools: from a check result to the weights the kernel should hold.  Pure: no I/O, no clocks.

A :class:`~lvscheck.Result` of one real becomes an :class:`~.state.Observation`
(:func:`classify`: a failure for a director-side reason never counts, one that
started far behind schedule is only *suspect*), the observation moves the real's
rise/fall :class:`~.state.Track` (:func:`observe`), and :func:`desired_pool`
says what the pool's IPVS service and destinations should be right now:

* UP: the configured weight (or the weight the check derived);
* DOWN, ``quiescent=yes``: weight 0, entry kept; ``quiescent=no``: entry removed;
* DOWN, ``quiescent=yes``, the entry deleted by hand: put back at weight 0 only with
  ``readdquiescent=yes`` (as ldirectord);
* UNKNOWN (never checked, not in the kernel): like DOWN, so an unchecked real
  never takes traffic (ldirectord briefly adds it at full weight; we do not);
* no real up and none unknown: the fallback (sorry server) is added.

**Pool guard**: when most reals of a pool fail for a director-side or suspect
reason, the pool is *guarded*: failures hold (no real is taken out).

The caller (:mod:`lvscheck.daemon.director`) acts on what these functions return:
it writes IPVS, sends events and runs commands.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lvscheck.daemon import slowstart
from lvscheck.daemon.state import Observation, Phase, Track, step
from lvscheck.model import Result, State

if TYPE_CHECKING:
    from lvscheck.adapters.ipvs.table import Dest, Service
    from lvscheck.config.pools import Pool, Slot
    from lvscheck.daemon.scheduler import Job
    from lvscheck.plugin.check import Check

__all__ = [
    "DesiredPool",
    "Outcome",
    "PoolState",
    "RealState",
    "classify",
    "desired_dest",
    "desired_pool",
    "fixed_track",
    "mark_placed",
    "observe",
    "update_guard",
    "weight_for",
]

_SUSPECT_REASONS = ("network is unreachable",)
BAD_KINDS = frozenset({"director", "suspect"})


@dataclass(slots=True)
class RealState:
    """What the daemon knows about one real of one virtual."""

    slot: Slot
    track: Track
    check: Check | None = None
    connect: Check | None = None
    combined_left: int = 0
    last: Result | None = None
    last_time: float | None = None  # wall clock of the last result
    last_kind: str = ""  # ok | fail | suspect | director
    weight: int | None = None  # the weight the last good result asked for
    checks: int = 0
    job: Job | None = None
    maintenance: str | None = None  # the maintenancedir entry that holds it down
    placed: bool = False  # its entry was written since it last went down (readdquiescent=no)
    down_since: float | None = None  # monotonic, for emailalertfreq
    last_mailed: float | None = None
    ramp: slowstart.Ramp | None = None  # climbing back to its weight (slowstart=)
    ramp_when_new: bool = False  # its pool served when it was added: its first up ramps too

    @property
    def target(self) -> int:
        """The weight it should have when up: derived by its check, else configured."""
        return self.slot.dest.weight if self.weight is None else self.weight

    def up_weight(self) -> int | None:
        """The weight to write while up: the target, capped while a slow start lasts."""
        return self.weight if self.ramp is None else slowstart.cap(self.ramp, self.target)

    def pick(self) -> Check:
        """The check to run now; combined checktypes run N connects between full checks."""
        assert self.check is not None
        if self.connect is None:
            return self.check
        if self.combined_left > 0:
            self.combined_left -= 1
            return self.connect
        self.combined_left = self.slot.plan.combined
        return self.check


@dataclass(slots=True)
class PoolState:
    bad: int = 0  # reals whose last result failed for a director-side reason
    all_down: bool = False  # no real up and none unknown (fallbackcommand start was run)
    guarded: bool = False
    fallback_active: bool = False
    guard_logged: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one result did to a real: the caller writes, logs and alerts from this."""

    kind: str  # ok | fail | suspect | director | maintenance
    before: Track
    after: Track
    weight_changed: bool = False  # an UP real's derived weight moved
    held: bool = False  # a failure that did not count (director-side, or a guarded pool)

    @property
    def transition(self) -> bool:
        return self.before.phase is not self.after.phase


def fixed_track(slot: Slot) -> Track | None:
    """The track of a real that is never checked (checktype on/off, service=none)."""
    fixed = slot.plan.fixed
    if fixed is None:
        return None
    return Track(Phase.UP if fixed is State.UP else Phase.DOWN)


def classify(result: Result, lag: float, behind: float) -> str:
    """``ok``, ``fail``, ``suspect`` (started late, or no route) or ``director`` (our fault, or starved)."""
    if result.state is not State.DOWN:
        return "ok"
    if result.details.get("fault") == "director" or "starved" in result.details:
        return "director"  # our fault, or the loop was blocked during the check: not the real's
    if lag > behind or result.reason.startswith(_SUSPECT_REASONS):
        return "suspect"
    return "fail"


def observe(rs: RealState, pstate: PoolState, pool: Pool, result: Result, kind: str) -> Outcome:
    """Record ``result`` (classified as ``kind``) and move the real's track."""
    rs.checks += 1
    rs.last = result
    before = rs.track
    if rs.maintenance is not None:
        return Outcome("maintenance", before, before)  # held down; results count again after
    pstate.bad += (kind in BAD_KINDS) - (rs.last_kind in BAD_KINDS)
    rs.last_kind = kind
    update_guard(pool, pstate)
    if kind == "ok":
        seen = Observation.OK
    elif kind == "director" or pstate.guarded:
        seen = Observation.HOLD
    else:
        seen = Observation.FAIL
    slot = rs.slot
    rs.track = step(before, seen, slot.rise, slot.fall)
    held = seen is Observation.HOLD
    # a weight the check derived; None: the configured one (which a reload may change)
    derived = None if result.weight == result.target.weight else result.weight
    new_weight = derived if seen is Observation.OK else rs.weight
    if rs.track.phase is not before.phase:
        rs.weight = new_weight
        return Outcome(kind, before, rs.track, held=held)
    if seen is Observation.OK and new_weight != rs.weight:
        rs.weight = new_weight
        return Outcome(kind, before, rs.track, weight_changed=rs.track.phase is Phase.UP)
    return Outcome(kind, before, rs.track, held=held)


def mark_placed(pool: Pool, reals: dict[str, RealState], in_kernel: dict[tuple[str, int], Dest]) -> None:
    """Remember which down reals have their (weight 0) entry in the kernel (readdquiescent)."""
    for sid in pool.slots:
        rs = reals[sid]
        if rs.track.phase is Phase.DOWN and not rs.placed and rs.slot.dest.key in in_kernel:
            rs.placed = True


def update_guard(pool: Pool, pstate: PoolState) -> bool:
    """Set ``pstate.guarded`` from its count of bad results; True when it changed."""
    n = len(pool.slots)
    guarded = n >= 2 and pstate.bad * 2 > n
    if guarded is pstate.guarded:
        return False
    pstate.guarded = guarded
    return True


def desired_dest(slot: Slot, pool: Pool, phase: Phase, weight: int | None) -> Dest | None:
    """The kernel entry ``slot`` should have in ``phase`` (``None``: no entry)."""
    if phase is Phase.UP:
        w = slot.dest.weight if weight is None else weight
        return slot.dest if w == slot.dest.weight else _weighted(slot.dest, w)
    if pool.quiescent:
        return slot.dest if slot.dest.weight == 0 else _weighted(slot.dest, 0)
    return None


def _weighted(dest: Dest, weight: int) -> Dest:
    """``dest`` with another weight (half the cost of ``dataclasses.replace``: every flush makes many)."""
    return type(dest)(dest.addr, dest.port, dest.fwd, weight, dest.u_thresh, dest.l_thresh)


def weight_for(rs: RealState, pool: Pool) -> int:
    """The weight the kernel should give ``rs`` now (0 when it should have no entry)."""
    d = desired_dest(rs.slot, pool, rs.track.phase, rs.up_weight())
    return 0 if d is None else d.weight


@dataclass(slots=True)
class DesiredPool:
    """What one pool should look like in the kernel, and the pool-wide flags behind it."""

    service: Service
    dests: dict[tuple[str, int], Dest] = field(default_factory=dict)
    all_down: bool = False  # no real up and none unknown
    fallback_on: bool = False


def desired_pool(
    pool: Pool,
    reals: dict[str, RealState],
    in_kernel: dict[tuple[str, int], Dest],
    *,
    readdquiescent: bool,
    drained: Container[str] = (),
) -> DesiredPool:
    """The service and destinations ``pool`` should have now; ``in_kernel``: what it has;
    ``drained``: the reals an operator drained (weight 0, entry kept)."""
    out = DesiredPool(pool.service)
    any_up = any_unknown = False
    for sid in pool.slots:
        rs = reals[sid]
        phase = rs.track.phase
        any_up |= phase is Phase.UP
        any_unknown |= phase is Phase.UNKNOWN
        d = desired_dest(rs.slot, pool, phase, rs.up_weight())
        if d is None:
            continue
        if phase is Phase.DOWN and rs.placed and not readdquiescent and d.key not in in_kernel:
            continue  # quiesced, then deleted by hand: ldirectord leaves it out (readdquiescent=no)
        if d.weight and sid in drained:
            d = _weighted(d, 0)
        out.dests[d.key] = d
    out.all_down = bool(pool.slots) and not any_up and not any_unknown
    fallback = pool.fallback
    out.fallback_on = fallback is not None and out.all_down
    if out.fallback_on and fallback is not None and fallback.key not in out.dests:
        out.dests[fallback.key] = fallback
    return out
