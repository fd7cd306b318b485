"""``ftp``: ldirectord's FTP negotiate check, under one deadline and with reply codes checked.

The dialogue (RFC 959): read the ``220`` banner, ``USER`` / ``PASS`` (anonymous
by default), and when ``request`` is set: ``TYPE I``, ``PASV`` (``EPSV`` for an
IPv6 real), open the data connection to the *real's* address and the port the
server named, ``RETR <request>``, read at most ``maxsize`` bytes, the ``226``,
and search ``receive`` in what came.  Then ``QUIT``.

Real servers answer a failed login only after 3-5 s (PAM's fail delay); the
reason says "login failed" whenever the deadline leaves that much time, and the
timeout reason says that the server was still deciding about the password.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from lvscheck.checks._db import PASSWORD_OPTIONS
from lvscheck.checks._lines import (
    MAX_LINE,
    Reply,
    line_password,
    parse_size,
    parse_word,
    quote_shown,
    read_coded_reply,
    size_text,
)
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_regex
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["FtpCheck"]

#: Password sent for an anonymous login when ``passwd`` is not set (ldirectord sends ldirectord@<host>).
ANONYMOUS_PASSWORD = "lvscheck@"

_PASV = re.compile(rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_EPSV = re.compile(rb"\(([!-~])\1\1(\d{1,5})\1\)")


class FtpCheck(Check):
    name = "ftp"
    summary = "FTP banner, login (anonymous by default), optional RETR of request searched for receive, QUIT"
    default_port = 21
    options = (
        Option("login", "user name for USER", "anonymous", parse_word),
        *PASSWORD_OPTIONS,
        Option("request", "file to fetch with RETR, sent as written (no file fetched when unset)"),
        Option(
            "receive", "regular expression searched in the fetched file (needs request=)", None, parse_regex
        ),
        Option("maxsize", "read at most this much of the file", "64k", parse_size),
    )

    def setup(self) -> None:
        opts = self.opts
        self.login: str = opts["login"]
        passwd = line_password(self.name, opts)
        self.keep_secret(passwd)
        if passwd is None:
            if self.login.lower() not in ("anonymous", "ftp"):
                raise OptionError(
                    f"check type 'ftp': login={self.login!r} needs passwd= (or passwdfile/passwdenv)"
                )
            passwd = ANONYMOUS_PASSWORD
        self.passwd = passwd
        request: str | None = opts["request"]
        if request is not None:
            request = parse_word(request) if request else None
        self.request = request
        self.receive: re.Pattern[bytes] | None = opts["receive"]
        if self.receive is not None and self.request is None:
            raise OptionError("check type 'ftp': receive= is searched in the file request= names; set both")
        self.maxsize: int = opts["maxsize"]

    def describe(self) -> str:
        what = f" RETR {self.request}" if self.request else ""
        return f"{self.name}{what} {self.spec.target.host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect(limit=MAX_LINE)
        command = _Session(reader, writer, probe)
        probe.phase = "waiting for the banner"
        banner = await read_coded_reply(reader, probe, "FTP")
        if banner.code != 220:
            raise CheckFailed(f"FTP banner is not 220: {banner.text}")

        reply = await command(f"USER {self.login}")
        if reply.code == 331:
            reply = await command(
                f"PASS {self.passwd}",
                "waiting for the reply to PASS (servers answer a wrong password after a few seconds)",
            )
            if reply.code not in (230, 202):
                raise CheckFailed(f"login failed: {reply.text}")
        elif reply.code != 230:
            raise CheckFailed(f"login failed: {reply.text}")
        reasons = [f"logged in as {self.login}"]

        details: dict[str, Any] = {}
        if self.request is not None:
            data = await self._retrieve(probe, command)
            details["bytes"] = len(data)
            if self.receive is not None:
                shown_re = self.receive.pattern.decode("utf-8", "replace")
                if self.receive.search(data) is None:
                    where = (
                        f"the first {size_text(self.maxsize)} of {self.request}"
                        if len(data) >= self.maxsize
                        else f"{self.request} ({len(data)} bytes)"
                    )
                    return Outcome.down(f"{reasons[0]}, but {shown_re!r} not found in {where}", **details)
                reasons.append(f"{shown_re!r} found in {self.request}")
            else:
                reasons.append(f"fetched {self.request} ({len(data)} bytes)")

        reply = await command("QUIT")
        if reply.code != 221:
            raise CheckFailed(f"unexpected reply to QUIT: {reply.text}")
        return Outcome.up(", ".join(reasons), **details)

    async def _retrieve(self, probe: Probe, command: _Session) -> bytes:
        reply = await command("TYPE I")
        if reply.code != 200:
            raise CheckFailed(f"unexpected reply to TYPE I: {reply.text}")
        ipv6 = ":" in probe.host
        reply = await command("EPSV" if ipv6 else "PASV")
        port = _data_port(reply, ipv6)
        # Connect to the real's own address, never to the one the server names:
        # behind NAT it is wrong, and following it would let a server aim us elsewhere.
        data_reader, _ = await probe.connect(probe.host, port)
        reply = await command(f"RETR {self.request}")
        if reply.code not in (125, 150):
            raise CheckFailed(f"RETR {self.request} failed: {reply.text}")
        probe.phase = f"receiving {self.request}"
        chunks: list[bytes] = []
        size = 0
        while size < self.maxsize:
            chunk = await data_reader.read(min(65536, self.maxsize - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        if size >= self.maxsize:
            return data  # enough to judge; the engine aborts both connections, no 226 awaited
        probe.phase = "waiting for the end of the transfer"
        reply = await read_coded_reply(command.reader, probe, "FTP")
        if reply.code not in (226, 250):
            raise CheckFailed(f"transfer of {self.request} failed: {reply.text}")
        return data


class _Session:
    """Send one command line and read its reply, naming the reply awaited in ``probe.phase``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, probe: Probe) -> None:
        self.reader = reader
        self.writer = writer
        self.probe = probe

    async def __call__(self, line: str, phase: str | None = None) -> Reply:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        self.probe.phase = phase or f"waiting for the reply to {line.split(' ', 1)[0]}"
        return await read_coded_reply(self.reader, self.probe, "FTP")


def _data_port(reply: Reply, ipv6: bool) -> int:
    line = reply.lines[-1]
    if ipv6:
        m = _EPSV.search(line)
        if reply.code != 229 or m is None:
            raise CheckFailed(f"unexpected reply to EPSV: {quote_shown(line)}")
        port = int(m[2])
    else:
        m = _PASV.search(line[4:])
        if reply.code != 227 or m is None:
            raise CheckFailed(f"unexpected reply to PASV: {quote_shown(line)}")
        high, low = int(m[5]), int(m[6])
        if high > 255 or low > 255:
            raise CheckFailed(f"PASV reply names no valid port: {quote_shown(line)}")
        port = high * 256 + low
    if not 1 <= port <= 65535:
        raise CheckFailed(f"passive reply names no valid port: {quote_shown(line)}")
    return port


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(FtpCheck)
