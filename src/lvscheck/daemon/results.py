"""What a check result does: the pools decide, the kernel view writes, events tell.

:func:`on_result` is where the scheduler's results arrive: the pure :mod:`.pools`
functions classify and count it, and a change of phase (:func:`transition`) marks
the pool for the next batched IPVS write and sends the ``up``/``down`` event (and
its mail).  :func:`apply_maintenance` holds reals down for ``maintenancedir``.
A real that comes back in a pool with ``slowstart=`` climbs to its weight in
steps (:mod:`.slowstart`); :func:`ramp_tick` moves every climb along.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lvscheck.daemon import pools as P
from lvscheck.daemon import slowstart
from lvscheck.daemon.actions import maintenance_matches
from lvscheck.daemon.state import Phase, Track

if TYPE_CHECKING:
    from lvscheck.config.pools import Pool
    from lvscheck.daemon.director import Director
    from lvscheck.daemon.scheduler import Job
    from lvscheck.model import Result

__all__ = ["apply_maintenance", "on_result", "ramp_tick", "transition"]

log = logging.getLogger("lvscheck.daemon")


def apply_maintenance(d: Director, names: Iterable[str]) -> None:
    """Hold down the reals ``names`` (maintenancedir entries) match; release the others."""
    names = set(names)
    if not names and not d.maintenance_held:
        return  # every second: no walk over 40,000 reals when nothing is or was in maintenance
    held = maintenance_matches({sid: rs.slot.dest for sid, rs in d.reals.items()}, names)
    d.maintenance_held = bool(held)
    for sid, rs in d.reals.items():
        name = held.get(sid)
        if name == rs.maintenance:
            continue
        before, rs.maintenance = rs.track, name
        if name is not None:
            source = "lvscheck maintenance" if name in d.overrides.maintenance else "maintenancedir"
            transition(d, rs, before, Track(Phase.DOWN), f"in maintenance ({name} in {source})")
            continue
        fixed = P.fixed_track(rs.slot)
        if fixed is not None:  # never checked: back to its fixed state at once
            transition(d, rs, before, fixed, "out of maintenance")
        else:
            log.info("%s: out of maintenance; it comes back after %d good checks", sid, rs.slot.rise)


# -- results ------------------------------------------------------------------------------


def on_result(d: Director, job: Job, result: Result, lag: float) -> None:
    """One check result (the scheduler calls this): of one real, or of a probe several share."""
    shared = d.probes.get(job.id)
    if shared is None:
        _on_real_result(d, job.id, job, result, lag, count=True)
        return
    for i, sid in enumerate(shared.members):
        rs = d.reals.get(sid)
        if rs is not None and rs.check is not None:  # each pool sees its own target (its virtual)
            mine = result.replace(target=rs.check.spec.target)
            _on_real_result(d, sid, job, mine, lag, count=i == 0)


def _on_real_result(d: Director, sid: str, job: Job, result: Result, lag: float, *, count: bool) -> None:
    rs = d.reals.get(sid)
    if rs is None or rs.job is not job:
        return  # a reload replaced this real while its check ran
    if count:
        d.counters.count(result)
    rs.last_time = time.time()
    d.history.checked(job.id, result.latency)
    pool = d.layout.pools[rs.slot.pool]
    pstate = d.pools[pool.key]
    was_guarded = pstate.guarded
    outcome = P.observe(rs, pstate, pool, result, P.classify(result, lag, d.options.behind))
    d.actions.monitor(pool, rs, result)
    if pstate.guarded != was_guarded:
        _guard_event(d, pool, pstate)
    d.counters.held += outcome.held
    if outcome.transition:
        transition(d, rs, outcome.before, outcome.after, result.reason, result)
    elif outcome.weight_changed:
        d.view.mark((pool.key,))
    elif outcome.kind in ("fail", "suspect") and rs.track.streak and rs.track.phase is Phase.UP:
        log.info("%s: soft failure %d/%d: %s", rs.slot.id, rs.track.streak, rs.slot.fall, result.reason)


def transition(
    d: Director, rs: P.RealState, before: Track, after: Track, reason: str, result: Result | None = None
) -> None:
    rs.track = after
    if after.phase is before.phase:
        return
    pool = d.layout.pools[rs.slot.pool]
    if after.phase is Phase.DOWN:  # its entry is in place if the kernel has one now (readdquiescent)
        rs.placed = rs.slot.dest.key in d.kernel.dests.get(pool.service.key, {})
    _slow_start(d, rs, pool, before, after)
    d.counters.transitions += 1
    d.history.changed(rs.slot.id, time.time(), before.phase.value, after.phase.value, reason)
    d.view.mark((pool.key,))
    d.events.emit(
        "up" if after.phase is Phase.UP else "down",
        mail=d.mail.get(pool.key),
        virtual=pool.name,
        real=str(rs.slot.dest),
        weight=P.weight_for(rs, pool),
        was=before.phase.value,
        reason=reason,
        **({} if result is None else {"check": result.check, "latency_ms": result.latency_ms}),
    )


def _guard_event(d: Director, pool: Pool, pstate: P.PoolState) -> None:
    if pstate.guarded:
        d.events.emit(
            "guard",
            virtual=pool.name,
            failing=pstate.bad,
            reals=len(pool.slots),
            message="most checks of this pool fail for a reason on the director's side "
            "(out of file descriptors or buffers, no route, the check loop far behind): "
            "NOT draining the pool; fix the director",
        )
    else:
        d.events.emit("guard-cleared", virtual=pool.name, failing=pstate.bad, reals=len(pool.slots))


# -- slow start ---------------------------------------------------------------------------


def _slow_start(d: Director, rs: P.RealState, pool: Pool, before: Track, after: Track) -> None:
    """Start a climb when ``rs`` comes back up; drop it when it goes down (a flap restarts it)."""
    if after.phase is not Phase.UP:
        rs.ramp = None
        d.ramping.discard(rs.slot.id)
        return
    duration = pool.virtual.lvscheck.slowstart
    if duration <= 0:
        return
    if before.phase is Phase.UNKNOWN and not rs.ramp_when_new:
        return  # a cold start: nobody else carried traffic when it was added, so no throttle
    rs.ramp = slowstart.start(time.monotonic(), duration)
    if rs.ramp is not None:
        d.ramping.add(rs.slot.id)
        log.info(
            "%s: slow start, weight %d of %d, up to it over %g s in %d steps",
            rs.slot.id,
            slowstart.cap(rs.ramp, rs.target),
            rs.target,
            duration,
            rs.ramp.steps,
        )


def ramp_tick(d: Director) -> None:
    """Move every climbing real to its current step; mark the pools whose weights change."""
    if not d.ramping:
        return
    now = time.monotonic()
    dirty: set[str] = set()
    for sid in list(d.ramping):
        rs = d.reals.get(sid)
        if rs is None or rs.ramp is None or rs.track.phase is not Phase.UP:
            d.ramping.discard(sid)
            if rs is not None:
                rs.ramp = None
            continue
        moved = slowstart.advance(rs.ramp, now)
        if moved is None:
            rs.ramp = None
            d.ramping.discard(sid)
            log.info("%s: slow start over, weight %d", sid, rs.target)
        if moved is not False:
            dirty.add(rs.slot.pool)
    if dirty:
        d.view.mark(dirty)
