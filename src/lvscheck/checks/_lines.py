"""Bounded line reading for the text protocols (FTP, IMAP, POP3, NNTP, simpletcp).

Every read is bounded: a line longer than the stream's limit, a reply with too
many continuation lines or an endless stream ends the check with a reason, it
never grows memory.  Replies are shown in reasons shortened and printable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lvscheck.checks._db import read_password
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.plugin.check import parse_size, size_text
from lvscheck.plugin.probe import Probe

__all__ = [
    "MAX_LINE",
    "MAX_LINES",
    "Reply",
    "line_login",
    "line_password",
    "parse_size",
    "parse_word",
    "quote_shown",
    "read_coded_reply",
    "read_line",
    "shown",
    "size_text",
]

#: Longest reply line accepted (RFC 5321 allows 512, RFC 3501 has no limit but
#: real greetings with capabilities stay below 1 KiB).  Also the StreamReader limit.
MAX_LINE = 8192
#: Most lines of one multi-line reply (or untagged IMAP responses before a tagged one).
MAX_LINES = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(data: bytes, limit: int = 120) -> str:
    """``data`` as printable text for a reason: decoded leniently, controls escaped, shortened."""
    text = data.rstrip(b"\r\n").decode("utf-8", "replace")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote_shown(data: bytes, limit: int = 120) -> str:
    """``shown(data)`` in single quotes (controls already escaped, so no repr() doubling)."""
    return f"'{shown(data, limit)}'"


def line_password(check_name: str, opts: Mapping[str, Any]) -> str | None:
    """The password from ``passwd``/``passwdfile``/``passwdenv``, checked to fit on one protocol line."""
    password = read_password(check_name, opts)
    if password is not None and any(c in password for c in "\r\n\0"):
        raise OptionError(
            f"check type {check_name!r}: the password holds a line break or NUL, which cannot be sent"
        )
    return password


def line_login(check_name: str, opts: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``login`` and its password (:func:`line_password`): both or neither (smtp, imap, pop, nntp)."""
    login: str | None = opts["login"]
    password = line_password(check_name, opts)
    if (login is None) != (password is None):
        raise OptionError(
            f"check type {check_name!r}: login= needs a password (passwd, passwdfile or passwdenv), "
            "and a password needs login="
        )
    return login, password


def parse_word(text: str) -> str:
    """A value sent on a protocol line as written (a user name, a file name): no line breaks or NUL."""
    if not text or any(c in text for c in "\r\n\0"):
        raise ValueError("must not be empty or contain line breaks")
    return text


async def read_line(reader: asyncio.StreamReader, probe: Probe) -> bytes:
    """One line (without CR LF); the reader's limit bounds its length."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise CheckFailed(f"reply line longer than {MAX_LINE} bytes {probe.phase}") from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise CheckFailed(
                f"connection closed by the server in the middle of a line {probe.phase}: "
                f"{quote_shown(exc.partial)}"
            ) from None
        raise CheckFailed(f"connection closed by the server {probe.phase}") from None
    return line.rstrip(b"\r\n")


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply of the ``NNN text`` family (FTP, NNTP): its code and its lines."""

    code: int
    lines: tuple[bytes, ...]

    @property
    def text(self) -> str:
        """The last line, shown (``530 Login incorrect.``)."""
        return shown(self.lines[-1])


_CODE = re.compile(rb"([1-5][0-9][0-9])([ -]|$)")


async def read_coded_reply(reader: asyncio.StreamReader, probe: Probe, protocol: str) -> Reply:
    """A possibly multi-line ``NNN-...`` / ``NNN ...`` reply (RFC 959 section 4.2)."""
    first = await read_line(reader, probe)
    m = _CODE.match(first)
    if m is None:
        raise CheckFailed(f"not an {protocol} reply {probe.phase}: {quote_shown(first)}")
    code = m[1]
    lines = [first]
    if m[2] == b"-":
        end = code + b" "
        while True:
            if len(lines) >= MAX_LINES:
                raise CheckFailed(f"{protocol} reply longer than {MAX_LINES} lines {probe.phase}")
            line = await read_line(reader, probe)
            lines.append(line)
            if line.startswith(end) or line == code:
                break
    return Reply(int(code), tuple(lines))
