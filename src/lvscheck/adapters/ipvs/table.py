"""The IPVS table as plain values, and the pure diff from "what is" to "what should be".

Nothing here talks to the kernel: :func:`plan` compares two :class:`Table` values
and returns the operations that turn one into the other.  Backends
(:mod:`.netlink` for the kernel, :class:`MemoryIPVS` for tests and hosts
without IPVS) apply them.

Every ``set`` carries the *whole* destination (forwarding method, weight and
thresholds), never a partial object: a partial one silently resets the
forwarding method to Route and the thresholds to 0 (pyroute2 and ``ipvsadm -e``
both do that).
"""

from __future__ import annotations

import enum
import errno
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "FWD_METHODS",
    "Dest",
    "MemoryIPVS",
    "Op",
    "OpError",
    "OpKind",
    "Service",
    "ServiceKey",
    "Table",
    "plan",
    "with_weight",
]

#: ldirectord's forwarding words -> IP_VS_CONN_F_* values (the kernel's fwd_method).
FWD_METHODS: Mapping[str, int] = {"masq": 0, "local": 1, "ipip": 2, "gate": 3}
_FWD_NAMES = {v: k for k, v in FWD_METHODS.items()}

#: IP_VS_SVC_F_* flags the daemon manages.
SVC_F_PERSISTENT = 0x1
SVC_F_ONEPACKET = 0x4
SVC_F_SCHED1 = 0x8  # sh-fallback / mh-fallback
SVC_F_SCHED2 = 0x10  # sh-port / mh-port
SVC_F_SCHED3 = 0x20
SVC_FLAGS_MASK = SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3
SCHED_FLAGS: Mapping[str, int] = {
    "sh-fallback": SVC_F_SCHED1,
    "mh-fallback": SVC_F_SCHED1,
    "sh-port": SVC_F_SCHED2,
    "mh-port": SVC_F_SCHED2,
    "flag-1": SVC_F_SCHED1,
    "flag-2": SVC_F_SCHED2,
    "flag-3": SVC_F_SCHED3,
}

_PROTO_NAMES = {socket.IPPROTO_TCP: "TCP", socket.IPPROTO_UDP: "UDP", socket.IPPROTO_SCTP: "SCTP"}


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """What identifies a virtual service in the kernel: protocol+address+port, or a fwmark."""

    af: int
    protocol: int  # IPPROTO_TCP/UDP/SCTP; 0 for a fwmark service
    addr: str  # "" for a fwmark service
    port: int
    fwmark: int = 0

    @classmethod
    def tcp(cls, addr: str, port: int) -> ServiceKey:
        return cls(_family(addr), socket.IPPROTO_TCP, addr, port)

    @classmethod
    def udp(cls, addr: str, port: int) -> ServiceKey:
        return cls(_family(addr), socket.IPPROTO_UDP, addr, port)

    @classmethod
    def mark(cls, fwmark: int, af: int = socket.AF_INET) -> ServiceKey:
        return cls(af, 0, "", 0, fwmark)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.af == socket.AF_INET6 else "")
        host = f"[{self.addr}]" if self.af == socket.AF_INET6 else self.addr
        return f"{_PROTO_NAMES.get(self.protocol, str(self.protocol))} {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service and the settings ``ipvsadm -A`` would give it."""

    key: ServiceKey
    scheduler: str = "wrr"
    flags: int = 0  # IP_VS_SVC_F_* (persistent, one-packet, scheduler flags)
    timeout: int = 0  # persistence timeout in seconds (0: not persistent)
    netmask: str | None = None  # persistence netmask: IPv4 dotted quad, IPv6 prefix length; None: default

    def same_settings(self, other: Service) -> bool:
        """True when ``other`` needs no ``set`` to become this service."""
        return (
            self.scheduler == other.scheduler
            and (self.flags & SVC_FLAGS_MASK) == (other.flags & SVC_FLAGS_MASK)
            and self.timeout == other.timeout
            and (self.netmask is None or self.netmask == other.netmask)
        )


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server entry of a virtual service."""

    addr: str
    port: int
    fwd: str = "gate"  # masq | gate | ipip (| local)
    weight: int = 1
    u_thresh: int = 0
    l_thresh: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.addr, self.port)

    @property
    def fwd_method(self) -> int:
        return FWD_METHODS[self.fwd]

    @staticmethod
    def fwd_name(method: int) -> str:
        return _FWD_NAMES.get(method & 0x7, str(method))

    def __str__(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{host}:{self.port}"


@dataclass(slots=True)
class Table:
    """Services and their destinations (a kernel dump, or the daemon's desired state)."""

    services: dict[ServiceKey, Service] = field(default_factory=dict)
    dests: dict[ServiceKey, dict[tuple[str, int], Dest]] = field(default_factory=dict)

    def add(self, service: Service, dests: Iterable[Dest] = ()) -> None:
        self.services[service.key] = service
        bucket = self.dests.setdefault(service.key, {})
        for d in dests:
            bucket[d.key] = d

    def dest(self, key: ServiceKey, addr: str, port: int) -> Dest | None:
        return self.dests.get(key, {}).get((addr, port))

    def copy(self) -> Table:
        return Table(dict(self.services), {k: dict(v) for k, v in self.dests.items()})

    def __len__(self) -> int:
        return sum(len(v) for v in self.dests.values())


class OpKind(enum.Enum):
    ADD_SERVICE = "add service"
    SET_SERVICE = "edit service"
    DEL_SERVICE = "delete service"
    ADD_DEST = "add real"
    SET_DEST = "edit real"
    DEL_DEST = "delete real"


@dataclass(frozen=True, slots=True)
class Op:
    """One write to the IPVS table."""

    kind: OpKind
    service: Service
    dest: Dest | None = None

    def __str__(self) -> str:
        if self.dest is None:
            return f"{self.kind.value} {self.service.key}"
        return f"{self.kind.value} {self.dest} weight {self.dest.weight} ({self.service.key})"


@dataclass(frozen=True, slots=True)
class OpError:
    """An operation the kernel refused, with its errno."""

    op: Op
    errno: int

    def __str__(self) -> str:
        import os

        return f"{self.op}: {os.strerror(self.errno)}"


def plan(desired: Table, actual: Table, *, remove: Iterable[ServiceKey] = ()) -> list[Op]:
    """The operations that make ``actual`` hold ``desired``.

    Services of ``desired`` are managed wholly: missing ones are added, changed
    ones edited, and destinations the kernel has but ``desired`` lacks are
    deleted.  Services listed in ``remove`` (dropped from the config) are deleted
    if present.  Any other kernel service is left alone.  Order: services first,
    then edits and additions of reals, deletions of reals last (a pool is never
    emptier than it has to be while the batch runs).
    """
    ops: list[Op] = []
    later: list[Op] = []
    for key in remove:
        if key in actual.services and key not in desired.services:
            ops.append(Op(OpKind.DEL_SERVICE, actual.services[key]))
    for key, service in desired.services.items():
        have = actual.services.get(key)
        if have is None:
            ops.append(Op(OpKind.ADD_SERVICE, service))
        elif not service.same_settings(have):
            ops.append(Op(OpKind.SET_SERVICE, service))
        want_dests = desired.dests.get(key, {})
        have_dests = actual.dests.get(key, {}) if have is not None else {}
        for dkey, dest in want_dests.items():
            cur = have_dests.get(dkey)
            if cur is None:
                ops.append(Op(OpKind.ADD_DEST, service, dest))
            elif cur != dest:
                ops.append(Op(OpKind.SET_DEST, service, dest))
        for dkey, cur in have_dests.items():
            if dkey not in want_dests:
                later.append(Op(OpKind.DEL_DEST, service, cur))
    return ops + later


class MemoryIPVS:
    """An IPVS table in memory with the kernel's error rules (EEXIST, ENOENT).

    Used by the tests of the daemon logic on hosts without IPVS and by
    ``lvscheck daemon --ipvs=none`` (checks run, nothing is written).
    """

    name = "memory"

    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()
        self.writes = 0
        self.batches = 0

    def dump(self) -> Table:
        return self.table.copy()

    def apply(self, ops: Iterable[Op]) -> list[OpError]:
        errors: list[OpError] = []
        self.batches += 1
        t = self.table
        for op in ops:
            self.writes += 1
            key = op.service.key
            code = 0
            if op.kind is OpKind.ADD_SERVICE:
                if key in t.services:
                    code = errno.EEXIST
                else:
                    t.add(op.service)
            elif op.kind is OpKind.SET_SERVICE:
                if key not in t.services:
                    code = errno.ESRCH
                else:
                    t.services[key] = op.service
            elif op.kind is OpKind.DEL_SERVICE:
                if key not in t.services:
                    code = errno.ESRCH
                else:
                    del t.services[key]
                    t.dests.pop(key, None)
            else:
                assert op.dest is not None
                bucket = t.dests.get(key)
                if bucket is None:
                    code = errno.ESRCH
                elif op.kind is OpKind.ADD_DEST:
                    if op.dest.key in bucket:
                        code = errno.EEXIST
                    else:
                        bucket[op.dest.key] = op.dest
                elif op.dest.key not in bucket:
                    code = errno.ENOENT
                elif op.kind is OpKind.SET_DEST:
                    bucket[op.dest.key] = op.dest
                else:
                    del bucket[op.dest.key]
            if code:
                errors.append(OpError(op, code))
        return errors

    def close(self) -> None:
        pass


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def with_weight(dest: Dest, weight: int) -> Dest:
    """``dest`` with another weight (everything else kept)."""
    return dest if dest.weight == weight else replace(dest, weight=weight)
