"""Directives: each global and virtual-block line checked the way ldirectord checks it.

Every rule here mirrors ``read_config`` in ldirectord (see ldirectord.md §2 and
docs/config.md): the same directives, the same quoting rules, the first-digits
rule for numbers, exact ``yes``/``no``.  What ldirectord rejects is an error
(with a message that says what is accepted); what it accepts although it is
odd is accepted the same way and reported as a warning.  Nothing stops at the
first problem: every line is checked and all problems are reported together.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from typing import Any

from lvscheck.config.lexer import Block, Directive, Lexed, LvscheckLine, lex
from lvscheck.config.model import CHECKTYPES, SERVICES, Config, LvscheckSettings
from lvscheck.config.report import Report
from lvscheck.errors import ConfigError

__all__ = ["RawConfig", "RawFallback", "RawVirtual", "load", "parse", "parse_lvscheck"]

_KEYVAL = re.compile(r"([A-Za-z0-9_]+)\s*=\s*(.*)", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)
_QUOTED = re.compile(r'"(.*)"', re.ASCII)

GLOBAL_DIRECTIVES = (
    "checktimeout",
    "negotiatetimeout",
    "checkinterval",
    "checkcount",
    "failurecount",
    "fallback",
    "fallback6",
    "fallbackcommand",
    "autoreload",
    "callback",
    "logfile",
    "execute",
    "fork",
    "supervised",
    "quiescent",
    "readdquiescent",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "emailalertfrom",
    "cleanstop",
    "smtp",
    "maintenancedir",
    "virtual",
    "virtual6",
)
BLOCK_DIRECTIVES = (
    "real",
    "real6",
    "request",
    "receive",
    "checktype",
    "checkcommand",
    "checktimeout",
    "negotiatetimeout",
    "checkcount",
    "failurecount",
    "checkinterval",
    "checkport",
    "login",
    "passwd",
    "database",
    "secret",
    "load",
    "scheduler",
    "persistent",
    "schedflags",
    "netmask",
    "protocol",
    "ops",
    "service",
    "httpmethod",
    "virtualhost",
    "fallback",
    "fallback6",
    "fallbackcommand",
    "quiescent",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "monitorfile",
    "cleanstop",
    "smtp",
    "servicename",
    "comment",
)
_GLOBAL_ONLY = {"readdquiescent", "maintenancedir", "autoreload", "fork", "logfile", "emailalertfrom"}
_GLOBAL_ONLY |= {"callback", "execute", "supervised"}
_QUOTED_BLOCK = ("request", "receive", "login", "passwd", "database", "secret", "load")
_SECRET = ("passwd", "secret")
_EMAIL_STATES = ("all", "none", "starting", "running", "stopping", "reloading")
_YESNO = "expected yes or no (lowercase, nothing after it)"


class RawFallback:
    __slots__ = ("forwarding", "line", "port", "server")

    def __init__(self, server: str, port: str | None, forwarding: str, line: int) -> None:
        self.server = server
        self.port = port
        self.forwarding = forwarding
        self.line = line


class RawVirtual:
    __slots__ = ("block", "lines", "reals", "values")

    def __init__(self, block: Block) -> None:
        self.block = block
        self.values: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.reals: list[tuple[str, int]] = []


class RawConfig:
    __slots__ = ("lexed", "lines", "values", "virtuals")

    def __init__(self, lexed: Lexed) -> None:
        self.lexed = lexed
        self.values: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.virtuals: list[RawVirtual] = []


def _shown(key: str, value: str) -> str:
    return "(hidden)" if key in _SECRET else repr(value)


def _cr_hint(value: str) -> str:
    if "#" in value:
        return " (a # comment after a global directive stays part of the value: put it on its own line)"
    if value.endswith("\r"):
        return " (the line ends in a carriage return: the file has DOS/Windows line ends)"
    if value != value.rstrip(" \t"):
        return " (ldirectord keeps the trailing blanks or comment in the value)"
    return ""


class _Reader:
    """Checks directives one by one, storing values (last one wins) and problems."""

    def __init__(self, report: Report) -> None:
        self.r = report

    # -- value rules shared by both sections ----------------------------------------------

    def digits(self, line: int, key: str, value: str, *, zero: bool = False) -> int | None:
        m = _DIGITS.search(value)
        if not m or (not zero and int(m[0]) == 0):
            low = "0" if zero else "above 0"
            self.r.error(line, key, f"{value!r} is not valid: expected a whole number {low}")
            return None
        number = int(m[0])
        if value.strip(" \t\r") != m[0]:
            self.r.warn(
                line,
                key,
                f"ldirectord reads {value.strip()!r} as {number} (the first digits in the value); "
                f"lvscheck does the same: write {key}={number}",
            )
        return number

    def yesno(self, line: int, key: str, value: str) -> bool | None:
        if value in ("yes", "no"):
            return value == "yes"
        self.r.error(line, key, f"{value!r} is not valid: {_YESNO}{_cr_hint(value)}")
        return None

    def quoted(self, line: int, key: str, value: str, *, required: bool = True) -> str | None:
        m = _QUOTED.match(value)
        if not m:
            if required:
                self.r.error(
                    line,
                    key,
                    f'the value must be in double quotes: {key}="..." '
                    f"(ldirectord rejects {key}= without quotes as an unknown command)",
                )
            return None
        rest = value[m.end() :]
        if rest.strip(" \t\r"):
            self.r.warn(line, key, f"ldirectord ignores {rest.strip()!r} after the closing quote")
        return m[1]

    def optional_quotes(self, value: str) -> str:
        m = _QUOTED.match(value)
        return m[1] if m else value

    def emailalert(self, line: int, key: str, value: str) -> str | None:
        m = re.fullmatch(r'"([^"]*)"', value)
        address = m[1] if m else value
        if not address:
            self.r.error(line, key, 'no e-mail address: expected emailalert="a@example.com[, b@...]"')
            return None
        return address

    def emailalertfreq(self, line: int, key: str, value: str) -> int | None:
        m = re.match(r"\d*", value, re.ASCII)
        if not m or not m[0]:
            self.r.error(line, key, f"{value!r} is not valid: expected a number of seconds (0: never repeat)")
            return None
        if value.strip(" \t\r") != m[0]:
            self.r.warn(line, key, f"ldirectord reads {value.strip()!r} as {m[0]} and ignores the rest")
        return int(m[0])

    def emailalertstatus(self, line: int, key: str, value: str) -> tuple[str, ...] | None:
        parts = re.split(r"\s*,\s*", value, flags=re.ASCII)
        ok = True
        for part in parts:
            if part not in _EMAIL_STATES:
                self.r.error(
                    line,
                    key,
                    f"{part!r} is not valid: expected a comma list of "
                    f"{', '.join(_EMAIL_STATES)}{_cr_hint(part)}",
                )
                ok = False
        if "none" in parts and any(p != "none" for p in parts):
            self.r.error(line, key, "'none' cannot be combined with other states")
            ok = False
        return tuple(parts) if ok else None

    def smtp(self, line: int, key: str, value: str) -> str | None:
        m = re.match(r"[0-9A-Za-z._+-]+", value, re.ASCII)
        if not m:
            self.r.error(
                line, key, f"{value!r} is not valid: expected a host name or IP address without quotes"
            )
            return None
        if value[m.end() :].strip(" \t\r"):
            self.r.warn(line, key, f"ldirectord reads {m[0]!r} and ignores {value[m.end() :].strip()!r}")
        return m[0]

    def fallback(self, line: int, key: str, value: str) -> RawFallback | None:
        m = re.search(r"(\S+)(\s+(\S+))?\s*$", value, re.ASCII)
        if not m:
            self.r.error(line, key, "no server: expected HOST[:PORT] [gate|masq|ipip]")
            return None
        if value[: m.start()].strip():
            self.r.warn(
                line, key, f"ldirectord ignores {value[: m.start()].strip()!r} before {m[0].strip()!r}"
            )
        forwarding = m[3] or "gate"
        hostport = m[1]
        pm = re.search(r"(:(\d+|[A-Za-z0-9_-]+))?$", hostport, re.ASCII)
        port = pm[2] if pm else None
        server = hostport[: pm.start()] if pm else hostport
        if forwarding not in ("gate", "masq", "ipip"):
            self.r.error(
                line, key, f"forwarding method {forwarding!r} is not valid: expected gate, masq or ipip"
            )
            return None
        if '"' in hostport:
            self.r.error(line, key, "the server must not be quoted: expected HOST[:PORT] [gate|masq|ipip]")
            return None
        return RawFallback(server, port, forwarding, line)

    # -- unknown directives ------------------------------------------------------------

    def unknown(self, d: Directive, key: str | None, *, in_block: bool, after_block: Block | None) -> None:
        text = d.text.strip()
        if key is None:
            if not text:
                self.r.error(
                    d.line,
                    "",
                    "a line of only blanks inside a virtual block: ldirectord rejects it as an unknown "
                    "command; make it empty (which ends the block) or delete it",
                )
                return
            word = re.match(r"[A-Za-z0-9_]+", text, re.ASCII)
            if word and word[0] == text and word[0] in BLOCK_DIRECTIVES + GLOBAL_DIRECTIVES:
                self.r.error(d.line, text, f"no value: expected {text}=VALUE")
                return
            self.r.error(d.line, "", f"{text[:40]!r} is not a directive: expected key=value")
            return
        if key in ("timeout", "connecttimeout"):
            instead = "checktimeout and negotiatetimeout" if key == "timeout" else "negotiatetimeout"
            self.r.error(d.line, key, f"no longer accepted by ldirectord: use {instead}")
            return
        if not in_block and d.raw[:1] in (" ", "\t"):
            where = ""
            if after_block is not None:
                where = f" (a blank line ended the virtual block of line {after_block.line})"
            self.r.error(
                d.line,
                key,
                f"an indented directive outside a virtual block{where}: ldirectord rejects it; "
                "remove the blank line inside the block, or write global directives at column 0",
            )
            return
        if in_block and key in ("virtual", "virtual6"):
            self.r.error(d.line, key, "a virtual service starts in column 0 (not indented)")
            return
        if in_block and key in _GLOBAL_ONLY:
            self.r.error(d.line, key, "a global directive: write it at column 0, outside the virtual blocks")
            return
        if not in_block and key in BLOCK_DIRECTIVES and key not in GLOBAL_DIRECTIVES:
            self.r.error(
                d.line,
                key,
                "only valid inside a virtual block (indent it by 4 spaces or a tab under virtual=)",
            )
            return
        known = BLOCK_DIRECTIVES if in_block else GLOBAL_DIRECTIVES
        if in_block and key in _QUOTED_BLOCK:  # only reached when the quotes are missing
            self.r.error(d.line, key, f'the value must be in double quotes: {key}="..."')
            return
        import difflib

        close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        where = "in a virtual block" if in_block else "in the global section"
        self.r.error(d.line, key, f"unknown directive {where}{hint}")


def _parse_globals(reader: _Reader, lexed: Lexed, raw: RawConfig) -> None:
    r = reader.r
    for d in lexed.globals:
        after = None
        for block in lexed.blocks:
            if block.end <= d.line:
                after = block
        m = _KEYVAL.match(d.text)
        if d.text.startswith("supervised") and (not m or m[1] == "supervised"):
            value = m[2] if m else d.text[len("supervised") :]
            if m is None and not value.strip(" \t\r"):
                r.warn(
                    d.line, "supervised", "please update your config not to use a bare supervised directive"
                )
                _store(raw.values, raw.lines, "supervised", True, d.line)
            elif m is not None and value in ("yes", "no"):
                _store(raw.values, raw.lines, "supervised", value == "yes", d.line)
            else:
                r.error(d.line, "supervised", f"{value!r} is not valid: {_YESNO}{_cr_hint(value)}")
            continue
        if not m or d.raw[:1] in (" ", "\t"):
            key = m[1] if m else None
            if key is None:
                stripped = d.text.strip()
                km = re.match(r"[A-Za-z0-9_]+", stripped, re.ASCII)
                key = km[0] if km and "=" in stripped else None
            reader.unknown(d, key, in_block=False, after_block=after)
            continue
        key, value = m[1], m[2]
        parsed: Any = None
        if key in ("checktimeout", "negotiatetimeout", "checkinterval", "checkcount", "failurecount"):
            parsed = reader.digits(d.line, key, value)
            if key == "checkcount" and parsed is not None:
                r.warn(
                    d.line,
                    key,
                    "deprecated in ldirectord (it only counts ping attempts); see failurecount",
                )
        elif key in ("fallback", "fallback6"):
            parsed = reader.fallback(d.line, key, value)
        elif key == "fallbackcommand":
            parsed = value or None
            if not value:
                r.error(d.line, key, "empty: expected a command")
        elif key in ("autoreload", "fork", "quiescent", "readdquiescent", "cleanstop"):
            parsed = reader.yesno(d.line, key, value)
        elif key in ("callback", "logfile"):
            parsed = reader.quoted(d.line, key, value)
        elif key == "execute":
            previous = raw.values.get("execute", ())
            parsed = (*previous, value) if value not in previous else previous
        elif key == "emailalert":
            parsed = reader.emailalert(d.line, key, value)
        elif key == "emailalertfreq":
            parsed = reader.emailalertfreq(d.line, key, value)
        elif key == "emailalertstatus":
            parsed = reader.emailalertstatus(d.line, key, value)
        elif key == "emailalertfrom":
            parsed = value or None
            if not value:
                r.error(d.line, key, "empty: expected an e-mail address")
        elif key == "smtp":
            parsed = reader.smtp(d.line, key, value)
        elif key == "maintenancedir":
            parsed = value or None
            if not value:
                r.error(d.line, key, "empty: expected a directory")
            elif not os.path.isdir(value):
                r.warn(d.line, key, f"the directory {value!r} does not exist (ldirectord warns too)")
        else:
            reader.unknown(d, key, in_block=False, after_block=after)
            continue
        if parsed is not None:
            _store(raw.values, raw.lines, key, parsed, d.line)


def _store(values: dict[str, Any], lines: dict[str, int], key: str, value: Any, line: int) -> None:
    values[key] = value
    lines[key] = line


def _parse_block(reader: _Reader, block: Block) -> RawVirtual:
    r = reader.r
    rv = RawVirtual(block)
    fwmark = _is_fwmark_header(block)
    for d in block.directives:
        m = _KEYVAL.match(d.text)
        if not m:
            km = re.match(r"[A-Za-z0-9_]+", d.text, re.ASCII)
            reader.unknown(d, km[0] if km and d.text.strip() else None, in_block=True, after_block=None)
            continue
        key, value = m[1], m[2]
        parsed: Any = None
        if key in ("real", "real6"):
            if (key == "real6") != block.ipv6:
                want = "real6" if block.ipv6 else "real"
                r.error(d.line, key, f"not allowed in a {_family(block)} block: use {want}=")
                continue
            rv.reals.append((value, d.line))
            continue
        if key in _QUOTED_BLOCK and value.count('"') == 1 and "#" in d.raw:
            r.error(
                d.line,
                key,
                "the value contains a #: ldirectord cuts a line in a virtual block at the first #, "
                "even inside quotes, so it cannot take this value",
            )
            continue
        if key in _QUOTED_BLOCK:
            text = reader.quoted(d.line, key, value)
            if text is None:
                continue
            if not text:
                r.error(d.line, key, f'empty: ldirectord rejects {key}=""; remove the line for the default')
                continue
            if key == "load":
                lm = re.search(r"\w+", text, re.ASCII)
                if not lm:
                    r.error(d.line, key, "expected a word in quotes")
                    continue
                text = lm[0]
            parsed = text
        elif key == "checktype":
            parsed = _checktype(reader, d.line, value)
        elif key == "checkcommand":
            command = reader.optional_quotes(value)
            if not command:
                r.error(d.line, key, "empty: expected the path of an executable")
                continue
            if re.search(r"\s", command.strip(), re.ASCII):
                r.warn(
                    d.line,
                    key,
                    f"{command.strip()!r} contains blanks: ldirectord runs checkcommand without a shell "
                    "and with exactly four arguments (VIP VPORT RIP RPORT), so the exec fails and "
                    "every real goes down; wrap the command in a script",
                )
            parsed = command
        elif key in ("checktimeout", "negotiatetimeout", "checkcount", "failurecount", "checkinterval"):
            parsed = reader.digits(d.line, key, value)
            if key == "checkcount" and parsed is not None:
                r.warn(
                    d.line,
                    key,
                    "deprecated in ldirectord (it only counts ping attempts); see failurecount",
                )
        elif key == "checkport":
            dm = _DIGITS.search(value)
            if not dm or not 0 < int(dm[0]) < 65536:
                r.error(d.line, key, f"{value!r} is not valid: expected a port 1..65535")
                continue
            parsed = reader.digits(d.line, key, value)
        elif key == "scheduler":
            sm = re.search(r"[a-z]+", value)
            if not sm:
                r.error(
                    d.line,
                    key,
                    f"{value!r} is not valid: expected a scheduler name in lowercase letters "
                    "(wrr, wlc, rr, sh, ...)",
                )
                continue
            if sm[0] != value.strip(" \t\r"):
                r.warn(
                    d.line,
                    key,
                    f"ldirectord reads {value.strip()!r} as {sm[0]!r} (the first lowercase letters)",
                )
            parsed = sm[0]
        elif key == "persistent":
            parsed = reader.digits(d.line, key, value, zero=True)
        elif key == "schedflags":
            fm = re.search(r"\S+", value, re.ASCII)
            if not fm:
                r.error(d.line, key, "empty: expected flags such as sh-port or sh-fallback,sh-port")
                continue
            parsed = fm[0]
        elif key == "netmask":
            parsed = _netmask(reader, d.line, value, block.ipv6)
        elif key == "protocol":
            pm = re.search(r"\w+", value, re.ASCII)
            word = pm[0] if pm else ""
            if fwmark and word != "fwm":
                r.error(
                    d.line, key, f"{value!r} is not valid: a fwmark virtual service takes only protocol=fwm"
                )
                continue
            if not fwmark and word not in ("tcp", "udp"):
                r.error(d.line, key, f"{value!r} is not valid: expected tcp or udp")
                continue
            parsed = word
        elif key == "ops":
            parsed = reader.yesno(d.line, key, value)
        elif key == "service":
            wm = re.search(r"\w+", value, re.ASCII)
            if not wm or wm[0] not in SERVICES:
                r.error(d.line, key, f"{value!r} is not valid: expected one of {', '.join(sorted(SERVICES))}")
                continue
            parsed = wm[0]
        elif key == "httpmethod":
            wm = re.search(r"\w+", value, re.ASCII)
            if not wm or wm[0].upper() not in ("GET", "HEAD"):
                r.error(d.line, key, f"{value!r} is not valid: expected GET or HEAD")
                continue
            parsed = wm[0].upper()
        elif key == "virtualhost":
            vm = re.match(r'"?([^"]*)"?', value)
            host = vm[1] if vm else ""
            if host != host.rstrip(" \t\r"):
                r.warn(
                    d.line,
                    key,
                    "ldirectord keeps the trailing blanks in the Host header; lvscheck drops them",
                )
                host = host.rstrip(" \t\r")
            if not host:
                r.warn(d.line, key, "empty: the real's address is used as the Host header")
                parsed = None
                rv.values.pop(key, None)
                continue
            parsed = host
        elif key in ("fallback", "fallback6"):
            if (key == "fallback6") != block.ipv6:
                want = "fallback6" if block.ipv6 else "fallback"
                r.error(d.line, key, f"not allowed in a {_family(block)} block: use {want}=")
                continue
            parsed = reader.fallback(d.line, key, value)
            key = "fallback"
        elif key == "fallbackcommand":
            parsed = reader.optional_quotes(value)
            if not parsed:
                r.error(d.line, key, "empty: expected a command")
                continue
        elif key in ("quiescent", "cleanstop"):
            parsed = reader.yesno(d.line, key, value)
        elif key == "emailalert":
            parsed = reader.emailalert(d.line, key, value)
        elif key == "emailalertfreq":
            parsed = reader.emailalertfreq(d.line, key, value)
        elif key == "emailalertstatus":
            parsed = reader.emailalertstatus(d.line, key, value)
        elif key == "monitorfile":
            parsed = reader.optional_quotes(value)
            if not parsed:
                r.error(d.line, key, "empty: expected a file path")
                continue
        elif key == "smtp":
            parsed = reader.smtp(d.line, key, value)
        elif key in ("servicename", "comment"):
            parsed = value
        else:
            reader.unknown(d, key, in_block=True, after_block=None)
            continue
        if parsed is not None:
            _store(rv.values, rv.lines, key, parsed, d.line)
    return rv


def _family(block: Block) -> str:
    return "virtual6 (IPv6)" if block.ipv6 else "virtual (IPv4)"


def _is_fwmark_header(block: Block) -> bool:
    h = block.header
    if not block.ipv6 and re.match(r"\d+\.\d+\.\d+\.\d+:[0-9A-Za-z_-]+", h, re.ASCII):
        return False
    if re.match(r"[0-9A-Za-z._+-]+:[0-9A-Za-z_-]+", h, re.ASCII):
        return False
    return re.match(r"\d+", h, re.ASCII) is not None


def _checktype(reader: _Reader, line: int, value: str) -> tuple[str, int | None] | None:
    m = _DIGITS.search(value)
    if m:
        if value.strip(" \t\r") != m[0]:
            reader.r.warn(
                line,
                "checktype",
                f"ldirectord reads {value.strip()!r} as checktype={m[0]} (any value with a digit "
                "means N connect checks between negotiate checks)",
            )
        return "combined", int(m[0])
    wm = re.search(r"[\w-]+", value, re.ASCII)
    if not wm or wm[0] not in CHECKTYPES:
        reader.r.error(
            line,
            "checktype",
            f"{value!r} is not valid: expected connect, negotiate, ping, external, external-perl, on, off "
            "or a number",
        )
        return None
    if wm[0] != value.strip(" \t\r"):
        reader.r.warn(line, "checktype", f"ldirectord reads {value.strip()!r} as {wm[0]!r}")
    return wm[0], None


def _netmask(reader: _Reader, line: int, value: str, ipv6: bool) -> str | None:
    if ipv6:
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 128:
            reader.r.error(line, "netmask", f"{value!r} is not valid: expected a prefix length 1..128")
            return None
        return value
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


# -- #lvscheck: lines ------------------------------------------------------------------------

_LV_KEYS = ("rise", "fall", "interval", "fastinterval", "jitter", "check")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)


def parse_lvscheck(report: Report, lines: list[LvscheckLine], base: LvscheckSettings) -> LvscheckSettings:
    """``#lvscheck: key=value ...`` lines on top of ``base`` (later lines win)."""
    if not lines:
        return base
    import shlex

    values: dict[str, Any] = {}
    options = dict(base.options)
    where = dict(base.lines)
    for entry in lines:
        try:
            words = shlex.split(entry.text, comments=False, posix=True)
        except ValueError as exc:
            report.error(entry.line, "#lvscheck", f"cannot split the line: {exc} (quote values with blanks)")
            continue
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or not _OPTION_NAME.fullmatch(key):
                report.error(
                    entry.line,
                    "#lvscheck",
                    f"{word!r} is not key=value: expected e.g. #lvscheck: rise=2 fall=3 tlsverify=no",
                )
                continue
            where[key] = entry.line
            if key in _LV_KEYS:
                parsed = _lv_value(report, entry.line, key, value)
                if parsed is not None:
                    values[key] = parsed
            else:
                options[key] = value
    return LvscheckSettings(
        rise=values.get("rise", base.rise),
        fall=values.get("fall", base.fall),
        interval=values.get("interval", base.interval),
        fastinterval=values.get("fastinterval", base.fastinterval),
        jitter=values.get("jitter", base.jitter),
        check=values.get("check", base.check),
        options=MappingProxyType(options),
        lines=MappingProxyType(where),
    )


def _lv_value(report: Report, line: int, key: str, value: str) -> Any:
    directive = f"#lvscheck {key}"
    if key in ("rise", "fall"):
        if value.isascii() and value.isdigit() and 1 <= int(value) <= 1000:
            return int(value)
        report.error(line, directive, f"{value!r} is not valid: expected a count 1..1000")
        return None
    if key in ("interval", "fastinterval"):
        try:
            seconds = float(value.removesuffix("s"))
        except ValueError:
            seconds = -1.0
        if 0.05 <= seconds <= 86400:
            return seconds
        report.error(line, directive, f"{value!r} is not valid: expected seconds 0.05..86400, e.g. 2 or 0.5")
        return None
    if key == "jitter":
        try:
            fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            fraction = -1.0
        if 0 <= fraction <= 1:
            return fraction
        report.error(
            line, directive, f"{value!r} is not valid: expected a fraction 0..1 or a percentage 0%..100%"
        )
        return None
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", value, re.ASCII):
        report.error(
            line, directive, f"{value!r} is not valid: expected a check type name (see `lvscheck checks`)"
        )
        return None
    return value


# -- entry points ----------------------------------------------------------------------------


def parse(text: str, source: str) -> Config:
    """Parse ``text`` (named ``source`` in messages) into a :class:`Config` or raise ConfigError."""
    config, report = parse_partial(text, source)
    report.raise_if_errors()
    return config


def parse_partial(text: str, source: str) -> tuple[Config, Report]:
    """Parse ``text`` as far as it goes: the model of what is valid, and every problem found.

    The model leaves out what has errors (a virtual whose header is bad, a real that
    does not parse); :mod:`lvscheck.config.prepare` goes on with it so one run reports
    every problem of a file (syntax, values, check options, duplicates) at once.
    """
    from lvscheck.config.resolve import build

    report = Report(source)
    lexed = lex(text)
    reader = _Reader(report)
    raw = RawConfig(lexed)
    _parse_globals(reader, lexed, raw)
    for block in lexed.blocks:
        raw.virtuals.append(_parse_block(reader, block))
    for entry in lexed.lvscheck:
        if entry.indented:  # build() skips these
            report.error(
                entry.line,
                "#lvscheck",
                "an indented #lvscheck: line outside a virtual block (a blank line ends a block); "
                "write it at column 0 for settings of every virtual",
            )
    return build(raw, report), report


def read_text(path: str) -> str:
    """The text of the file at ``path``; ConfigError when it cannot be read or is binary."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: a binary file, not an ldirectord.cf")
    return data.decode("utf-8", "surrogateescape")


def load(path: str) -> Config:
    return parse(read_text(path), path)
