"""From checked directives to the model: addresses, inheritance, duplicate virtuals.

This is ldirectord's ``_ld_read_config_*_resolve`` and ``ld_setup``
(ldirectord.md §2.3-§2.6), without any DNS or /etc/services lookup (see
:mod:`lvscheck.config.values`).  Real servers are :mod:`lvscheck.config.reals`;
the warnings about what ldirectord accepts but does not do are
:mod:`lvscheck.config.semantics`.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from lvscheck.config.lvscheck_lines import parse_lvscheck
from lvscheck.config.model import Config, Fallback, LvscheckSettings, Settings, VirtualService
from lvscheck.config.raw import RawConfig, RawFallback, RawVirtual
from lvscheck.config.reals import MAX_RANGE, Budget, read_reals
from lvscheck.config.report import Report
from lvscheck.config.semantics import semantic_warnings
from lvscheck.config.services import DEFAULT_CHECKTIMEOUT, DEFAULT_NEGOTIATETIMEOUT, port_to_service
from lvscheck.config.values import read_number, resolve_host, resolve_port

__all__ = ["MAX_RANGE", "build"]

_HOSTPORT4 = re.compile(r"(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)", re.ASCII)
_HOSTPORT = re.compile(r"([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)", re.ASCII)
_FWMARK = re.compile(r"(\d+)", re.ASCII)
_V6PORT = re.compile(r"\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)", re.ASCII)
_CHECK_OPTIONS = ("request", "receive", "virtualhost", "httpmethod", "login", "passwd", "database", "secret")


def build(raw: RawConfig, report: Report) -> Config:
    """The :class:`Config` of a parsed file; problems go to ``report`` (the caller raises)."""
    settings = _settings(raw, report)
    lines = [entry for entry in raw.lexed.lvscheck if not entry.indented]
    base = parse_lvscheck(report, lines, LvscheckSettings())
    virtuals: list[VirtualService] = []
    seen: dict[str, int] = {}
    budget = Budget()
    for rv in raw.virtuals:
        virtual = _virtual(rv, settings, base, budget, report)
        if virtual is None:
            continue
        first = seen.get(virtual.key)
        if first is not None:
            report.error(
                rv.block.line,
                "virtual",
                f"duplicate virtual service {virtual.key} (first at line {first}); "
                "ldirectord refuses the file",
            )
            continue
        seen[virtual.key] = rv.block.line
        virtuals.append(virtual)
    if raw.lexed.crlf:
        report.warn(0, "", "the file has DOS/Windows line ends (CR LF): ldirectord keeps the CR in values")
    return Config(
        source=report.file,
        settings=settings,
        virtuals=tuple(virtuals),
        lvscheck=base,
        warnings=tuple(sorted(report.warnings, key=lambda p: p.line)),
    )


#: Global directives lvscheck reads but does not act on, and why (a warning at their line).
UNSUPPORTED_GLOBALS = {
    "fork": "lvscheck checks every virtual concurrently in one process; fork=yes is not needed "
    "and is ignored",
    "supervised": "lvscheck always runs in the foreground under its service manager; ignored",
    "execute": "lvscheck runs one config per daemon; start another `lvscheck daemon --config` for "
    "this one (not started by this daemon)",
}


def _settings(raw: RawConfig, report: Report) -> Settings:
    v = raw.values
    for key, why in UNSUPPORTED_GLOBALS.items():
        if v.get(key):
            report.warn(raw.lines.get(key, 0), key, f"not supported by lvscheck: {why}")
    fallbacks: dict[str, Fallback | None] = {}
    for key, ipv6 in (("fallback", False), ("fallback6", True)):
        rf: RawFallback | None = v.get(key)
        fallbacks[key] = _fallback(rf, ("tcp", "udp"), ipv6, key, report) if rf else None
    return Settings(
        checktimeout=v.get("checktimeout"),
        negotiatetimeout=v.get("negotiatetimeout"),
        checkinterval=v.get("checkinterval", 10),
        checkcount=v.get("checkcount", 1),
        failurecount=v.get("failurecount", 1),
        autoreload=v.get("autoreload", False),
        callback=v.get("callback"),
        fallback=fallbacks["fallback"],
        fallback6=fallbacks["fallback6"],
        fallbackcommand=v.get("fallbackcommand"),
        logfile=v.get("logfile", "/var/log/ldirectord.log"),
        execute=v.get("execute", ()),
        fork=v.get("fork", False),
        supervised=v.get("supervised", False),
        quiescent=v.get("quiescent", False),
        readdquiescent=v.get("readdquiescent", False),
        cleanstop=v.get("cleanstop", True),
        emailalert=v.get("emailalert", ""),
        emailalertfreq=v.get("emailalertfreq", 0),
        emailalertstatus=v.get("emailalertstatus", ("all",)),
        emailalertfrom=v.get("emailalertfrom"),
        smtp=v.get("smtp"),
        maintenancedir=v.get("maintenancedir"),
    )


def _fallback(
    rf: RawFallback, protocols: tuple[str, ...], ipv6: bool, key: str, report: Report
) -> Fallback | None:
    host, why = resolve_host(rf.server, ipv6) if rf.server else (None, "no server address")
    if host is None:
        report.error(rf.line, key, f"fallback server: {why}")
        return None
    port: int | None = None
    if rf.port is not None:
        port, why = resolve_port(rf.port, protocols)
        if port is None:
            report.error(rf.line, key, f"fallback server port: {why}")
            return None
    return Fallback(host, port, rf.forwarding, ipv6, rf.line)


def _header(rv: RawVirtual, report: Report) -> tuple[str | None, str | None, int | None]:
    """(host text, port text, fwmark) of the ``virtual=`` line, as ldirectord's regexes read it."""
    block = rv.block
    h = block.header
    m = None if block.ipv6 else _HOSTPORT4.match(h)
    m = m or _HOSTPORT.match(h)
    key = "virtual6" if block.ipv6 else "virtual"
    if m:
        _trailing(report, block.line, key, h[m.end() :])
        return m[1], m[2], None
    fm = _FWMARK.match(h)
    if fm:
        mark, why = read_number(fm[1])
        if mark is None:
            report.error(block.line, key, f"firewall mark: {why}")
            return None, None, None
        rest = h[fm.end() :]
        if rest.startswith((".", ":")):
            report.warn(
                block.line,
                key,
                f"ldirectord reads {h.strip()!r} as firewall mark {fm[1]} (the leading digits); "
                f"lvscheck does the same: write {key}=ADDRESS:PORT for an address",
            )
        else:
            _trailing(report, block.line, key, rest)
        return None, None, mark
    vm = _V6PORT.match(h)
    if vm and not block.ipv6:
        report.error(block.line, key, f"{h.strip()!r}: an IPv6 address: use virtual6=[ADDRESS]:PORT")
        return None, None, None
    if vm:
        import ipaddress

        try:
            ipaddress.IPv6Address(vm[1])
        except ValueError:
            report.error(block.line, key, f"{vm[1]!r} is not a valid IPv6 address")
            return None, None, None
        _trailing(report, block.line, key, h[vm.end() :])
        return vm[1], vm[2], None
    shape = "[ADDRESS]:PORT or a firewall mark" if block.ipv6 else "ADDRESS:PORT or a firewall mark"
    report.error(block.line, key, f"{h.strip()!r} is not valid: expected {shape}")
    return None, None, None


def _trailing(report: Report, line: int, key: str, rest: str) -> None:
    text = rest.strip(" \t\r")
    if text and not text.startswith("#"):
        report.warn(line, key, f"ldirectord ignores {text!r} after the address")


class _Address:
    """Where a virtual service listens: an address and port, or a firewall mark."""

    __slots__ = ("address", "fwmark", "port", "protocol")

    def __init__(self, rv: RawVirtual, report: Report) -> None:
        block = rv.block
        host_text, port_text, self.fwmark = _header(rv, report)
        self.address: str | None = None
        self.protocol = "fwm" if self.fwmark is not None else "tcp"
        self.port = 0
        if host_text is None or port_text is None:
            return
        self.protocol = rv.values.get("protocol", "udp" if port_text in ("53", "domain") else "tcp")
        key = "virtual6" if block.ipv6 else "virtual"
        self.address, why = resolve_host(host_text, block.ipv6)
        if self.address is None:
            report.error(block.line, key, why)
        resolved, why = resolve_port(port_text, (self.protocol,))
        if resolved is None:
            report.error(block.line, key, why)
        else:
            self.port = resolved

    @property
    def ok(self) -> bool:
        return self.fwmark is not None or self.address is not None


def _virtual(
    rv: RawVirtual, settings: Settings, base: LvscheckSettings, budget: Budget, report: Report
) -> VirtualService | None:
    values = rv.values
    where = _Address(rv, report)
    service = values.get("service") or ("none" if where.fwmark is not None else port_to_service(where.port))
    reals = read_reals(rv, service, budget, report)
    lv = parse_lvscheck(report, rv.block.lvscheck, base)
    if not where.ok or reals is None:
        return None
    virtual = VirtualService(
        line=rv.block.line,
        ipv6=rv.block.ipv6,
        protocol=where.protocol,
        address=where.address,
        port=where.port,
        fwmark=where.fwmark,
        service=service,
        service_inferred="service" not in values,
        reals=tuple(reals),
        lvscheck=lv,
        options=MappingProxyType({k: values[k] for k in _CHECK_OPTIONS if k in values}),
        lines=MappingProxyType(dict(rv.lines)),
        fallback=_own_fallback(rv, where.protocol, settings, report),
        checkinterval=_interval(rv, settings, report),
        **_timeouts(values, settings),
        **_inherited(values, settings),
        **_own(values),
    )
    semantic_warnings(virtual, rv, report)
    return virtual


def _own_fallback(rv: RawVirtual, protocol: str, settings: Settings, report: Report) -> Fallback | None:
    own: RawFallback | None = rv.values.get("fallback")
    if own is None:
        return settings.fallback6 if rv.block.ipv6 else settings.fallback
    return _fallback(own, (protocol,) if protocol != "fwm" else (), rv.block.ipv6, "fallback", report)


def _timeouts(values: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """§2.5: checktimeout and negotiatetimeout default to each other, the virtual's first."""
    v_ct, v_nt = values.get("checktimeout"), values.get("negotiatetimeout")
    g_ct, g_nt = settings.checktimeout, settings.negotiatetimeout
    return {
        "checktimeout": next(t for t in (v_ct, v_nt, g_ct, g_nt, DEFAULT_CHECKTIMEOUT) if t is not None),
        "negotiatetimeout": next(
            t for t in (v_nt, v_ct, g_nt, g_ct, DEFAULT_NEGOTIATETIMEOUT) if t is not None
        ),
    }


def _interval(rv: RawVirtual, settings: Settings, report: Report) -> int:
    """A block's checkinterval counts only with fork=yes, as in ldirectord."""
    if "checkinterval" not in rv.values:
        return settings.checkinterval
    if settings.fork:
        interval: int = rv.values["checkinterval"]
        return interval
    report.warn(
        rv.lines["checkinterval"],
        "checkinterval",
        "ignored without fork=yes (ldirectord warns too); for lvscheck use #lvscheck: interval=N",
    )
    return settings.checkinterval


def _inherited(values: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Directives a block takes from the global section when it does not set them."""
    names = (
        "checkcount",
        "failurecount",
        "quiescent",
        "cleanstop",
        "fallbackcommand",
        "emailalert",
        "emailalertfreq",
        "emailalertstatus",
        "smtp",
    )
    return {name: values.get(name, getattr(settings, name)) for name in names}


def _own(values: dict[str, Any]) -> dict[str, Any]:
    """Directives of the block alone (the model's default when not set)."""
    checktype, combined = values.get("checktype", ("negotiate", None))
    own = {"checktype": checktype, "combined": combined}
    for name in (
        "checkcommand",
        "checkport",
        "scheduler",
        "persistent",
        "netmask",
        "schedflags",
        "ops",
        "monitorfile",
        "servicename",
        "comment",
        "load",
    ):
        if name in values:
            own[name] = values[name]
    return own
