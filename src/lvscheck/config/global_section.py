"""The global (column-0) directives, each checked the way ldirectord's ``read_config`` does."""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from lvscheck.config.directives import report_unknown
from lvscheck.config.lexer import Block, Directive, Lexed
from lvscheck.config.raw import RawConfig
from lvscheck.config.rules import YESNO, Reader, cr_hint

__all__ = ["KEYVAL", "parse_globals"]

KEYVAL = re.compile(r"([A-Za-z0-9_]+)\s*=\s*(.*)", re.ASCII)

#: A rule: (reader, line, key, value) -> the value to keep, or None (problem reported).
Rule = Callable[[Reader, int, str, str], Any]


def _required(what: str) -> Rule:
    def rule(reader: Reader, line: int, key: str, value: str) -> str | None:
        if not value:
            reader.r.error(line, key, f"empty: expected {what}")
        return value or None

    return rule


def _maintenancedir(reader: Reader, line: int, key: str, value: str) -> str | None:
    if not value:
        reader.r.error(line, key, "empty: expected a directory")
    elif not os.path.isdir(value):
        reader.r.warn(line, key, f"the directory {value!r} does not exist (ldirectord warns too)")
    return value or None


_RULES: dict[str, Rule] = {
    "checktimeout": Reader.count,
    "negotiatetimeout": Reader.count,
    "checkinterval": Reader.count,
    "checkcount": Reader.count,
    "failurecount": Reader.count,
    "fallback": Reader.fallback,
    "fallback6": Reader.fallback,
    "fallbackcommand": _required("a command"),
    "autoreload": Reader.yesno,
    "fork": Reader.yesno,
    "quiescent": Reader.yesno,
    "readdquiescent": Reader.yesno,
    "cleanstop": Reader.yesno,
    "callback": Reader.quoted,
    "logfile": Reader.quoted,
    "emailalert": Reader.emailalert,
    "emailalertfreq": Reader.emailalertfreq,
    "emailalertstatus": Reader.emailalertstatus,
    "emailalertfrom": _required("an e-mail address"),
    "smtp": Reader.smtp,
    "maintenancedir": _maintenancedir,
}


def parse_globals(reader: Reader, lexed: Lexed, raw: RawConfig) -> None:
    """Every global line of ``lexed`` into ``raw.values`` (the last value of a key wins)."""
    ends = [block.end for block in lexed.blocks]  # in file order, so sorted
    for d in lexed.globals:
        ended = bisect_right(ends, d.line)  # the blocks that ended before this line
        _global_line(reader, d, raw, lexed.blocks[ended - 1] if ended else None)


def _global_line(reader: Reader, d: Directive, raw: RawConfig, after: Block | None) -> None:
    m = KEYVAL.match(d.text)
    if d.text.startswith("supervised") and (not m or m[1] == "supervised"):
        _supervised(reader, d, m, raw)
        return
    rule = _RULES.get(m[1]) if m else None
    if m is None or d.raw[:1] in (" ", "\t") or (rule is None and m[1] != "execute"):
        report_unknown(reader.r, d, _key_of(d, m), in_block=False, after_block=after)
        return
    key, value = m[1], m[2]
    if key == "execute":
        previous = raw.values.get("execute", ())
        raw.store(key, (*previous, value) if value not in previous else previous, d.line)
        return
    assert rule is not None
    parsed = rule(reader, d.line, key, value)
    if parsed is not None:
        raw.store(key, parsed, d.line)


def _key_of(d: Directive, m: re.Match[str] | None) -> str | None:
    """The directive a line that is not ``key=value`` at column 0 meant, if one can be seen."""
    if m is not None:
        return m[1]
    stripped = d.text.strip()
    km = re.match(r"[A-Za-z0-9_]+", stripped, re.ASCII)
    return km[0] if km and "=" in stripped else None


def _supervised(reader: Reader, d: Directive, m: re.Match[str] | None, raw: RawConfig) -> None:
    """ldirectord still takes a bare ``supervised`` line (with a warning)."""
    value = m[2] if m else d.text[len("supervised") :]
    if m is None and not value.strip(" \t\r"):
        reader.r.warn(
            d.line, "supervised", "please update your config not to use a bare supervised directive"
        )
        raw.store("supervised", True, d.line)
    elif m is not None and value in ("yes", "no"):
        raw.store("supervised", value == "yes", d.line)
    else:
        reader.r.error(d.line, "supervised", f"{value!r} is not valid: {YESNO}{cr_hint(value)}")
