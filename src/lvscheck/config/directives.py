"""Which directives exist where, and what to tell an operator about a line that is none.

The names are ldirectord's (``read_config``): :data:`GLOBAL_DIRECTIVES` at column 0,
:data:`BLOCK_DIRECTIVES` indented under ``virtual=``.
"""

from __future__ import annotations

import re

from lvscheck.config.lexer import Block, Directive
from lvscheck.config.report import Report

__all__ = ["BLOCK_DIRECTIVES", "GLOBAL_DIRECTIVES", "GLOBAL_ONLY", "QUOTED_BLOCK", "report_unknown"]

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
GLOBAL_ONLY = {"readdquiescent", "maintenancedir", "autoreload", "fork", "logfile", "emailalertfrom"}
GLOBAL_ONLY |= {"callback", "execute", "supervised"}
QUOTED_BLOCK = ("request", "receive", "login", "passwd", "database", "secret", "load")


def report_unknown(
    r: Report, d: Directive, key: str | None, *, in_block: bool, after_block: Block | None
) -> None:
    """An error for a line that is no directive of its section, saying what was meant."""
    if key is None:
        r.error(d.line, *_not_key_value(d.text.strip()))
        return
    message = _misplaced(d, key, in_block, after_block) or _unknown(key, in_block)
    r.error(d.line, key, message)


def _not_key_value(text: str) -> tuple[str, str]:
    """(directive, message) for a line without ``key=``."""
    if not text:
        return "", (
            "a line of only blanks inside a virtual block: ldirectord rejects it as an unknown "
            "command; make it empty (which ends the block) or delete it"
        )
    word = re.match(r"[A-Za-z0-9_]+", text, re.ASCII)
    if word and word[0] == text and word[0] in BLOCK_DIRECTIVES + GLOBAL_DIRECTIVES:
        return text, f"no value: expected {text}=VALUE"
    return "", f"{text[:40]!r} is not a directive: expected key=value"


def _misplaced(d: Directive, key: str, in_block: bool, after_block: Block | None) -> str:
    """Why a known directive is wrong where it is ("" when it is not a known one)."""
    if key in ("timeout", "connecttimeout"):
        instead = "checktimeout and negotiatetimeout" if key == "timeout" else "negotiatetimeout"
        return f"no longer accepted by ldirectord: use {instead}"
    if not in_block and d.raw[:1] in (" ", "\t"):
        where = ""
        if after_block is not None:
            where = f" (a blank line ended the virtual block of line {after_block.line})"
        return (
            f"an indented directive outside a virtual block{where}: ldirectord rejects it; "
            "remove the blank line inside the block, or write global directives at column 0"
        )
    if in_block and key in ("virtual", "virtual6"):
        return "a virtual service starts in column 0 (not indented)"
    if in_block and key in GLOBAL_ONLY:
        return "a global directive: write it at column 0, outside the virtual blocks"
    if not in_block and key in BLOCK_DIRECTIVES and key not in GLOBAL_DIRECTIVES:
        return "only valid inside a virtual block (indent it by 4 spaces or a tab under virtual=)"
    if in_block and key in QUOTED_BLOCK:  # only reached when the quotes are missing
        return f'the value must be in double quotes: {key}="..."'
    return ""


def _unknown(key: str, in_block: bool) -> str:
    import difflib

    known = BLOCK_DIRECTIVES if in_block else GLOBAL_DIRECTIVES
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else ""
    where = "in a virtual block" if in_block else "in the global section"
    return f"unknown directive {where}{hint}"
