"""The typed model of an ``ldirectord.cf`` (plus lvscheck-only settings).

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

What lvscheck runs for each real (``plans``, ``check_spec``, ``CheckPlan``) is
:mod:`lvscheck.config.translate`; ldirectord's service and check-type tables are
:mod:`lvscheck.config.services`.

All types are frozen, slotted dataclasses and importing this module costs
nothing beyond :mod:`lvscheck.config.services`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lvscheck.config.services import DEFAULT_CHECKTIMEOUT, DEFAULT_NEGOTIATETIMEOUT

__all__ = [
    "Config",
    "Fallback",
    "LvscheckSettings",
    "Problem",
    "RealServer",
    "Settings",
    "VirtualService",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


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


#: the first private firewall mark of ``via=vip`` (0x4C560000, "LV"): client traffic never
#: carries marks this high unless an operator's own iptables rules set them.
VIA_MARK_BASE = 0x4C560000
#: how many private marks the daemon owns from the base (one per real address and method)
VIA_MARK_COUNT = 65536


@dataclass(frozen=True, slots=True)
class LvscheckSettings:
    """What ldirectord cannot express, written as ``#lvscheck: key=value ...`` comment lines.

    ``fall`` ``None`` means ldirectord's ``failurecount``; ``interval`` ``None``
    means the (effective) ``checkinterval``; ``check`` ``None`` means the check
    type ldirectord would run.  ``options`` are extra check options (TLS:
    ``tlsverify``, ``cafile``, ...; weights: ``weightfrom``, ``minweight``,
    ``maxweight``; HTTP ``status``; anything the check type accepts) and win over
    the ldirectord directives of the same name.  ``jitter`` is a fraction of the
    interval (0.1 = +-10 %).  ``via``: ``rip`` checks each real on its own address;
    ``vip`` checks it through the virtual address as client traffic reaches it
    (gate and ipip reals; docs/via-vip.md), with private IPVS firewall marks from
    ``viamarks`` upwards (a column-0 setting).
    """

    rise: int = 1
    fall: int | None = None
    interval: float | None = None
    fastinterval: float | None = None
    jitter: float = 0.1
    check: str | None = None
    #: seconds over which a recovered real's weight ramps up to its target (0: at once)
    slowstart: float = 0.0
    #: share one probe with other virtuals that check the same real the same way (the daemon)
    shareprobe: bool = True
    via: str = "rip"
    viamarks: int = VIA_MARK_BASE
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
