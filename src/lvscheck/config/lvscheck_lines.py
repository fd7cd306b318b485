"""``#lvscheck: key=value ...`` lines: what ldirectord cannot express.

Column-0 lines set defaults for every virtual; lines indented inside a block
override them for that virtual (later lines win).  ``rise``, ``fall``,
``interval``, ``fastinterval``, ``jitter``, ``check``, ``slowstart`` and
``shareprobe`` are lvscheck's own; any other key is a check option handed to
the check type as written.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from lvscheck.config.lexer import LvscheckLine
from lvscheck.config.model import VIA_MARK_COUNT, LvscheckSettings
from lvscheck.config.report import Report
from lvscheck.config.values import read_number

__all__ = ["parse_lvscheck"]

_LV_KEYS = (
    "rise",
    "fall",
    "interval",
    "fastinterval",
    "jitter",
    "check",
    "slowstart",
    "shareprobe",
    "via",
    "viamarks",
)
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
        slowstart=values.get("slowstart", base.slowstart),
        shareprobe=values.get("shareprobe", base.shareprobe),
        via=values.get("via", base.via),
        viamarks=values.get("viamarks", base.viamarks),
        options=MappingProxyType(options),
        lines=MappingProxyType(where),
    )


def _lv_value(report: Report, line: int, key: str, value: str) -> Any:
    directive = f"#lvscheck {key}"
    if key in ("rise", "fall"):
        count, why = read_number(value) if value.isascii() and value.isdigit() else (None, "")
        if count is not None and 1 <= count <= 1000:
            return count
        report.error(line, directive, why or f"{value!r} is not valid: expected a count 1..1000")
        return None
    if key == "shareprobe":  # one probe for a real checked the same way by several virtuals
        if value.lower() in ("yes", "no"):
            return value.lower() == "yes"
        report.error(line, directive, f"{value!r} is not valid: expected yes or no")
        return None
    if key == "slowstart":  # seconds a recovered real takes to reach its weight (0: at once)
        try:
            seconds = float(value.removesuffix("s"))
        except ValueError:
            seconds = -1.0
        if 0 <= seconds <= 3600:
            return seconds
        report.error(line, directive, f"{value!r} is not valid: expected seconds 0..3600, e.g. 30 (0: off)")
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
    if key == "via":
        if value in ("rip", "vip"):
            return value
        report.error(line, directive, f"{value!r} is not valid: expected rip (the real's address) or vip")
        return None
    if key == "viamarks":
        mark = int(value, 0) if re.fullmatch(r"[0-9]+|0x[0-9a-fA-F]+", value, re.ASCII) else -1
        if 1 <= mark <= 0xFFFFFFFF - VIA_MARK_COUNT:
            return mark
        report.error(
            line,
            directive,
            f"{value!r} is not valid: expected the first private firewall mark, "
            f"1..{0xFFFFFFFF - VIA_MARK_COUNT} (e.g. 0x4C560000; {VIA_MARK_COUNT} marks from it are ours)",
        )
        return None
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", value, re.ASCII):
        report.error(
            line, directive, f"{value!r} is not valid: expected a check type name (see `lvscheck checks`)"
        )
        return None
    return value
