"""The daemon's counters and the status document that ``lvscheck status`` and metrics read."""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.history import real_history
from lvscheck.daemon.statusfields import daemon_extras

if TYPE_CHECKING:
    from lvscheck.config.pools import Pool
    from lvscheck.daemon.director import Director
    from lvscheck.daemon.pools import RealState
    from lvscheck.model import Result

__all__ = ["LATENCY_BOUNDS", "Counters", "document", "head", "pool_head", "real_row", "tail"]

LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Counters:
    checks: dict[str, int] = field(default_factory=lambda: {"up": 0, "degraded": 0, "down": 0})
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS))
    latency_sum: float = 0.0
    transitions: int = 0
    write_errors: int = 0
    restored: int = 0
    reloads: int = 0
    reload_failures: int = 0
    held: int = 0
    #: the last reload: {"ok": bool, "why": ..., "time": ..., "problems": [...]}
    last_reload: dict[str, Any] | None = None

    def count(self, result: Result) -> None:
        self.checks[result.state.value] = self.checks.get(result.state.value, 0) + 1
        self.latency_sum += result.latency
        i = bisect.bisect_left(LATENCY_BOUNDS, result.latency)
        if i < len(LATENCY_BOUNDS):
            self.latency_buckets[i] += 1


def ramp_fields(rs: RealState) -> dict[str, Any] | None:
    """A slow start in progress: the weight now, the target, the step and the seconds left."""
    if rs.ramp is None:
        return None
    from lvscheck.daemon.slowstart import cap

    return {
        "weight": cap(rs.ramp, rs.target),
        "target": rs.target,
        "step": rs.ramp.step,
        "steps": rs.ramp.steps,
        "ends_in": round(rs.ramp.ends_in(time.monotonic()), 1),
    }


def shared_fields(director: Director, sid: str) -> dict[str, Any] | None:
    """The probe this real shares with other virtuals: its id and the other virtuals' names."""
    jid = director.probe_of.get(sid)
    if jid is None:
        return None
    others = [director.reals[s].slot.pool for s in director.probes[jid].members if s != sid]
    names = [director.layout.pools[k].name for k in others if k in director.layout.pools]
    return {"probe": jid, "with": names}


def real_row(director: Director, pool: Pool, sid: str) -> dict[str, Any]:
    """One real of the status document (JSON-ready); :mod:`.statusrows` renders the same as text."""
    rs = director.reals[sid]
    kd = director.kernel.dest(pool.service.key, *rs.slot.dest.key)
    last = rs.last
    return {
        "real": str(rs.slot.dest),
        "state": rs.track.phase.value,
        "streak": rs.track.streak,
        "configured_weight": rs.slot.dest.weight,
        "kernel_weight": None if kd is None else kd.weight,
        "forwarding": rs.slot.dest.fwd,
        "check": None if last is None else last.check,
        "last_check": rs.last_time,
        "result": None if last is None else last.state.value,
        "latency_ms": None if last is None else last.latency_ms,
        "reason": None if last is None else last.reason,
        "checks": rs.checks,
        "fixed": None if rs.slot.plan.fixed is None else rs.slot.plan.fixed.value,
        "maintenance": rs.maintenance,
        **real_history(director.history.reals.get(sid)),
        "drained": director.overrides.is_drained(pool.name, str(rs.slot.dest)),
        "slowstart": ramp_fields(rs),
        "shared_probe": shared_fields(director, sid),
    }


def pool_head(director: Director, pool: Pool) -> dict[str, Any]:
    """One virtual of the status document without its ``reals`` (which come last)."""
    sk = pool.service.key
    pstate = director.pools[pool.key]
    return {
        "virtual": pool.name,
        "service": str(sk),
        "in_kernel": sk in director.kernel.services,
        "scheduler": pool.service.scheduler,
        "quiescent": pool.quiescent,
        "guarded": pstate.guarded,
        "fallback": None if pool.fallback is None else str(pool.fallback),
        "fallback_active": pstate.fallback_active,
    }


def head(director: Director) -> dict[str, Any]:
    """The daemon-wide fields before ``virtuals``."""
    return {
        "pid": os.getpid(),
        "config": director.config_path,
        "state": director.state,
        "ready": director.table_ready.is_set(),
        "started": director.started,
        "ipvs": director.backend.name,
        "checks": director.scheduler.checks,
        "start_lag": director.scheduler.lag.snapshot(),
        "loop": director.scheduler.watch.snapshot(),  # how long the check loop was blocked
        "ipvs_writes": director.backend.writes,
        "ipvs_write_errors": director.counters.write_errors,
        "last_reload": director.counters.last_reload,
        "warnings": list(director.warnings),
    }


def tail(director: Director) -> dict[str, Any]:
    """The daemon-wide fields after ``virtuals``."""
    return {"via_services": via_services(director), **daemon_extras(director)}


def document(director: Director) -> dict[str, Any]:
    """Everything ``lvscheck status`` shows (JSON-ready), built in one go.

    The control socket and the HTTP listener send the same document as text, assembled from
    per-real rows kept up to date between requests (:mod:`.statusrows`)."""
    pools = []
    for pool in director.layout.pools.values():
        reals = [real_row(director, pool, sid) for sid in pool.slots]
        pools.append({**pool_head(director, pool), "reals": reals})
    return {**head(director), "virtuals": pools, **tail(director)}


def via_services(director: Director) -> list[dict[str, Any]]:
    """The private firewall-mark services of ``via=vip`` checks (never client traffic)."""
    kernel = director.kernel
    out = []
    for key, (_service, dest) in sorted(director.layout.private.items()):
        kd = kernel.dest(key, *dest.key)
        out.append(
            {
                "service": str(key),
                "mark": key.fwmark,
                "real": dest.addr,
                "forwarding": dest.fwd,
                "in_kernel": key in kernel.services and kd is not None,
            }
        )
    return out
