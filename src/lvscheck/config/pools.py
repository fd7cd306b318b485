"""From a :class:`~lvscheck.config.Config` to pools: IPVS services, their reals, their checks.

Pure: no sockets, no clocks.  :func:`build_layout` turns the typed config into
one :class:`Slot` per (virtual, real) with its IPVS service and destination,
its check plan and its counts, and one :class:`Pool` per virtual (its reals,
fallback, quiescent, cleanstop, alerts).  It never raises: what cannot be run
(``external-perl``) and duplicate reals are warnings naming ``file:line``, and
the rest of the file runs.  :mod:`lvscheck.config.prepare` is its only caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lvscheck.adapters.ipvs.table import (
    SCHED_FLAGS,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    Dest,
    Service,
    ServiceKey,
)
from lvscheck.config.model import VIA_MARK_BASE, Problem
from lvscheck.config.via import MarkRange, private_services

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lvscheck.config.model import Config, VirtualService
    from lvscheck.config.translate import CheckPlan

__all__ = ["Layout", "Pool", "Slot", "build_layout", "service_for"]


@dataclass(frozen=True, slots=True)
class Slot:
    """One real of one virtual: what to check, how often, and its kernel entry."""

    id: str  # "tcp:10.0.0.1:80 10.0.0.2:80"
    pool: str  # the virtual's key
    dest: Dest  # with the configured weight
    plan: CheckPlan
    rise: int
    fall: int
    interval: float
    fastinterval: float
    jitter: float
    line: int

    @property
    def schedule_key(self) -> tuple[object, ...]:
        """What, when changed by a reload, restarts this real's check loop."""
        return (
            self.plan.spec,
            self.plan.connect,
            self.plan.combined,
            self.plan.fixed,
            self.interval,
            self.fastinterval,
            self.jitter,
        )


@dataclass(frozen=True, slots=True)
class Pool:
    """One virtual service and the settings that act on the whole pool."""

    key: str
    name: str
    service: Service
    virtual: VirtualService
    slots: tuple[str, ...]
    fallback: Dest | None
    quiescent: bool
    cleanstop: bool


@dataclass(slots=True)
class Layout:
    """Everything the daemon manages for one config."""

    pools: dict[str, Pool] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)
    by_service: dict[ServiceKey, str] = field(default_factory=dict)
    #: via=vip: a private firewall-mark service per real address (docs/via-vip.md)
    private: dict[ServiceKey, tuple[Service, Dest]] = field(default_factory=dict)
    #: the marks lvscheck owns: a kernel service with one of them that is not in ``private`` is removed
    marks: MarkRange = field(default_factory=lambda: MarkRange(VIA_MARK_BASE))

    def private_kept_at_stop(self) -> set[ServiceKey]:
        """Private services used by a virtual with ``cleanstop=no`` (the others go at stop)."""
        kept: set[ServiceKey] = set()
        for slot in self.slots.values():
            spec = slot.plan.spec
            if spec is not None and spec.target.mark and not self.pools[slot.pool].cleanstop:
                kept.update(k for k in self.private if k.fwmark == spec.target.mark)
        return kept

    @property
    def reals(self) -> int:
        """Reals the daemon manages (duplicates and reals it cannot check are not among them)."""
        return len(self.slots)


def service_for(virtual: VirtualService) -> Service:
    """The IPVS service ``ipvsadm -A`` would create for ``virtual``."""
    import socket

    af = socket.AF_INET6 if virtual.ipv6 else socket.AF_INET
    if virtual.fwmark is not None:
        key = ServiceKey.mark(virtual.fwmark, af)
    else:
        assert virtual.address is not None
        proto = socket.IPPROTO_UDP if virtual.protocol == "udp" else socket.IPPROTO_TCP
        key = ServiceKey(af, proto, virtual.address, virtual.port)
    flags = 0
    timeout = 0
    netmask = None
    if virtual.persistent is not None:
        flags |= SVC_F_PERSISTENT
        timeout = virtual.persistent
        if virtual.netmask is not None:
            netmask = virtual.netmask  # IPv4: a dotted mask; IPv6: a prefix length (ipvsadm -M 64)
    if virtual.ops and virtual.protocol == "udp":
        flags |= SVC_F_ONEPACKET
    if virtual.schedflags:
        for word in virtual.schedflags.split(","):
            flags |= SCHED_FLAGS.get(word.strip(), 0)
    return Service(key, scheduler=virtual.scheduler, flags=flags, timeout=timeout, netmask=netmask)


def _dest_port(virtual: VirtualService, port: int, fwd: str) -> int:
    # ipvsadm gives a real without a port the virtual's port (fwmark virtuals keep 0).
    if port == 0 and virtual.fwmark is None:
        return virtual.port
    return port


def build_layout(config: Config, plans: Sequence[CheckPlan], warnings: list[Problem]) -> Layout:
    """The layout for ``config``; what it leaves out is appended to ``warnings`` (file:line)."""
    layout = Layout()
    by_virtual: dict[str, list[CheckPlan]] = {}
    for plan in plans:
        by_virtual.setdefault(plan.virtual.key, []).append(plan)
    for virtual in config.virtuals:
        service = service_for(virtual)
        ids = [
            sid
            for plan in by_virtual.get(virtual.key, [])
            if (sid := _add_slot(layout, config.source, virtual, plan, warnings)) is not None
        ]
        layout.pools[virtual.key] = Pool(
            key=virtual.key,
            name=virtual.name,
            service=service,
            virtual=virtual,
            slots=tuple(ids),
            fallback=_fallback(virtual),
            quiescent=virtual.quiescent,
            cleanstop=virtual.cleanstop,
        )
        layout.by_service[service.key] = virtual.key
    layout.private = private_services(
        p.spec.target for p in plans if p.spec is not None and p.spec.target.mark
    )
    layout.marks = MarkRange(config.lvscheck.viamarks)
    return layout


def _add_slot(
    layout: Layout, source: str, virtual: VirtualService, plan: CheckPlan, warnings: list[Problem]
) -> str | None:
    real = plan.real
    directive = "real6" if real.ipv6 else "real"
    if plan.unsupported:
        message = f"{plan.unsupported}; this real is not managed (no IPVS entry, no check)"
        warnings.append(Problem(source, real.line, directive, message))
        return None
    dest = Dest(
        real.host,
        _dest_port(virtual, real.port, real.forwarding),
        real.forwarding,
        real.weight,
        real.upper or 0,
        real.lower or 0,
    )
    sid = f"{virtual.key} {dest}"
    first = layout.slots.get(sid)
    if first is not None:
        message = (
            f"{real.address}: duplicate real server in virtual={virtual.name}: ignored, the first one "
            f"(line {first.line}) is used (ldirectord runs both and they fight over one IPVS entry)"
        )
        warnings.append(Problem(source, real.line, directive, message))
        return None
    ls = virtual.lvscheck
    interval = virtual.interval
    layout.slots[sid] = Slot(
        id=sid,
        pool=virtual.key,
        dest=dest,
        plan=plan,
        rise=max(1, ls.rise),
        fall=max(1, virtual.fall),
        interval=interval,
        fastinterval=ls.fastinterval if ls.fastinterval is not None else max(0.5, interval / 4),
        jitter=ls.jitter,
        line=real.line,
    )
    return sid


def _fallback(virtual: VirtualService) -> Dest | None:
    fb = virtual.fallback
    if fb is None:
        return None
    return Dest(fb.host, _dest_port(virtual, fb.port_for(virtual), fb.forwarding), fb.forwarding, 1)
