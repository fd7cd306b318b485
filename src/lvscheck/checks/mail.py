"""``imap``, ``imaps``, ``pop`` and ``pops``: greeting, optional login, logout.

IMAP (RFC 9051/3501): read the ``* OK`` greeting (``* PREAUTH`` counts as logged
in, ``* BYE`` is a refusal); with ``starttls=yes`` ``a1 STARTTLS`` -> ``a1 OK`` and
a verified TLS handshake; with ``login``/``passwd`` ``a2 LOGIN "user" "pass"`` ->
``a2 OK``; then ``a3 LOGOUT`` -> ``* BYE`` and ``a3 OK``.

POP3 (RFC 1939/2595): read the ``+OK`` greeting; with ``starttls=yes`` ``STLS`` ->
``+OK`` and the handshake; with ``login``/``passwd`` ``USER`` / ``PASS`` -> ``+OK``;
then ``QUIT`` -> ``+OK``.

``imaps`` (993) and ``pops`` (995) speak TLS from the first byte, verified by
default against the system store (or ``cafile``), with the server name
``servername`` or the real's address.  Every line is bounded (8 KiB), and so
is the number of untagged lines before a tagged reply.
"""

from __future__ import annotations

import asyncio
import re
import ssl

from lvscheck.checks._db import PASSWORD_OPTIONS
from lvscheck.checks._lines import MAX_LINE, MAX_LINES, line_login, parse_word, quote_shown, read_line, shown
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_bool
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["ImapCheck", "ImapsCheck", "PopCheck", "PopsCheck"]


class _MailCheck(Check):
    """What IMAP and POP3 share: options, TLS set-up, the connection."""

    implicit_tls = False
    protocol = "?"
    options = (
        Option("login", "user name to log in with (no login when unset; needs passwd)", None, parse_word),
        *PASSWORD_OPTIONS,
        Option(
            "starttls", "upgrade with STARTTLS/STLS and verify the certificate (yes/no)", "no", parse_bool
        ),
        Option("servername", "name to verify in the server certificate and send as SNI (default: the host)"),
        *TLS_OPTIONS,
    )

    def setup(self) -> None:
        opts = self.opts
        self.login, self.passwd = line_login(self.name, opts)
        self.keep_secret(self.passwd)
        self.starttls: bool = opts["starttls"]
        if self.starttls and self.implicit_tls:
            raise OptionError(
                f"check type {self.name!r} speaks TLS from the start; starttls= is for "
                f"{self.name.rstrip('s')} only"
            )
        self.server_name: str = opts["servername"] or self.spec.target.host
        self.tls_context: ssl.SSLContext | None = None
        if self.starttls or self.implicit_tls:
            self.tls_context = context_from_options(opts)

    def describe(self) -> str:
        tls = " STARTTLS" if self.starttls else ""
        return f"{self.name}{tls} {self.spec.target.host}:{self.port}"

    async def _connect(self, probe: Probe) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await probe.connect(
            tls=self.tls_context if self.implicit_tls else None,
            server_hostname=self.server_name,
            limit=MAX_LINE,
        )

    async def _start_tls(self, writer: asyncio.StreamWriter, probe: Probe) -> str:
        assert self.tls_context is not None
        probe.phase = "in the TLS handshake"
        await writer.start_tls(self.tls_context, server_hostname=self.server_name)
        ssl_object = writer.get_extra_info("ssl_object")
        return str(ssl_object.version()) if ssl_object is not None else "TLS"


# -- IMAP ------------------------------------------------------------------------------------------

_IMAP_GREETING = re.compile(rb"\* (OK|PREAUTH|BYE)\b ?(.*)", re.IGNORECASE)
_IMAP_LITERAL = re.compile(rb"\{(\d{1,9})\+?\}$")


def _imap_quote(text: str) -> str:
    if not text.isascii() or any(ord(c) < 32 for c in text):
        raise ValueError("IMAP LOGIN takes printable ASCII only")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapCheck(_MailCheck):
    name = "imap"
    summary = "IMAP greeting * OK, optional STARTTLS and LOGIN, LOGOUT"
    default_port = 143
    protocol = "IMAP"

    def setup(self) -> None:
        super().setup()
        if self.login is not None and self.passwd is not None:
            try:
                self.login_args = f"{_imap_quote(self.login)} {_imap_quote(self.passwd)}"
            except ValueError as exc:
                raise OptionError(f"check type {self.name!r}: login/passwd: {exc}") from None

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await self._connect(probe)
        probe.phase = "waiting for the greeting"
        greeting = await read_line(reader, probe)
        m = _IMAP_GREETING.match(greeting)
        if m is None:
            raise CheckFailed(f"not an IMAP greeting: {quote_shown(greeting)}")
        kind = m[1].upper()
        if kind == b"BYE":
            raise CheckFailed(f"IMAP server refused the connection: {shown(greeting)}")
        steps = ["greeting OK" if kind == b"OK" else "greeting PREAUTH"]
        if self.starttls:
            status, line = await self._command(reader, writer, probe, "a1", "STARTTLS")
            if status != b"OK":
                raise CheckFailed(f"STARTTLS refused: {shown(line)}")
            steps.append(f"STARTTLS ({await self._start_tls(writer, probe)})")
        if self.login is not None and kind == b"OK":
            status, line = await self._command(
                reader, writer, probe, "a2", f"LOGIN {self.login_args}", "LOGIN"
            )
            if status != b"OK":
                raise CheckFailed(f"login failed: {shown(line)}")
            steps.append(f"logged in as {self.login}")
        status, line = await self._command(reader, writer, probe, "a3", "LOGOUT")
        if status != b"OK":
            raise CheckFailed(f"unexpected reply to LOGOUT: {shown(line)}")
        return Outcome.up(", ".join(steps))

    async def _command(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        probe: Probe,
        tag: str,
        command: str,
        verb: str | None = None,
    ) -> tuple[bytes, bytes]:
        """Send ``tag command``; skip untagged lines (bounded); return (OK|NO|BAD, reply after the tag)."""
        writer.write(f"{tag} {command}\r\n".encode())
        verb = verb or command
        probe.phase = f"waiting for the reply to {verb}"
        prefix = tag.encode() + b" "
        for _ in range(MAX_LINES):
            line = await read_line(reader, probe)
            if line.startswith(prefix):
                status = line[len(prefix) :].split(b" ", 1)[0].upper()
                if status not in (b"OK", b"NO", b"BAD"):
                    raise CheckFailed(f"not an IMAP reply to {verb}: {quote_shown(line)}")
                return status, line[len(prefix) :]  # without the tag: "NO [AUTHENTICATIONFAILED] ..."
            if not line.startswith(b"* "):
                raise CheckFailed(f"not an IMAP reply to {verb}: {quote_shown(line)}")
            literal = _IMAP_LITERAL.search(line)
            if literal is not None:  # an untagged response carrying a literal: skip its bytes
                size = int(literal[1])
                if size > 64 * 1024:
                    raise CheckFailed(f"IMAP literal of {size} bytes in the reply to {verb}: too large")
                await reader.readexactly(size)
        raise CheckFailed(f"more than {MAX_LINES} untagged lines {probe.phase}")


class ImapsCheck(ImapCheck):
    name = "imaps"
    summary = "IMAP over TLS (verified): greeting, optional LOGIN, LOGOUT"
    default_port = 993
    implicit_tls = True


# -- POP3 ------------------------------------------------------------------------------------------


class PopCheck(_MailCheck):
    name = "pop"
    summary = "POP3 greeting +OK, optional STLS and USER/PASS, QUIT"
    default_port = 110
    protocol = "POP3"

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await self._connect(probe)
        probe.phase = "waiting for the greeting"
        greeting = await read_line(reader, probe)
        if not greeting.startswith(b"+OK"):
            if greeting.startswith(b"-ERR"):
                raise CheckFailed(f"POP3 server refused the connection: {shown(greeting)}")
            raise CheckFailed(f"not a POP3 greeting: {quote_shown(greeting)}")
        steps = ["greeting +OK"]
        if self.starttls:
            ok, line = await self._command(reader, writer, probe, "STLS")
            if not ok:
                raise CheckFailed(f"STLS refused: {shown(line)}")
            steps.append(f"STLS ({await self._start_tls(writer, probe)})")
        if self.login is not None:
            ok, line = await self._command(reader, writer, probe, f"USER {self.login}", "USER")
            if not ok:
                raise CheckFailed(f"login failed: {shown(line)}")
            ok, line = await self._command(reader, writer, probe, f"PASS {self.passwd}", "PASS")
            if not ok:
                raise CheckFailed(f"login failed: {shown(line)}")
            steps.append(f"logged in as {self.login}")
        ok, line = await self._command(reader, writer, probe, "QUIT")
        if not ok:
            raise CheckFailed(f"unexpected reply to QUIT: {shown(line)}")
        return Outcome.up(", ".join(steps))

    async def _command(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        probe: Probe,
        command: str,
        verb: str | None = None,
    ) -> tuple[bool, bytes]:
        """Send ``command``; return (``+OK``?, the status line)."""
        writer.write(command.encode() + b"\r\n")
        verb = verb or command
        probe.phase = f"waiting for the reply to {verb}"
        line = await read_line(reader, probe)
        if line.startswith(b"+OK"):
            return True, line
        if line.startswith(b"-ERR"):
            return False, line
        raise CheckFailed(f"not a POP3 reply to {verb}: {quote_shown(line)}")


class PopsCheck(PopCheck):
    name = "pops"
    summary = "POP3 over TLS (verified): greeting, optional USER/PASS, QUIT"
    default_port = 995
    implicit_tls = True


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(ImapCheck)
    register.add(ImapsCheck)
    register.add(PopCheck)
    register.add(PopsCheck)
