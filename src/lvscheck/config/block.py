"""The directives of one ``virtual=``/``virtual6=`` block, each checked as ldirectord does.

``real=`` lines are only collected here (with their line); they are read in
:mod:`lvscheck.config.reals` once the virtual's address is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lvscheck.config.directives import QUOTED_BLOCK, report_unknown
from lvscheck.config.global_section import KEYVAL
from lvscheck.config.lexer import Block, Directive
from lvscheck.config.raw import RawVirtual
from lvscheck.config.rules import DIGITS, Reader
from lvscheck.config.services import CHECKTYPES, SERVICES

__all__ = ["parse_block"]


def parse_block(reader: Reader, block: Block) -> RawVirtual:
    """Every directive of ``block``; problems go to ``reader``'s report."""
    parser = _BlockParser(reader, block)
    for d in block.directives:
        parser.directive(d)
    return parser.rv


class _BlockParser:
    def __init__(self, reader: Reader, block: Block) -> None:
        self.reader = reader
        self.r = reader.r
        self.block = block
        self.rv = RawVirtual(block)
        self.fwmark = _is_fwmark_header(block)

    def directive(self, d: Directive) -> None:
        m = KEYVAL.match(d.text)
        if not m:
            km = re.match(r"[A-Za-z0-9_]+", d.text, re.ASCII)
            report_unknown(
                self.r, d, km[0] if km and d.text.strip() else None, in_block=True, after_block=None
            )
            return
        key, value = m[1], m[2]
        method = _METHODS.get(key)
        if method is not None:
            method(self, d, key, value)
            return
        rule = _RULES.get(key)
        if rule is None:
            report_unknown(self.r, d, key, in_block=True, after_block=None)
            return
        self.keep(key, rule(self.reader, d.line, key, value), d.line)

    def keep(self, key: str, value: Any, line: int) -> None:
        if value is not None:
            self.rv.store(key, value, line)

    def family(self) -> str:
        return "virtual6 (IPv6)" if self.block.ipv6 else "virtual (IPv4)"

    def real(self, d: Directive, key: str, value: str) -> None:
        if (key == "real6") != self.block.ipv6:
            want = "real6" if self.block.ipv6 else "real"
            self.r.error(d.line, key, f"not allowed in a {self.family()} block: use {want}=")
            return
        self.rv.reals.append((value, d.line))

    def quoted(self, d: Directive, key: str, value: str) -> None:
        if value.count('"') == 1 and "#" in d.raw:
            self.r.error(
                d.line,
                key,
                "the value contains a #: ldirectord cuts a line in a virtual block at the first #, "
                "even inside quotes, so it cannot take this value",
            )
            return
        text = self.reader.quoted(d.line, key, value)
        if text is None:
            return
        if not text:
            self.r.error(d.line, key, f'empty: ldirectord rejects {key}=""; remove the line for the default')
            return
        if key == "load":
            lm = re.search(r"\w+", text, re.ASCII)
            if not lm:
                self.r.error(d.line, key, "expected a word in quotes")
                return
            text = lm[0]
        self.keep(key, text, d.line)

    def checkcommand(self, d: Directive, key: str, value: str) -> None:
        command = self.reader.optional_quotes(value)
        if not command:
            self.r.error(d.line, key, "empty: expected the path of an executable")
            return
        if re.search(r"\s", command.strip(), re.ASCII):
            self.r.warn(
                d.line,
                key,
                f"{command.strip()!r} contains blanks: ldirectord runs checkcommand without a shell "
                "and with exactly four arguments (VIP VPORT RIP RPORT), so the exec fails and "
                "every real goes down; wrap the command in a script",
            )
        self.keep(key, command, d.line)

    def netmask(self, d: Directive, key: str, value: str) -> None:
        self.keep(key, _netmask(self.reader, d.line, value, self.block.ipv6), d.line)

    def protocol(self, d: Directive, key: str, value: str) -> None:
        pm = re.search(r"\w+", value, re.ASCII)
        word = pm[0] if pm else ""
        if self.fwmark and word != "fwm":
            self.r.error(
                d.line, key, f"{value!r} is not valid: a fwmark virtual service takes only protocol=fwm"
            )
        elif not self.fwmark and word not in ("tcp", "udp"):
            self.r.error(d.line, key, f"{value!r} is not valid: expected tcp or udp")
        else:
            self.keep(key, word, d.line)

    def virtualhost(self, d: Directive, key: str, value: str) -> None:
        vm = re.match(r'"?([^"]*)"?', value)
        host = vm[1] if vm else ""
        if host != host.rstrip(" \t\r"):
            self.r.warn(
                d.line, key, "ldirectord keeps the trailing blanks in the Host header; lvscheck drops them"
            )
            host = host.rstrip(" \t\r")
        if not host:
            self.r.warn(d.line, key, "empty: the real's address is used as the Host header")
            self.rv.values.pop(key, None)
            return
        self.keep(key, host, d.line)

    def fallback(self, d: Directive, key: str, value: str) -> None:
        if (key == "fallback6") != self.block.ipv6:
            want = "fallback6" if self.block.ipv6 else "fallback"
            self.r.error(d.line, key, f"not allowed in a {self.family()} block: use {want}=")
            return
        self.keep("fallback", self.reader.fallback(d.line, key, value), d.line)


_Method = Callable[[_BlockParser, Directive, str, str], None]
_METHODS: dict[str, _Method] = {
    "real": _BlockParser.real,
    "real6": _BlockParser.real,
    **{key: _BlockParser.quoted for key in QUOTED_BLOCK},
    "checkcommand": _BlockParser.checkcommand,
    "netmask": _BlockParser.netmask,
    "protocol": _BlockParser.protocol,
    "virtualhost": _BlockParser.virtualhost,
    "fallback": _BlockParser.fallback,
    "fallback6": _BlockParser.fallback,
}


# -- rules of one value: (reader, line, key, value) -> the value to keep, or None ------------


def _checkport(reader: Reader, line: int, key: str, value: str) -> int | None:
    dm = DIGITS.search(value)
    port = reader.number(line, key, dm[0]) if dm else None
    if dm and port is None:
        return None
    if port is None or not 0 < port < 65536:
        reader.r.error(line, key, f"{value!r} is not valid: expected a port 1..65535")
        return None
    return reader.digits(line, key, value)


def _scheduler(reader: Reader, line: int, key: str, value: str) -> str | None:
    sm = re.search(r"[a-z]+", value)
    if not sm:
        reader.r.error(
            line,
            key,
            f"{value!r} is not valid: expected a scheduler name in lowercase letters (wrr, wlc, rr, sh, ...)",
        )
        return None
    if sm[0] != value.strip(" \t\r"):
        reader.r.warn(
            line, key, f"ldirectord reads {value.strip()!r} as {sm[0]!r} (the first lowercase letters)"
        )
    return sm[0]


def _persistent(reader: Reader, line: int, key: str, value: str) -> int | None:
    return reader.digits(line, key, value, zero=True)


def _schedflags(reader: Reader, line: int, key: str, value: str) -> str | None:
    fm = re.search(r"\S+", value, re.ASCII)
    if not fm:
        reader.r.error(line, key, "empty: expected flags such as sh-port or sh-fallback,sh-port")
        return None
    return fm[0]


def _service(reader: Reader, line: int, key: str, value: str) -> str | None:
    wm = re.search(r"\w+", value, re.ASCII)
    if not wm or wm[0] not in SERVICES:
        reader.r.error(line, key, f"{value!r} is not valid: expected one of {', '.join(sorted(SERVICES))}")
        return None
    return wm[0]


def _httpmethod(reader: Reader, line: int, key: str, value: str) -> str | None:
    wm = re.search(r"\w+", value, re.ASCII)
    if not wm or wm[0].upper() not in ("GET", "HEAD"):
        reader.r.error(line, key, f"{value!r} is not valid: expected GET or HEAD")
        return None
    return wm[0].upper()


def _nonempty(what: str) -> Callable[[Reader, int, str, str], str | None]:
    def rule(reader: Reader, line: int, key: str, value: str) -> str | None:
        text = reader.optional_quotes(value)
        if not text:
            reader.r.error(line, key, f"empty: expected {what}")
        return text or None

    return rule


def _as_written(reader: Reader, line: int, key: str, value: str) -> str:
    return value


def _checktype(reader: Reader, line: int, key: str, value: str) -> tuple[str, int | None] | None:
    m = DIGITS.search(value)
    if m:
        number = reader.number(line, key, m[0])
        if number is None:
            return None
        if value.strip(" \t\r") != m[0]:
            reader.r.warn(
                line,
                key,
                f"ldirectord reads {value.strip()!r} as checktype={m[0]} (any value with a digit "
                "means N connect checks between negotiate checks)",
            )
        return "combined", number
    wm = re.search(r"[\w-]+", value, re.ASCII)
    if not wm or wm[0] not in CHECKTYPES:
        reader.r.error(
            line,
            key,
            f"{value!r} is not valid: expected connect, negotiate, ping, external, external-perl, on, off "
            "or a number",
        )
        return None
    if wm[0] != value.strip(" \t\r"):
        reader.r.warn(line, key, f"ldirectord reads {value.strip()!r} as {wm[0]!r}")
    return wm[0], None


_RULES: dict[str, Callable[[Reader, int, str, str], Any]] = {
    "checktype": _checktype,
    "checktimeout": Reader.count,
    "negotiatetimeout": Reader.count,
    "checkcount": Reader.count,
    "failurecount": Reader.count,
    "checkinterval": Reader.count,
    "checkport": _checkport,
    "scheduler": _scheduler,
    "persistent": _persistent,
    "schedflags": _schedflags,
    "ops": Reader.yesno,
    "service": _service,
    "httpmethod": _httpmethod,
    "fallbackcommand": _nonempty("a command"),
    "quiescent": Reader.yesno,
    "cleanstop": Reader.yesno,
    "emailalert": Reader.emailalert,
    "emailalertfreq": Reader.emailalertfreq,
    "emailalertstatus": Reader.emailalertstatus,
    "monitorfile": _nonempty("a file path"),
    "smtp": Reader.smtp,
    "servicename": _as_written,
    "comment": _as_written,
}


def _is_fwmark_header(block: Block) -> bool:
    h = block.header
    if not block.ipv6 and re.match(r"\d+\.\d+\.\d+\.\d+:[0-9A-Za-z_-]+", h, re.ASCII):
        return False
    if re.match(r"[0-9A-Za-z._+-]+:[0-9A-Za-z_-]+", h, re.ASCII):
        return False
    return re.match(r"\d+", h, re.ASCII) is not None


def _netmask(reader: Reader, line: int, value: str, ipv6: bool) -> str | None:
    if ipv6:
        prefix = reader.number(line, "netmask", value) if value.isascii() and value.isdigit() else -1
        if prefix is not None and not 1 <= prefix <= 128:
            reader.r.error(line, "netmask", f"{value!r} is not valid: expected a prefix length 1..128")
        return value if prefix is not None and 1 <= prefix <= 128 else None
    if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value, re.ASCII):
        reader.r.error(
            line, "netmask", f"{value!r} is not valid: expected a dotted quad such as 255.255.255.0"
        )
        return None
    import ipaddress

    try:
        ipaddress.IPv4Network(f"0.0.0.0/{value}")
    except ValueError:
        reader.r.error(
            line,
            "netmask",
            f"{value!r} is not a netmask (ipvsadm would reject it): expected e.g. 255.255.255.0",
        )
        return None
    return value
