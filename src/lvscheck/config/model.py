"""The typed model of an ``ldirectord.cf`` (plus lvscheck-only settings), and the check plans.

This is what the rest of lvscheck consumes: :func:`lvscheck.config.load_config`
reads a file and returns a :class:`Config`; nothing in it is a half-parsed
string.  Every value is already *effective*: the inheritance ldirectord applies
(timeouts, failurecount, quiescent, fallback, ... from the global section; the
service inferred from the virtual port) has been resolved exactly as
``ldirectord.md`` §2.5/§2.6 describe, so a consumer never re-implements it.

::

    Config                          one file
    ├── settings: Settings          the global (column-0) directives
    ├── lvscheck: LvscheckSettings  global ``#lvscheck:`` lines (defaults for every virtual)
    ├── warnings: (Problem, ...)    what is odd but accepted (ldirectord accepts it too)
    └── virtuals: (VirtualService, ...)
        ├── options {request, receive, virtualhost, httpmethod, login, ...}  as written
        ├── lvscheck: LvscheckSettings   merged: global, then the block's ``#lvscheck:`` lines
        └── reals: (RealServer, ...)     ranges already expanded

    plans(config) -> [CheckPlan]    one per (virtual, real): the CheckSpec(s) to run,
                                    or a fixed state (checktype=on/off, service=none)

All types are frozen, slotted dataclasses and importing this module costs
nothing beyond :mod:`lvscheck.model`.

To turn plans into runnable checks, prefer :func:`lvscheck.config.prepare.prepare`
(or ``prepare_spec`` for one spec) over ``Engine.prepare``: it drops the ldirectord
directives a check type does not have (with a warning) instead of failing, and
reports bad options at the line that set them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lvscheck.model import CheckSpec, State, Target

__all__ = [
    "CHECKTYPES",
    "DEFAULT_CHECKTIMEOUT",
    "DEFAULT_NEGOTIATETIMEOUT",
    "SERVICES",
    "SERVICE_CHECKS",
    "SERVICE_OPTIONS",
    "SERVICE_PORTS",
    "CheckPlan",
    "Config",
    "Fallback",
    "LvscheckSettings",
    "Problem",
    "RealServer",
    "Settings",
    "VirtualService",
    "check_spec",
    "plans",
    "port_to_service",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})

#: ldirectord's defaults when neither the virtual nor the global section sets a timeout (§2.5).
DEFAULT_CHECKTIMEOUT = 5
DEFAULT_NEGOTIATETIMEOUT = 30

#: ``checktype=`` words ldirectord accepts; any value containing a digit is "combined" N.
CHECKTYPES = ("connect", "negotiate", "ping", "external", "external-perl", "on", "off")

#: ``service=`` words ldirectord accepts (lowercase only).
SERVICES = (
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "mysql",
    "nntp",
    "none",
    "oracle",
    "pop",
    "pops",
    "radius",
    "pgsql",
    "sip",
    "smtp",
    "submission",
    "simpletcp",
)

#: ldirectord's port <-> service table (``ld_port_to_service`` / ``ld_service_to_port``).
SERVICE_PORTS: Mapping[str, int] = MappingProxyType(
    {
        "ftp": 21,
        "smtp": 25,
        "dns": 53,
        "http": 80,
        "pop": 110,
        "nntp": 119,
        "imap": 143,
        "ldap": 389,
        "https": 443,
        "submission": 587,
        "ldaps": 636,
        "imaps": 993,
        "pops": 995,
        "oracle": 1521,
        "radius": 1812,
        "http_proxy": 3128,
        "mysql": 3306,
        "sip": 5060,
        "pgsql": 5432,
    }
)
_PORT_SERVICES = {port: name for name, port in SERVICE_PORTS.items()}

#: ldirectord service -> lvscheck check type.  The names are the same on purpose;
#: ``none`` has no entry (no check at all: the real is always up).
SERVICE_CHECKS: Mapping[str, str] = MappingProxyType({s: s for s in SERVICES if s != "none"})

#: Which of a virtual's check directives ldirectord's check for a service reads.
#: Only these are handed to the lvscheck check (as options of the same name).
SERVICE_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "http": ("request", "receive", "virtualhost", "httpmethod"),
        "https": ("request", "receive", "virtualhost", "httpmethod"),
        "http_proxy": ("request", "receive", "httpmethod"),
        "ftp": ("login", "passwd", "request", "receive"),
        "smtp": (),
        "submission": (),
        "pop": ("login", "passwd"),
        "pops": ("login", "passwd"),
        "imap": ("login", "passwd"),
        "imaps": ("login", "passwd"),
        "ldap": ("login", "passwd", "request", "receive"),
        "ldaps": ("login", "passwd", "request", "receive"),
        "nntp": (),
        "dns": ("request", "receive"),
        "radius": ("login", "passwd", "secret"),
        "sip": ("login",),
        "simpletcp": ("request", "receive"),
        "mysql": ("login", "passwd", "database", "request", "receive"),
        "pgsql": ("login", "passwd", "database", "request", "receive"),
        # ldirectord logs in with DBI; lvscheck's oracle check pings the TNS listener instead
        "oracle": (),
    }
)


def port_to_service(port: int) -> str:
    """ldirectord's inference of ``service=`` from the virtual port: ``none`` when unknown."""
    return _PORT_SERVICES.get(port, "none")


@dataclass(frozen=True, slots=True)
class Problem:
    """One error or warning, located: ``file:line: directive: message``.

    ``line`` 0 means the file as a whole; ``directive`` may be empty.
    """

    file: str
    line: int
    directive: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.directive}: {self.message}" if self.directive else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Fallback:
    """A ``fallback=`` sorry server: weight is always 1 in ldirectord.

    ``port`` ``None`` means "the virtual's port" (0 for fwmark virtuals).
    """

    host: str
    port: int | None = None
    forwarding: str = "gate"
    ipv6: bool = False
    line: int = 0

    def port_for(self, virtual: VirtualService) -> int:
        return virtual.port if self.port is None else self.port

    def address_for(self, virtual: VirtualService) -> str:
        host = f"[{self.host}]" if self.ipv6 else self.host
        return f"{host}:{self.port_for(virtual)}"


@dataclass(frozen=True, slots=True)
class LvscheckSettings:
    """What ldirectord cannot express, written as ``#lvscheck: key=value ...`` comment lines.

    ``fall`` ``None`` means ldirectord's ``failurecount``; ``interval`` ``None``
    means the (effective) ``checkinterval``; ``check`` ``None`` means the check
    type ldirectord would run.  ``options`` are extra check options (TLS:
    ``tlsverify``, ``cafile``, ...; weights: ``weightfrom``, ``minweight``,
    ``maxweight``; HTTP ``status``; anything the check type accepts) and win over
    the ldirectord directives of the same name.  ``jitter`` is a fraction of the
    interval (0.1 = +-10 %).
    """

    rise: int = 1
    fall: int | None = None
    interval: float | None = None
    fastinterval: float | None = None
    jitter: float = 0.1
    check: str | None = None
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: line of each key (for errors found later, e.g. an option the check type rejects)
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RealServer:
    """One ``real=`` (or one address of a ``real=A->B`` range).

    ``port`` 0 means "no port written" (normal for fwmark virtuals; IPVS then
    uses the virtual's port for gate/ipip).  ``request``/``receive`` are the
    per-real override as ldirectord applies it: both ``None`` when absent *or*
    dropped (see the leading-"/" quirk in docs/config.md).  ``request`` is as
    written (no "/" added).  ``lower``/``upper`` are the ``l:``/``u:``
    connection thresholds (``ipvsadm -y``/``-x``).
    """

    host: str
    port: int = 0
    forwarding: str = "gate"
    weight: int = 1
    request: str | None = None
    receive: str | None = None
    lower: int | None = None
    upper: int | None = None
    ipv6: bool = False
    line: int = 0

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if self.ipv6 else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class VirtualService:
    """One ``virtual=``/``virtual6=`` block, with every inherited value resolved.

    Address services have ``address`` and ``port`` (``fwmark`` None); fwmark
    services have ``fwmark``, ``address`` None, ``port`` 0 and protocol ``fwm``.
    ``checktype`` is one of :data:`CHECKTYPES` or ``"combined"`` (then
    ``combined`` is N: N connect checks between two negotiate checks).
    ``options`` holds the check directives *as written* (unquoted):
    request, receive, virtualhost, httpmethod, login, passwd, database, secret.
    ``checkinterval`` is effective the way ldirectord applies it: the block's
    value only with ``fork=yes``.
    """

    line: int
    ipv6: bool
    protocol: str  # tcp | udp | fwm
    address: str | None
    port: int
    fwmark: int | None
    service: str
    service_inferred: bool
    checktype: str = "negotiate"
    combined: int | None = None
    checkcommand: str = "/bin/true"
    checkport: int | None = None
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    scheduler: str = "wrr"
    persistent: int | None = None
    netmask: str | None = None
    schedflags: str | None = None
    ops: bool = False
    checktimeout: int = DEFAULT_CHECKTIMEOUT
    negotiatetimeout: int = DEFAULT_NEGOTIATETIMEOUT
    checkinterval: int = 10
    checkcount: int = 1
    failurecount: int = 1
    quiescent: bool = False
    cleanstop: bool = True
    fallback: Fallback | None = None
    fallbackcommand: str | None = None
    emailalert: str = ""
    emailalertfreq: int = 0
    emailalertstatus: tuple[str, ...] = ("all",)
    smtp: str | None = None
    monitorfile: str | None = None
    servicename: str | None = None
    comment: str | None = None
    load: str | None = None
    reals: tuple[RealServer, ...] = ()
    lvscheck: LvscheckSettings = field(default_factory=LvscheckSettings)
    #: directive -> line of its (last) value in the block, for messages found later
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def name(self) -> str:
        """For display and ``Target.virtual``: ``10.0.0.1:80``, ``10.0.0.1:53/udp``, ``fwmark 5``."""
        if self.fwmark is not None:
            return f"fwmark {self.fwmark}" + (" (ipv6)" if self.ipv6 else "")
        host = f"[{self.address}]" if self.ipv6 else self.address
        return f"{host}:{self.port}" + ("/udp" if self.protocol == "udp" else "")

    @property
    def key(self) -> str:
        """ldirectord's virtual id: ``tcp:10.0.0.1:80``, ``udp:[::1]:53``, ``fwm:5``, ``fwm6:5``."""
        if self.fwmark is not None:
            return f"fwm{'6' if self.ipv6 else ''}:{self.fwmark}"
        host = f"[{self.address}]" if self.ipv6 else self.address
        return f"{self.protocol}:{host}:{self.port}"

    @property
    def vip_arg(self) -> str:
        """Argument 1 ldirectord gives an external checkcommand: the VIP (bracketed v6) or the mark."""
        if self.fwmark is not None:
            return str(self.fwmark)
        return f"[{self.address}]" if self.ipv6 else str(self.address)

    @property
    def fall(self) -> int:
        """Consecutive failures before a real is taken out: ``#lvscheck: fall``, else failurecount."""
        return self.lvscheck.fall if self.lvscheck.fall is not None else self.failurecount

    @property
    def interval(self) -> float:
        """Seconds between two checks of a real: ``#lvscheck: interval``, else checkinterval."""
        return self.lvscheck.interval if self.lvscheck.interval is not None else float(self.checkinterval)


@dataclass(frozen=True, slots=True)
class Settings:
    """The global (column-0) directives.  Defaults are ldirectord's (``set_defaults``).

    ``checktimeout``/``negotiatetimeout`` are ``None`` when not written: the
    effective values live on each :class:`VirtualService`.
    """

    checktimeout: int | None = None
    negotiatetimeout: int | None = None
    checkinterval: int = 10
    checkcount: int = 1
    failurecount: int = 1
    autoreload: bool = False
    callback: str | None = None
    fallback: Fallback | None = None
    fallback6: Fallback | None = None
    fallbackcommand: str | None = None
    logfile: str = "/var/log/ldirectord.log"
    execute: tuple[str, ...] = ()
    fork: bool = False
    supervised: bool = False
    quiescent: bool = False
    readdquiescent: bool = False
    cleanstop: bool = True
    emailalert: str = ""
    emailalertfreq: int = 0
    emailalertstatus: tuple[str, ...] = ("all",)
    emailalertfrom: str | None = None
    smtp: str | None = None
    maintenancedir: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid configuration file: nothing in it is half used."""

    source: str
    settings: Settings = field(default_factory=Settings)
    virtuals: tuple[VirtualService, ...] = ()
    lvscheck: LvscheckSettings = field(default_factory=LvscheckSettings)
    warnings: tuple[Problem, ...] = ()

    @property
    def reals(self) -> int:
        return sum(len(v.reals) for v in self.virtuals)

    def find_virtual(self, vip: str, vport: str) -> VirtualService | None:
        """The virtual for an external checkcommand's ``VIP VPORT`` arguments.

        ``vip`` is an address (IPv6 with or without brackets, in the compressed form
        ldirectord passes) or, for fwmark services, the mark (``vport`` is then 0).
        """
        vip = vip.strip()
        if vip.isdigit():
            for virtual in self.virtuals:
                if virtual.fwmark is not None and str(virtual.fwmark) == vip:
                    return virtual
            return None
        host = vip[1:-1] if vip.startswith("[") and vip.endswith("]") else vip
        for virtual in self.virtuals:
            if virtual.fwmark is None and virtual.address == host and str(virtual.port) == vport:
                return virtual
        return None


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


def _target(virtual: VirtualService, real: RealServer) -> Target:
    return Target(
        real.host,
        real.port or None,
        weight=real.weight,
        virtual=virtual.name,
        forwarding=real.forwarding,
    )


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


def check_spec(virtual: VirtualService, real: RealServer, *, connect: bool = False) -> CheckSpec | None:
    """The :class:`~lvscheck.CheckSpec` lvscheck runs for ``real`` of ``virtual``.

    ``None`` when there is nothing to run (checktype on/off, service none,
    external-perl).  ``connect=True`` gives the connect check of a combined N
    checktype.  ``checktype=external`` whose ``checkcommand`` is
    ``lvscheck-ldirectord`` is run as the negotiate check it stands for (the
    service decides); any other checkcommand gives an ``external`` spec with
    ``checkcommand``/``vip``/``vport`` options.
    """
    checktype = "connect" if connect else virtual.checktype
    ls = virtual.lvscheck
    target = _target(virtual, real)
    options: dict[str, str] = _timeouts(virtual)
    if checktype == "external" and _is_lvscheck_ldirectord(virtual.checkcommand):
        checktype = "negotiate"
    if checktype in ("on", "off", "external-perl"):
        return None
    if checktype == "external":
        options |= {"checkcommand": virtual.checkcommand, "vip": virtual.vip_arg, "vport": str(virtual.port)}
        options |= dict(ls.options)
        return CheckSpec(ls.check or "external", target, MappingProxyType(options))
    if checktype in ("connect", "ping"):
        if checktype == "connect" and virtual.protocol == "udp":
            checktype = "ping"  # ldirectord pings for checktype=connect on udp
        options |= _port_option(virtual, real, virtual.service) if checktype == "connect" else {}
        if not connect:
            options |= dict(ls.options)
        return CheckSpec(checktype if connect else (ls.check or checktype), target, MappingProxyType(options))
    # negotiate, or combined N
    check = ls.check or SERVICE_CHECKS.get(virtual.service)
    if check is None:
        return None  # service=none: ldirectord's check_none, always up
    options |= _port_option(virtual, real, virtual.service)
    for name in SERVICE_OPTIONS.get(virtual.service, ()):
        if name in virtual.options:
            options[name] = virtual.options[name]
    if (
        real.request is not None
        and real.receive is not None
        and "request" in SERVICE_OPTIONS.get(virtual.service, ())
    ):
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
    options |= dict(ls.options)
    return CheckSpec(check, target, MappingProxyType(options))


def plans(config: Config) -> list[CheckPlan]:
    """One :class:`CheckPlan` per (virtual, real), in file order."""
    out: list[CheckPlan] = []
    for virtual in config.virtuals:
        for real in virtual.reals:
            out.append(_plan(virtual, real))
    return out


def _plan(virtual: VirtualService, real: RealServer) -> CheckPlan:
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
    spec = check_spec(virtual, real)
    if spec is None:
        return CheckPlan(virtual, real, None, State.UP)  # service=none
    if kind == "combined" and virtual.combined:
        return CheckPlan(
            virtual, real, spec, connect=check_spec(virtual, real, connect=True), combined=virtual.combined
        )
    return CheckPlan(virtual, real, spec)
