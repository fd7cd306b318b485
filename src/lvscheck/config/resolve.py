"""From checked directives to the model: addresses, reals, inheritance, duplicates.

This is ldirectord's ``_ld_read_config_*_resolve``, ``add_real_server`` and
``ld_setup`` (ldirectord.md §2.3-§2.6), without any DNS or /etc/services
lookup (see :mod:`lvscheck.config.values`).
"""

from __future__ import annotations

import ipaddress
import re
from types import MappingProxyType
from typing import Any

from lvscheck.config.model import (
    DEFAULT_CHECKTIMEOUT,
    DEFAULT_NEGOTIATETIMEOUT,
    SERVICE_OPTIONS,
    SERVICE_PORTS,
    Config,
    Fallback,
    LvscheckSettings,
    RealServer,
    Settings,
    VirtualService,
    port_to_service,
)
from lvscheck.config.parser import RawConfig, RawFallback, RawVirtual, parse_lvscheck
from lvscheck.config.report import Report
from lvscheck.config.values import resolve_host, resolve_port

__all__ = ["MAX_RANGE", "build"]

#: lvscheck refuses a ``real=A->B`` range with more addresses than this.
MAX_RANGE = 65536

_HOSTPORT4 = re.compile(r"(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)", re.ASCII)
_HOSTPORT = re.compile(r"([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)", re.ASCII)
_FWMARK = re.compile(r"(\d+)", re.ASCII)
_V6PORT = re.compile(r"\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)", re.ASCII)
_ADDR = r"(?:\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-fa-f:]+\])"
_REAL = re.compile(rf"({_ADDR})(->({_ADDR}))?(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)", re.ASCII)


def build(raw: RawConfig, report: Report) -> Config:
    settings = _settings(raw, report)
    lines = [entry for entry in raw.lexed.lvscheck if not entry.indented]
    base = parse_lvscheck(report, lines, LvscheckSettings())
    virtuals: list[VirtualService] = []
    seen: dict[str, int] = {}
    for rv in raw.virtuals:
        virtual = _virtual(rv, settings, base, report)
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
        return None, None, int(fm[1])
    vm = _V6PORT.match(h)
    if vm and not block.ipv6:
        report.error(block.line, key, f"{h.strip()!r}: an IPv6 address: use virtual6=[ADDRESS]:PORT")
        return None, None, None
    if vm:
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


def _virtual(
    rv: RawVirtual, settings: Settings, base: LvscheckSettings, report: Report
) -> VirtualService | None:
    block = rv.block
    values = rv.values
    host_text, port_text, fwmark = _header(rv, report)
    ipv6 = block.ipv6
    if fwmark is not None:
        protocol = "fwm"
        address = None
        port = 0
    elif host_text is not None and port_text is not None:
        protocol = values.get("protocol", "udp" if port_text in ("53", "domain") else "tcp")
        key = "virtual6" if ipv6 else "virtual"
        address, why = resolve_host(host_text, ipv6)
        if address is None:
            report.error(block.line, key, why)
        resolved, why = resolve_port(port_text, (protocol,))
        if resolved is None:
            report.error(block.line, key, why)
            port = 0
        else:
            port = resolved
    else:
        address = None
        protocol = "tcp"
        port = 0
    service = values.get("service") or ("none" if fwmark is not None else port_to_service(port))
    reals = _reals(rv, port, report)
    lv = parse_lvscheck(report, block.lvscheck, base)
    failed = (fwmark is None and address is None) or reals is None
    if failed:
        return None
    assert reals is not None
    own_fallback: RawFallback | None = values.get("fallback")
    fallback: Fallback | None
    if own_fallback is not None:
        fallback = _fallback(own_fallback, (protocol,) if protocol != "fwm" else (), ipv6, "fallback", report)
    else:
        fallback = settings.fallback6 if ipv6 else settings.fallback
    checktype, combined = values.get("checktype", ("negotiate", None))
    # §2.5: checktimeout and negotiatetimeout default to each other, the virtual's first.
    v_ct, v_nt = values.get("checktimeout"), values.get("negotiatetimeout")
    g_ct, g_nt = settings.checktimeout, settings.negotiatetimeout
    checktimeout = next(t for t in (v_ct, v_nt, g_ct, g_nt, DEFAULT_CHECKTIMEOUT) if t is not None)
    negotiatetimeout = next(t for t in (v_nt, v_ct, g_nt, g_ct, DEFAULT_NEGOTIATETIMEOUT) if t is not None)
    interval = settings.checkinterval
    if "checkinterval" in values:
        if settings.fork:
            interval = values["checkinterval"]
        else:
            report.warn(
                rv.lines["checkinterval"],
                "checkinterval",
                "ignored without fork=yes (ldirectord warns too); for lvscheck use #lvscheck: interval=N",
            )
    names = ("request", "receive", "virtualhost", "httpmethod", "login", "passwd", "database", "secret")
    options: dict[str, str] = {k: values[k] for k in names if k in values}
    virtual = VirtualService(
        line=block.line,
        ipv6=ipv6,
        protocol=protocol,
        address=address,
        port=port,
        fwmark=fwmark,
        service=service,
        service_inferred="service" not in values,
        checktype=checktype,
        combined=combined,
        checkcommand=values.get("checkcommand", "/bin/true"),
        checkport=values.get("checkport"),
        options=MappingProxyType(options),
        scheduler=values.get("scheduler", "wrr"),
        persistent=values.get("persistent"),
        netmask=values.get("netmask"),
        schedflags=values.get("schedflags"),
        ops=values.get("ops", False),
        checktimeout=checktimeout,
        negotiatetimeout=negotiatetimeout,
        checkinterval=interval,
        checkcount=values.get("checkcount", settings.checkcount),
        failurecount=values.get("failurecount", settings.failurecount),
        quiescent=values.get("quiescent", settings.quiescent),
        cleanstop=values.get("cleanstop", settings.cleanstop),
        fallback=fallback,
        fallbackcommand=values.get("fallbackcommand", settings.fallbackcommand),
        emailalert=values.get("emailalert", settings.emailalert),
        emailalertfreq=values.get("emailalertfreq", settings.emailalertfreq),
        emailalertstatus=values.get("emailalertstatus", settings.emailalertstatus),
        smtp=values.get("smtp", settings.smtp),
        monitorfile=values.get("monitorfile"),
        servicename=values.get("servicename"),
        comment=values.get("comment"),
        load=values.get("load"),
        reals=tuple(_apply_quirks(r, service) for r in reals),
        lvscheck=lv,
        lines=MappingProxyType(dict(rv.lines)),
    )
    _semantic_warnings(virtual, rv, report)
    return virtual


def _apply_quirks(real: _Real, service: str) -> RealServer:
    request, receive = real.request, real.receive
    if real.slash_quirk:
        # ldirectord keeps the real's request but drops its receive; for HTTP the URL
        # is then built from the virtual's request, so nothing of the override is left.
        receive = None
        if service in ("http", "https", "http_proxy"):
            request = None
    return RealServer(
        real.host,
        real.port,
        real.forwarding,
        real.weight,
        request,
        receive,
        real.lower,
        real.upper,
        real.ipv6,
        real.line,
    )


class _Real:
    __slots__ = (
        "forwarding",
        "host",
        "ipv6",
        "line",
        "lower",
        "port",
        "receive",
        "request",
        "slash_quirk",
        "upper",
        "weight",
    )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if self.ipv6 else f"{self.host}:{self.port}"

    def __init__(self, host: str, port: int, ipv6: bool, line: int, flags: dict[str, Any]) -> None:
        self.host = host
        self.port = port
        self.ipv6 = ipv6
        self.line = line
        self.forwarding: str = flags["forwarding"]
        self.weight: int = flags["weight"]
        self.request: str | None = flags["request"]
        self.receive: str | None = flags["receive"]
        self.lower: int | None = flags["lower"]
        self.upper: int | None = flags["upper"]
        self.slash_quirk: bool = flags["slash_quirk"]


def _reals(rv: RawVirtual, vport: int, report: Report) -> list[_Real] | None:
    """Every ``real=`` of the block, ranges expanded; ``None`` if any has an error."""
    out: list[_Real] = []
    ok = True
    ipv6 = rv.block.ipv6
    key = "real6" if ipv6 else "real"
    for text, line in rv.reals:
        m = _REAL.search(text)
        if not m:
            report.error(
                line,
                key,
                f"{text.strip()!r} is not valid: expected ADDRESS[->ADDRESS][:PORT] gate|masq|ipip "
                '[WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]',
            )
            ok = False
            continue
        if text[: m.start()].strip():
            report.warn(line, key, f"ldirectord ignores {text[: m.start()].strip()!r} before the address")
        first, why = resolve_host(m[1], ipv6)
        if first is None:
            report.error(line, key, why)
            ok = False
            continue
        port = 0
        if m[5] is not None:
            resolved, why = resolve_port(m[5], ())
            if resolved is None:
                report.error(line, key, f"real server port: {why}")
                ok = False
                continue
            port = resolved
        flags = _flags(m[6], line, key, report)
        if flags is None:
            ok = False
            continue
        if m[3] is None:
            out.append(_Real(first, port, ipv6, line, flags))
            continue
        if ipv6:
            report.error(line, key, "address ranges are IPv4 only (ldirectord: not supported yet for IPv6)")
            ok = False
            continue
        last, why = resolve_host(m[3], ipv6)
        if last is None:
            report.error(line, key, f"range end: {why}")
            ok = False
            continue
        addresses = _range(first, last, line, key, report)
        if addresses is None:
            ok = False
            continue
        out.extend(_Real(a, port, ipv6, line, flags) for a in addresses)
    seen: dict[tuple[str, int], int] = {}
    for real in out:
        where = seen.setdefault((real.host, real.port), real.line)
        if real.line != where or where in _dupes_on_line(out, real):
            report.warn(
                real.line,
                key,
                f"{real.address} is already a real of this virtual (line {where}); "
                "ldirectord accepts the duplicate and checks it twice",
            )
    _ = vport
    return out if ok else None


def _dupes_on_line(out: list[_Real], real: _Real) -> set[int]:
    """Lines that list ``real`` twice by themselves (overlapping range): rare, so a scan is fine."""
    same = [r for r in out if r.line == real.line and r.host == real.host and r.port == real.port]
    return {real.line} if len(same) > 1 and same[-1] is real else set()


def _range(first: str, last: str, line: int, key: str, report: Report) -> list[str] | None:
    a = int(ipaddress.IPv4Address(first))
    b = int(ipaddress.IPv4Address(last))
    if a > b:
        report.error(
            line, key, f"the range {first}->{last} runs backwards: the first address must be the lower"
        )
        return None
    if b - a + 1 > MAX_RANGE:
        report.error(
            line,
            key,
            f"the range {first}->{last} has {b - a + 1} addresses; lvscheck takes at most {MAX_RANGE}",
        )
        return None
    # ldirectord's loop compares the integers as strings ("while ($i le $last_i)").
    addresses = []
    i = a
    while str(i) <= str(b) and i <= b:
        addresses.append(str(ipaddress.IPv4Address(i)))
        i += 1
    if len(addresses) != b - a + 1:
        report.warn(
            line,
            key,
            f"ldirectord expands {first}->{last} to {len(addresses)} reals, not {b - a + 1}: it compares "
            "the addresses as decimal strings, which breaks where the number of digits changes; "
            "lvscheck does the same: split the range",
        )
    return addresses


_WEIGHT = re.compile(r"\s+(\d+)(.*)", re.ASCII)
_REQREC = re.compile(r'\s+"(.*)"[, ]\s*"(.*)"(.*)', re.ASCII)
_LOWER = re.compile(r"\s+l:(\d+)(.*)", re.ASCII)
_UPPER = re.compile(r"\s+u:(\d+)(.*)", re.ASCII)


def _flags(text: str, line: int, key: str, report: Report) -> dict[str, Any] | None:
    """``gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]``, as ``add_real_server`` reads it."""
    fm = re.search(r"(\w+)(.*)", text, re.ASCII)
    if not fm or fm[1] not in ("gate", "masq", "ipip"):
        shown = fm[1] if fm else text.strip()
        report.error(line, key, f"forwarding method {shown!r} is not valid: expected gate, masq or ipip")
        return None
    if text[: fm.start()].strip():
        report.warn(line, key, f"ldirectord ignores {text[: fm.start()].strip()!r} before {fm[1]!r}")
    flags: dict[str, Any] = {
        "forwarding": fm[1],
        "weight": 1,
        "request": None,
        "receive": None,
        "lower": None,
        "upper": None,
        "slash_quirk": False,
    }
    rest: str | None = fm[2]
    assert rest is not None
    wm = _WEIGHT.search(rest)
    if wm:
        if rest[: wm.start()].strip():
            report.warn(
                line,
                key,
                f"ldirectord takes the first number after a blank as the weight ({wm[1]}) and ignores "
                f"{rest[: wm.start()].strip()!r}; lvscheck does the same: write {fm[1]} {wm[1]}",
            )
        weight = int(wm[1])
        if weight > 65535:
            report.error(line, key, f"weight {weight} is not valid: expected 0..65535")
            return None
        flags["weight"] = weight
        rest = wm[2]
    rm = _REQREC.search(rest)
    if rm:
        request, receive = rm[1], rm[2]
        if re.fullmatch(r"[lu]:\d+", request) or re.fullmatch(r"[lu]:\d+", receive):
            report.warn(
                line,
                key,
                f'ldirectord takes "{request}" "{receive}" as a request and a receive string, '
                "not as thresholds: write l:N u:N without quotes",
            )
        if request.startswith("/"):
            report.warn(
                line,
                key,
                f"ldirectord drops the receive of the per-real override (and, for HTTP, its request) "
                f'because the request "{request}" begins with "/", and ignores the rest of the line; '
                f'lvscheck does the same: write "{request[1:]}" without the leading "/"',
            )
            flags["request"] = request
            flags["slash_quirk"] = True
            return flags
        flags["request"] = request
        flags["receive"] = receive
        rest = rm[3]
    lm = _LOWER.search(rest)
    if lm:
        flags["lower"] = int(lm[1])
        rest = lm[2]
    um = _UPPER.search(rest)
    if um:
        flags["upper"] = int(um[1])
        rest = um[2]
    if rest.strip(" \t\r\f\v"):
        report.error(
            line,
            key,
            f"{rest.strip()!r} is not understood (ldirectord: invalid real server line): after the "
            'forwarding method expected [WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]',
        )
        return None
    return flags


def _semantic_warnings(v: VirtualService, rv: RawVirtual, report: Report) -> None:
    """What ldirectord accepts but does not do what an operator expects (ldirectord.md §10)."""
    line = v.line
    key = "virtual6" if v.ipv6 else "virtual"
    runs_service = v.checktype in ("negotiate", "combined") or (
        v.checktype == "external" and v.checkcommand.rsplit("/", 1)[-1] == "lvscheck-ldirectord"
    )
    if runs_service and v.service == "none" and v.lvscheck.check is None:
        why = (
            "a firewall-mark service"
            if v.fwmark is not None
            else f"port {v.port} is not in ldirectord's table"
        )
        report.warn(
            line,
            key,
            f"no check at all: service=none ({why}), so every real always counts as up; "
            "set service= or checktype=connect",
        )
    if runs_service and v.service in ("mysql", "pgsql"):
        missing = [k for k in ("login", "request") if k not in v.options]
        if missing:
            report.warn(
                line,
                key,
                f"service={v.service} without {' and '.join(missing)}: ldirectord marks every real down; "
                "lvscheck logs in and checks the connection when request is missing",
            )
    if runs_service and v.service in ("pop", "pops") and "login" not in v.options:
        report.warn(
            line,
            key,
            f"service={v.service} without login: ldirectord says up even for a closed port; "
            "lvscheck does not",
        )
    if runs_service and v.service == "dns" and "receive" not in v.options:
        report.warn(line, key, "service=dns without receive: ldirectord's dns check never succeeds")
    if runs_service and v.service in SERVICE_PORTS and v.checkport is None and v.fwmark is None:
        wellknown = SERVICE_PORTS[v.service]
        if wellknown != v.port and any(r.port == 0 for r in v.reals):
            report.warn(
                line,
                key,
                f"reals without a port are checked on port {wellknown} (service={v.service}'s port), "
                f"not the virtual's {v.port}; give the reals a port or set checkport={v.port}",
            )
    for name, value in v.options.items():
        if name in SERVICE_OPTIONS.get(v.service, ()):
            continue
        if runs_service and v.service == "oracle":
            report.warn(
                rv.lines.get(name, line),
                name,
                "not used: lvscheck's oracle check pings the TNS listener, it does not log in with SQL",
            )
        elif runs_service and v.service != "none":
            report.warn(
                rv.lines.get(name, line),
                name,
                f"not used by service={v.service} (ldirectord ignores it too)",
            )
        _ = value
