"""Value rules shared by the global section and the virtual blocks, as ldirectord applies them.

The first-digits rule for numbers, exact ``yes``/``no``, double quotes, e-mail
settings, ``smtp=`` and ``fallback=``.  Each rule returns the value, or ``None``
after reporting an error; what ldirectord accepts although it is odd is returned
with a warning.  Every rule runs in time linear in the length of the value.
"""

from __future__ import annotations

import re

from lvscheck.config.raw import RawFallback
from lvscheck.config.report import Report
from lvscheck.config.values import read_number

__all__ = ["DIGITS", "YESNO", "Reader", "cr_hint"]

DIGITS = re.compile(r"\d+", re.ASCII)
YESNO = "expected yes or no (lowercase, nothing after it)"

_QUOTED = re.compile(r'"(.*)"', re.ASCII)
_EMAIL_STATES = ("all", "none", "starting", "running", "stopping", "reloading")
_BLANKS = " \t\n\r\f\v"  # Perl's \s
# (?<!\S): a search starts only where a word starts.  The leftmost match is the same
# (a match from inside a word is also one from its start), but a long word followed by
# long blanks is no longer scanned once from each of its letters (quadratic).
_FALLBACK = re.compile(r"(?<!\S)(\S+)(\s+(\S+))?\s*$", re.ASCII)
_FALLBACK_PORT = re.compile(r":(\d+|[A-Za-z0-9_-]+)$", re.ASCII)


def cr_hint(value: str) -> str:
    """Why a value that looks right is not: a comment, a CR, or trailing blanks kept in it."""
    if "#" in value:
        return " (a # comment after a global directive stays part of the value: put it on its own line)"
    if value.endswith("\r"):
        return " (the line ends in a carriage return: the file has DOS/Windows line ends)"
    if value != value.rstrip(" \t"):
        return " (ldirectord keeps the trailing blanks or comment in the value)"
    return ""


class Reader:
    """Checks values one by one, reporting problems to ``report``."""

    def __init__(self, report: Report) -> None:
        self.r = report

    def number(self, line: int, key: str, digits: str) -> int | None:
        """ASCII ``digits`` as a number, or an error when there are too many of them."""
        number, why = read_number(digits)
        if number is None:
            self.r.error(line, key, why)
        return number

    def digits(self, line: int, key: str, value: str, *, zero: bool = False) -> int | None:
        m = DIGITS.search(value)
        number = self.number(line, key, m[0]) if m else None
        if m and number is None:
            return None
        if number is None or (not zero and number == 0):
            low = "0" if zero else "above 0"
            self.r.error(line, key, f"{value!r} is not valid: expected a whole number {low}")
            return None
        assert m is not None
        if value.strip(" \t\r") != m[0]:
            self.r.warn(
                line,
                key,
                f"ldirectord reads {value.strip()!r} as {number} (the first digits in the value); "
                f"lvscheck does the same: write {key}={number}",
            )
        return number

    def count(self, line: int, key: str, value: str) -> int | None:
        """A timeout, interval or count: :meth:`digits`, and checkcount's deprecation."""
        number = self.digits(line, key, value)
        if key == "checkcount" and number is not None:
            self.r.warn(
                line, key, "deprecated in ldirectord (it only counts ping attempts); see failurecount"
            )
        return number

    def yesno(self, line: int, key: str, value: str) -> bool | None:
        if value in ("yes", "no"):
            return value == "yes"
        self.r.error(line, key, f"{value!r} is not valid: {YESNO}{cr_hint(value)}")
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
        number = self.number(line, key, m[0])
        if number is not None and value.strip(" \t\r") != m[0]:
            self.r.warn(line, key, f"ldirectord reads {value.strip()!r} as {m[0]} and ignores the rest")
        return number

    def emailalertstatus(self, line: int, key: str, value: str) -> tuple[str, ...] | None:
        parts = _split_commas(value)
        ok = True
        for part in dict.fromkeys(parts):  # each bad word once
            if part not in _EMAIL_STATES:
                self.r.error(
                    line,
                    key,
                    f"{part!r} is not valid: expected a comma list of "
                    f"{', '.join(_EMAIL_STATES)}{cr_hint(part)}",
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
        m = _FALLBACK.search(value)
        if not m:
            self.r.error(line, key, "no server: expected HOST[:PORT] [gate|masq|ipip]")
            return None
        if value[: m.start()].strip():
            self.r.warn(
                line, key, f"ldirectord ignores {value[: m.start()].strip()!r} before {m[0].strip()!r}"
            )
        forwarding = m[3] or "gate"
        hostport = m[1]
        pm = _FALLBACK_PORT.search(hostport)
        port = pm[1] if pm else None
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


def _split_commas(value: str) -> list[str]:
    """``re.split(r"\\s*,\\s*", value)`` in linear time (the regex retries every blank of a run)."""
    parts = value.split(",")
    if len(parts) == 1:
        return parts
    last = len(parts) - 1
    return [
        part.lstrip(_BLANKS if i else "").rstrip(_BLANKS if i < last else "") for i, part in enumerate(parts)
    ]
