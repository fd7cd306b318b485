"""From the model to what lvscheck runs: one :class:`CheckPlan` per (virtual, real).

This is ldirectord's check dispatch (``_check_real`` and each ``check_*``) as
lvscheck :class:`~lvscheck.CheckSpec` values: the check type a service stands
for, the directives that check reads (as options of the same name), the
timeouts, the port ldirectord would check (``ld_checkport``), the per-real
request/receive override and the "/" ldirectord puts in front of a request,
and the options that make a check decide as ldirectord does
(:func:`lvscheck.config.as_ldirectord.road_options`: redirects, the whole body,
TLS chain-only verification, ...).

::

    plans(config) -> [CheckPlan]    one per (virtual, real): the CheckSpec(s) to run,
                                    or a fixed state (checktype=on/off, service=none)

To turn plans into runnable checks, prefer :func:`lvscheck.config.prepare.prepare`
(or ``prepare_spec`` for one spec) over ``Engine.prepare``: it drops the ldirectord
directives a check type does not have (with a warning) instead of failing, and
reports bad options at the line that set them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lvscheck.config.as_ldirectord import road_options
from lvscheck.config.model import Config, RealServer, VirtualService
from lvscheck.config.services import SERVICE_CHECKS, SERVICE_OPTIONS, SERVICE_PORTS
from lvscheck.model import CheckSpec, State, Target

__all__ = ["CheckPlan", "check_spec", "plans"]


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """How one real of one virtual is checked.

    * ``spec`` is the check to run (``None``: nothing to run);
    * ``fixed`` is the state when nothing runs: ``UP`` for ``checktype=on`` and
      ``service=none``, ``DOWN`` for ``checktype=off``; ``None`` when ``spec`` runs
      or when the check cannot be run by lvscheck (``unsupported`` says why);
    * ``connect`` and ``combined``: ``checktype=N`` runs ``spec`` once, then
      ``connect`` N times while it succeeds, then ``spec`` again.
    """

    virtual: VirtualService
    real: RealServer
    spec: CheckSpec | None
    fixed: State | None = None
    connect: CheckSpec | None = None
    combined: int = 0
    unsupported: str | None = None


def _timeouts(virtual: VirtualService) -> dict[str, str]:
    return {
        "checktimeout": str(virtual.checktimeout),
        "negotiatetimeout": str(virtual.negotiatetimeout),
    }


def _port_option(virtual: VirtualService, real: RealServer, service: str) -> dict[str, str]:
    """ldirectord's ``ld_checkport``: checkport, else the real's port, else the service's port."""
    if virtual.checkport is not None:
        return {"checkport": str(virtual.checkport)}
    if real.port > 0:
        return {}
    port = SERVICE_PORTS.get(service)
    return {"checkport": str(port)} if port is not None else {}


def _is_lvscheck_ldirectord(command: str) -> bool:
    return os.path.basename(command.strip().strip('"')) == "lvscheck-ldirectord"


def _normalise_request(options: dict[str, str], service: str) -> None:
    """ldirectord adds a "/" to every request, and each check takes it off again, except
    http (a path, or a full URL) and ftp (a path)."""
    request = options["request"]
    if service in ("http", "https", "ftp"):
        if "://" not in request and not request.startswith("/"):
            options["request"] = "/" + request
        elif "://" in request:
            options["request"] = request.lstrip("/")
    elif service == "http_proxy":
        options["request"] = request.lstrip("/")
    elif request.startswith("/"):
        options["request"] = request[1:]
    if not options["request"]:
        del options["request"]


def _overrides(virtual: VirtualService, real: RealServer) -> bool:
    """Whether ``real`` has its own request/receive that the virtual's check reads."""
    return (
        real.request is not None
        and real.receive is not None
        and "request" in SERVICE_OPTIONS.get(virtual.service, ())
    )


#: (check type, options) of a spec, without its target; None: nothing to run.
_Made = tuple[str, Mapping[str, str]] | None


def _made(virtual: VirtualService, real: RealServer, connect: bool) -> _Made:
    """What :func:`check_spec` returns, but the target (see there)."""
    checktype = "connect" if connect else virtual.checktype
    ls = virtual.lvscheck
    options: dict[str, str] = _timeouts(virtual)
    if checktype == "external" and _is_lvscheck_ldirectord(virtual.checkcommand):
        checktype = "negotiate"
    if checktype in ("on", "off", "external-perl"):
        return None
    if checktype == "external":
        options |= {"checkcommand": virtual.checkcommand, "vip": virtual.vip_arg, "vport": str(virtual.port)}
        options |= dict(ls.options)
        return ls.check or "external", MappingProxyType(options)
    if checktype in ("connect", "ping"):
        if checktype == "connect" and virtual.protocol == "udp":
            checktype = "ping"  # ldirectord pings for checktype=connect on udp
        options |= _port_option(virtual, real, virtual.service) if checktype == "connect" else {}
        if not connect:
            options |= dict(ls.options)
        return checktype if connect else (ls.check or checktype), MappingProxyType(options)
    return _negotiate(virtual, real, options)


def _negotiate(virtual: VirtualService, real: RealServer, options: dict[str, str]) -> _Made:
    """checktype=negotiate (or combined N): the service's own check, with the options it reads."""
    check = virtual.lvscheck.check or SERVICE_CHECKS.get(virtual.service)
    if check is None:
        return None  # service=none: ldirectord's check_none, always up
    options |= _port_option(virtual, real, virtual.service)
    options |= road_options(virtual, check)  # ldirectord's semantics; #lvscheck: lines override them
    for name in SERVICE_OPTIONS.get(virtual.service, ()):
        if name in virtual.options:
            options[name] = virtual.options[name]
    if real.request is not None and real.receive is not None and _overrides(virtual, real):
        options["request"] = real.request
        options["receive"] = real.receive
        if not real.receive:
            del options["receive"]
    if "request" in options:
        _normalise_request(options, virtual.service)
    if virtual.service == "dns":  # ldirectord: TCP for a tcp virtual, else UDP
        options["protocol"] = "tcp" if virtual.protocol == "tcp" else "udp"
    elif virtual.service == "sip":  # ldirectord: the virtual's protocol, TCP for fwmark services
        options["protocol"] = "udp" if virtual.protocol == "udp" else "tcp"
    options |= dict(virtual.lvscheck.options)
    return check, MappingProxyType(options)


class _Translator:
    """:func:`check_spec` for the reals of one virtual.

    The check type and options depend on a real only through whether it has a port and
    whether it has its own request/receive, so reals without the latter share one
    read-only options mapping: work and memory per real stay small in a 65,536-real range.
    """

    __slots__ = ("_shared", "name", "virtual")

    def __init__(self, virtual: VirtualService) -> None:
        self.virtual = virtual
        self.name = virtual.name
        self._shared: dict[tuple[bool, bool], _Made] = {}

    def spec(self, real: RealServer, *, connect: bool = False) -> CheckSpec | None:
        if _overrides(self.virtual, real):
            made = _made(self.virtual, real, connect)
        else:
            key = (connect, real.port > 0)
            if key not in self._shared:
                self._shared[key] = _made(self.virtual, real, connect)
            made = self._shared[key]
        if made is None:
            return None
        target = Target(
            real.host, real.port or None, weight=real.weight, virtual=self.name, forwarding=real.forwarding
        )
        return CheckSpec(made[0], target, made[1])

    def plan(self, real: RealServer) -> CheckPlan:
        virtual = self.virtual
        kind = virtual.checktype
        if kind == "on":
            return CheckPlan(virtual, real, None, State.UP)
        if kind == "off":
            return CheckPlan(virtual, real, None, State.DOWN)
        if kind == "external-perl":
            return CheckPlan(
                virtual,
                real,
                None,
                unsupported=f"checktype=external-perl ({virtual.checkcommand}) runs Perl inside ldirectord; "
                "lvscheck cannot run it: use checktype=external or negotiate",
            )
        spec = self.spec(real)
        if spec is None:
            return CheckPlan(virtual, real, None, State.UP)  # service=none
        if kind == "combined" and virtual.combined:
            connect = self.spec(real, connect=True)
            return CheckPlan(virtual, real, spec, connect=connect, combined=virtual.combined)
        return CheckPlan(virtual, real, spec)


def check_spec(virtual: VirtualService, real: RealServer, *, connect: bool = False) -> CheckSpec | None:
    """The :class:`~lvscheck.CheckSpec` lvscheck runs for ``real`` of ``virtual``.

    ``None`` when there is nothing to run (checktype on/off, service none,
    external-perl).  ``connect=True`` gives the connect check of a combined N
    checktype.  ``checktype=external`` whose ``checkcommand`` is
    ``lvscheck-ldirectord`` is run as the negotiate check it stands for (the
    service decides); any other checkcommand gives an ``external`` spec with
    ``checkcommand``/``vip``/``vport`` options.
    """
    return _Translator(virtual).spec(real, connect=connect)


def plans(config: Config, *, via_marks: bool = True) -> list[CheckPlan]:
    """One :class:`CheckPlan` per (virtual, real), in file order.

    ``via_marks=False`` when no daemon keeps the private firewall-mark services that a
    ``via=vip`` check needs (a one-shot ``lvscheck run --config``): without them IPVS would
    schedule a marked probe to the VIP with the virtual's own service, to any real, so every
    real is checked on its own address.
    """
    out: list[CheckPlan] = []
    for virtual in config.virtuals:
        translator = _Translator(virtual)
        out.extend(translator.plan(real) for real in virtual.reals)
    if via_marks and any(v.lvscheck.via == "vip" for v in config.virtuals):
        out = _through_vip(out, config.lvscheck.viamarks)
    return out


def _through_vip(plans: list[CheckPlan], base: int) -> list[CheckPlan]:
    """The plans with the targets of reals checked through their VIP given the VIP and a mark."""
    from dataclasses import replace

    from lvscheck.config.via import assign_marks, why_rip

    marks = assign_marks(plans, base)
    out: list[CheckPlan] = []
    for plan in plans:
        spec, via = plan.spec, plan.virtual.address
        mark = marks.get((plan.real.host, plan.real.forwarding))
        if (
            plan.virtual.lvscheck.via != "vip"
            or spec is None
            or via is None
            or mark is None
            or why_rip(plan.virtual, plan.real, spec.check) is not None
        ):
            out.append(plan)
            continue
        out.append(
            replace(plan, spec=_marked(plan.spec, via, mark), connect=_marked(plan.connect, via, mark))
        )
    return out


def _marked(spec: CheckSpec | None, via: str, mark: int) -> CheckSpec | None:
    if spec is None:
        return None
    return spec.replace(target=spec.target.replace(via=via, mark=mark))
