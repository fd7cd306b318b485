"""From a :class:`~lvscheck.config.Config` to what the daemon manages: services, reals, checks.

Pure: no sockets, no clocks.  :func:`build_layout` turns the typed config into
one :class:`Slot` per (virtual, real) with its IPVS service and destination,
its check plan and its counts, and one :class:`Pool` per virtual (its reals,
fallback, quiescent, cleanstop, alerts).  :func:`desired_dest` says what a real
should look like in the kernel for a phase, the rule ldirectord applies:

* UP: the configured weight (or the weight the check derived);
* DOWN, ``quiescent=yes``: weight 0, entry kept; ``quiescent=no``: entry removed;
* UNKNOWN (never checked, not in the kernel): like DOWN, so an unchecked real
  never takes traffic (ldirectord briefly adds it at full weight; we do not).
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
from lvscheck.daemon.state import Phase
from lvscheck.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lvscheck.config.model import CheckPlan, Config, VirtualService

__all__ = ["Layout", "Pool", "Slot", "build_layout", "desired_dest", "service_for"]


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
    warnings: list[str] = field(default_factory=list)  # accepted, but worth a log line (file:line)


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
        if virtual.netmask is not None and not virtual.ipv6:
            netmask = virtual.netmask
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


def build_layout(config: Config, plans: Sequence[CheckPlan]) -> Layout:
    """The layout for ``config``; raises ConfigError (file:line) for what the daemon cannot run."""
    layout = Layout()
    problems: list[str] = []
    by_virtual: dict[str, list[CheckPlan]] = {}
    for plan in plans:
        by_virtual.setdefault(plan.virtual.key, []).append(plan)
    for virtual in config.virtuals:
        service = service_for(virtual)
        ids: list[str] = []
        for plan in by_virtual.get(virtual.key, []):
            real = plan.real
            if plan.unsupported:
                problems.append(f"{config.source}:{real.line}: real={real.address}: {plan.unsupported}")
                continue
            dest = Dest(
                real.host,
                _dest_port(virtual, real.port, real.forwarding),
                real.forwarding,
                real.weight,
                real.upper or 0,
                real.lower or 0,
            )
            sid = f"{virtual.key} {dest}"
            if sid in layout.slots:
                layout.warnings.append(
                    f"{config.source}:{real.line}: real={real.address}: duplicate real server in "
                    f"virtual={virtual.name}: ignored, the first one (line {layout.slots[sid].line}) is used "
                    "(ldirectord runs both and they fight over one IPVS entry)"
                )
                continue
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
            ids.append(sid)
        fb = virtual.fallback
        fallback = None
        if fb is not None:
            fallback = Dest(
                fb.host, _dest_port(virtual, fb.port_for(virtual), fb.forwarding), fb.forwarding, 1
            )
        layout.pools[virtual.key] = Pool(
            key=virtual.key,
            name=virtual.name,
            service=service,
            virtual=virtual,
            slots=tuple(ids),
            fallback=fallback,
            quiescent=virtual.quiescent,
            cleanstop=virtual.cleanstop,
        )
        layout.by_service[service.key] = virtual.key
    if problems:
        raise ConfigError(problems[0], tuple(problems))
    return layout


def desired_dest(slot: Slot, pool: Pool, phase: Phase, weight: int | None) -> Dest | None:
    """The kernel entry ``slot`` should have in ``phase`` (``None``: no entry)."""
    if phase is Phase.UP:
        w = slot.dest.weight if weight is None else weight
        return slot.dest if w == slot.dest.weight else _reweigh(slot.dest, w)
    if pool.quiescent:
        return _reweigh(slot.dest, 0)
    return None


def _reweigh(dest: Dest, weight: int) -> Dest:
    from dataclasses import replace

    return dest if dest.weight == weight else replace(dest, weight=weight)
