"""``#lvscheck: via=vip``: which reals are checked through the virtual address, and their marks.

Pure: no sockets.  A real of a ``via=vip`` virtual is checked through the VIP when
it is forwarded by ``gate`` (LVS-DR) or ``ipip`` (LVS-TUN), the virtual has an
address (not ``fwmark=``) and its check type opens its sockets through the
engine's :class:`~lvscheck.plugin.probe.Probe` (the only place that sets
``SO_MARK``).  Each such real address and method gets one private firewall mark
``viamarks + n``; :func:`private_services` says which IPVS service each mark
needs: a firewall-mark service holding that one real, with its forwarding method.
docs/via-vip.md explains why.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

from lvscheck.adapters.ipvs.table import Dest, Service, ServiceKey
from lvscheck.config.model import VIA_MARK_COUNT, Problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lvscheck.config.model import Config, RealServer, VirtualService
    from lvscheck.config.translate import CheckPlan
    from lvscheck.model import Target

__all__ = ["VIA_CHECKS", "MarkRange", "assign_marks", "private_services", "problems", "why_rip"]

#: check types whose every socket is opened by Probe.connect / Probe.datagram (so it gets the mark)
VIA_CHECKS = frozenset(
    {
        "connect",
        "dns",
        "ftp",
        "http",
        "https",
        "http_proxy",
        "imap",
        "imaps",
        "pop",
        "pops",
        "nntp",
        "oracle",
        "radius",
        "simpletcp",
        "sip",
    }
)

#: (real address, forwarding method) -> its private mark
Marks = Mapping[tuple[str, str], int]


class MarkRange:
    """The private marks lvscheck owns: ``base`` .. ``base + VIA_MARK_COUNT - 1``."""

    __slots__ = ("base",)

    def __init__(self, base: int) -> None:
        self.base = base

    def __str__(self) -> str:
        return f"marks {self.base:#x}..{self.base + VIA_MARK_COUNT - 1:#x}"

    def __contains__(self, mark: object) -> bool:
        return isinstance(mark, int) and self.base <= mark < self.base + VIA_MARK_COUNT


def why_rip(virtual: VirtualService, real: RealServer, check: str | None) -> str | None:
    """Why a real of a ``via=vip`` virtual is still checked on its own address (None: it is not)."""
    if real.forwarding not in ("gate", "ipip"):
        return f"{real.forwarding} reals are checked on their own address (NAT rewrites to it anyway)"
    if virtual.fwmark is not None or virtual.address is None:
        return "a fwmark virtual has no address to check through: checked on the real's address"
    if check is not None and check not in VIA_CHECKS:
        return (
            f"check type {check} opens its own sockets (no socket mark): checked on the real's address; "
            f"through the VIP: {', '.join(sorted(VIA_CHECKS))}"
        )
    return None


def assign_marks(plans: Iterable[CheckPlan], base: int) -> dict[tuple[str, str], int]:
    """A mark for each (real address, method) checked through a VIP; stable for the same file.

    Marks follow the sorted real addresses, so restarting with the same file gives
    the same marks (and the same kernel services).
    """
    wanted: set[tuple[str, str]] = set()
    for plan in plans:
        if plan.virtual.lvscheck.via != "vip" or plan.spec is None:
            continue
        if why_rip(plan.virtual, plan.real, plan.spec.check) is None:
            wanted.add((plan.real.host, plan.real.forwarding))
    ordered = sorted(wanted, key=lambda k: (":" in k[0], _sort_key(k[0]), k[1]))
    return {key: base + n for n, key in enumerate(ordered[:VIA_MARK_COUNT])}


def private_services(targets: Iterable[Target]) -> dict[ServiceKey, tuple[Service, Dest]]:
    """The firewall-mark service (and its one real) each marked target needs."""
    out: dict[ServiceKey, tuple[Service, Dest]] = {}
    for target in targets:
        if not target.mark:
            continue
        af = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        key = ServiceKey.mark(target.mark, af)
        if key in out:
            continue
        # port 0: gate and ipip keep the packet's port, so one service serves every port of the real
        dest = Dest(target.host, 0, target.forwarding or "gate", 1)
        out[key] = (Service(key, scheduler="rr"), dest)
    return out


def _sort_key(addr: str) -> bytes:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        return socket.inet_pton(family, addr)
    except OSError:
        return addr.encode()


def problems(config: Config, plans: Iterable[CheckPlan]) -> tuple[list[Problem], list[Problem]]:
    """Errors (a fwmark virtual inside lvscheck's private marks) and warnings (reals of a
    ``via=vip`` virtual still checked on their own address, and why)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    owned = MarkRange(config.lvscheck.viamarks)
    uses_via = any(v.lvscheck.via == "vip" for v in config.virtuals)
    for virtual in config.virtuals:
        if uses_via and virtual.fwmark is not None and virtual.fwmark in owned:
            errors.append(
                Problem(
                    config.source,
                    virtual.line,
                    "virtual",
                    f"fwmark {virtual.fwmark} is one of lvscheck's private marks for via=vip "
                    f"({owned}): choose another mark, or move them with #lvscheck: viamarks=N",
                )
            )
    said: set[tuple[str, str]] = set()
    for plan in plans:
        virtual = plan.virtual
        if virtual.lvscheck.via != "vip" or plan.spec is None or plan.spec.target.mark:
            continue
        why = why_rip(virtual, plan.real, plan.spec.check)
        if why is None or (virtual.key, why) in said:
            continue
        said.add((virtual.key, why))
        line = virtual.lvscheck.lines.get("via", virtual.line)
        warnings.append(Problem(config.source, line, "#lvscheck via", f"virtual={virtual.name}: {why}"))
    return errors, warnings
