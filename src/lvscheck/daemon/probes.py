"""One probe per real: virtuals that check the same real the same way share one check loop.

A real behind several virtuals (one per port, one per VIP, IPv4 and IPv6 ...)
was checked once per virtual: three virtuals at ``checkinterval=1`` sent it three
connections a second (keepalived #2111, #2358; Seesaw's ``dedup()``).  When the
prepared checks of several reals are *the same check* -- same check type, same
address and port, same configured weight and forwarding, same options (timeouts
included) -- the daemon runs one probe for all of them, on the shortest interval
(and fast interval, and jitter) among them, and hands its result to every one.
Rise and fall, weights, slow start and events stay per pool: each real keeps its
own :class:`~lvscheck.daemon.pools.RealState`.

Not shared: combined checktypes (their N connect checks count per real), reals
without a check, and every real of a virtual with ``#lvscheck: shareprobe=no``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lvscheck.daemon.scheduler import Job
from lvscheck.daemon.state import Phase

if TYPE_CHECKING:
    from lvscheck.config.pools import Layout
    from lvscheck.daemon.director import Director
    from lvscheck.daemon.pools import RealState
    from lvscheck.plugin.check import Check

__all__ = ["SharedProbe", "groups", "install_shared", "probe_key"]

ProbeKey = tuple[object, ...]


@dataclass(slots=True)
class SharedProbe:
    """One check loop feeding several reals (slot ids), and what it was started with."""

    job: Job
    members: tuple[str, ...]
    schedule: tuple[float, float, float]


def probe_key(check: Check) -> ProbeKey:
    """What makes two prepared checks the same probe (the virtual's name does not)."""
    spec = check.spec
    target = spec.target
    return (
        type(check).__qualname__,
        spec.check,
        target.host,
        check.port,
        target.weight,
        target.forwarding,
        target.via,  # via=vip: checked through this VIP (another VIP, or the RIP, is another path)
        target.mark,
        tuple(sorted(spec.options.items())),
    )


def groups(
    layout: Layout, checks: Mapping[str, tuple[Check | None, Check | None]]
) -> dict[ProbeKey, list[str]]:
    """Slot ids that can share one probe, by probe key; only groups of two or more."""
    by_key: dict[ProbeKey, list[str]] = {}
    for sid, slot in layout.slots.items():
        check, connect = checks.get(sid, (None, None))
        if check is None or connect is not None:
            continue
        if not layout.pools[slot.pool].virtual.lvscheck.shareprobe:
            continue
        by_key.setdefault(probe_key(check), []).append(sid)
    return {key: sids for key, sids in by_key.items() if len(sids) > 1}


def probe_id(key: ProbeKey) -> str:
    """A scheduler id for a shared probe, stable across reloads: ``probe http 10.0.0.2:80 3f2a9c1e``."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
    host, port = key[2], key[3]
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return f"probe {key[1]} {shown}:{port} {digest}"


def _changing(reals: list[RealState]) -> Callable[[], bool]:
    return lambda: any(rs.track.changing for rs in reals)


def install_shared(
    d: Director, shared: dict[ProbeKey, list[str]], restarted: set[str], first_spread: float
) -> None:
    """Start, keep or stop the shared probes so that they match ``shared``; point members at them."""
    wanted: set[str] = set()
    for key, sids in shared.items():
        jid = probe_id(key)
        wanted.add(jid)
        reals = [d.reals[sid] for sid in sids]
        slots = [rs.slot for rs in reals]
        schedule = (
            min(s.interval for s in slots),
            min(s.fastinterval for s in slots),
            min(s.jitter for s in slots),
        )
        members = tuple(sids)
        old = d.probes.get(jid)
        if (
            old is None
            or old.members != members
            or old.schedule != schedule
            or restarted & set(sids)
            or jid not in d.scheduler
        ):
            job = Job(jid, reals[0].pick, *schedule, _changing(reals))
            unknown = any(rs.track.phase is Phase.UNKNOWN for rs in reals)
            within = first_spread if unknown else schedule[0]
            d.scheduler.start(job, first_within=min(within, schedule[0]))
            d.probes[jid] = old = SharedProbe(job, members, schedule)
        for rs in reals:
            rs.job = old.job
    for jid in list(d.probes):
        if jid not in wanted:
            d.scheduler.stop(jid)
            del d.probes[jid]
    d.probe_of = {sid: jid for jid, probe in d.probes.items() for sid in probe.members}
