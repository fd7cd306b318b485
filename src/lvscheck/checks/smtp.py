"""``smtp`` and ``submission``: banner, EHLO, optional verified STARTTLS and AUTH, QUIT.

The dialogue (RFC 5321, RFC 3207): read the ``220`` banner, ``EHLO <helo>``
(``HELO`` when the server rejects EHLO, as ldirectord's Net::SMTP does) answered
``250``; with ``starttls=yes`` the server must offer STARTTLS, ``STARTTLS`` ->
``220``, a TLS handshake that verifies the certificate and its name, and a new
``EHLO``; with ``login``/``passwd``, ``AUTH`` (the strongest mechanism both sides
know, from CRAM-MD5, PLAIN, LOGIN) -> ``235``.  Then ``QUIT`` -> ``221``.

The client is aiosmtplib, told *not* to upgrade on its own (its default upgrades
whenever EHLO offers STARTTLS, which would turn a plain check into a TLS one).
Its per-operation timeouts are off (``timeout=None``): the engine's one deadline
decides, and its reason names the step (``waiting for the reply to EHLO``).  With
a timeout, aiosmtplib awaits every reply through ``asyncio.wait_for``, which on
Python 3.11 swallows a cancel that races with the reply: a check cancelled at
shutdown then ran on, and the daemon ignored SIGTERM.  Replies are bounded by
aiosmtplib (8 KiB a line, 32 KiB a reply).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING

from lvscheck.checks._db import PASSWORD_OPTIONS, short
from lvscheck.checks._lines import line_login, parse_word
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_bool
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

if TYPE_CHECKING:
    import aiosmtplib

__all__ = ["SmtpCheck", "SubmissionCheck"]


def _parse_helo(text: str) -> str:
    text = text.strip()
    if not text or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("expected a host name without spaces, such as lvscheck.example.org")
    return text


class SmtpCheck(Check):
    name = "smtp"
    requires = ("aiosmtplib",)
    summary = "SMTP banner 220, EHLO 250, optional verified STARTTLS and AUTH, QUIT 221"
    default_port = 25
    options = (
        Option("helo", "name sent with EHLO/HELO", "localhost", _parse_helo),
        Option("starttls", "require STARTTLS and a verified certificate (yes/no)", "no", parse_bool),
        Option("login", "user name for AUTH (no AUTH when unset; needs passwd)", None, parse_word),
        *PASSWORD_OPTIONS,
        Option("servername", "name to verify in the server certificate and send as SNI (default: the host)"),
        *TLS_OPTIONS,
    )

    def setup(self) -> None:
        opts = self.opts
        self.helo: str = opts["helo"]
        self.starttls: bool = opts["starttls"]
        self.login, self.passwd = line_login(self.name, opts)
        self.keep_secret(self.passwd)
        self.server_name: str = opts["servername"] or self.spec.target.host
        self.tls_context: ssl.SSLContext | None = None
        if self.starttls:
            self.tls_context = context_from_options(opts)

    def describe(self) -> str:
        tls = " STARTTLS" if self.starttls else ""
        return f"{self.name}{tls} {self.spec.target.host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        import aiosmtplib

        sock = await _connect(probe)
        # No aiosmtplib timeouts: with one, every reply is awaited through asyncio.wait_for,
        # which (Python 3.11) swallows a cancel racing with the reply.  The engine's single
        # deadline (and its phase-naming reason) is what fires.
        client = aiosmtplib.SMTP(
            sock=sock,
            local_hostname=self.helo,
            timeout=None,
            start_tls=False,
            use_tls=False,
            tls_context=self.tls_context,
        )
        probe.track(client)
        try:
            return await self._dialogue(client, probe)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 0:  # aiosmtplib's own verdict: malformed line, reply too long
                raise CheckFailed(
                    f"not a valid SMTP reply {probe.phase}: {short(exc.message, 120)}"
                ) from None
            raise CheckFailed(f"{_what(probe)}: {exc.code} {short(exc.message, 120)}") from None
        except aiosmtplib.SMTPServerDisconnected:
            raise CheckFailed(f"connection closed by the server {probe.phase}") from None
        except aiosmtplib.SMTPConnectError as exc:
            if isinstance(exc.__cause__, aiosmtplib.SMTPServerDisconnected):
                raise CheckFailed(f"connection closed by the server {probe.phase}") from None
            if isinstance(exc.__cause__, OSError):
                raise exc.__cause__ from None  # the engine explains reset, unreachable, ...
            raise CheckFailed(f"{_what(probe)}: {exc}") from None
        except aiosmtplib.SMTPException as exc:
            raise CheckFailed(f"{_what(probe)}: {exc}") from None

    async def _dialogue(self, client: aiosmtplib.SMTP, probe: Probe) -> Outcome:
        import aiosmtplib

        probe.phase = "waiting for the banner"
        await client.connect()
        probe.phase = "waiting for the reply to EHLO"
        await _ehlo(client, probe)
        steps = ["banner 220", "EHLO 250" if client.supports_esmtp else "HELO 250"]
        if self.starttls:
            if not client.supports_extension("starttls"):
                raise CheckFailed("STARTTLS required (starttls=yes) but the server does not offer it")
            probe.phase = "waiting for the reply to STARTTLS or in its TLS handshake"
            await client.starttls(server_hostname=self.server_name, tls_context=self.tls_context)
            probe.phase = "waiting for the reply to EHLO after STARTTLS"
            await _ehlo(client, probe)
            ssl_object = client.get_transport_info("ssl_object")
            steps.append(f"STARTTLS ({ssl_object.version() if ssl_object else 'TLS'})")
        if self.login is not None and self.passwd is not None:
            if not client.supports_extension("auth"):
                raise CheckFailed("login= is set but the server offers no AUTH here")
            probe.phase = "waiting for the reply to AUTH"
            try:
                await client.login(self.login, self.passwd)
            except aiosmtplib.SMTPAuthenticationError as exc:
                raise CheckFailed(f"login failed: {exc.code} {short(exc.message, 120)}") from None
            steps.append(f"AUTH as {self.login}")
        probe.phase = "waiting for the reply to QUIT"
        await client.quit()
        return Outcome.up(", ".join(steps))


async def _connect(probe: Probe) -> socket.socket:
    """A connected TCP socket to the real, under ``connecttimeout``; the engine closes it."""
    loop = asyncio.get_running_loop()
    where = f"[{probe.host}]:{probe.port}" if ":" in probe.host else f"{probe.host}:{probe.port}"
    probe.phase = f"connecting to {where}"
    infos = await loop.getaddrinfo(probe.host, probe.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    probe.track(sock)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(min(probe.connect_timeout, probe.remaining())):
            await loop.sock_connect(sock, address)
    except TimeoutError:
        if probe.remaining() <= 0:
            raise
        raise CheckFailed(f"connect to {where} timed out after {probe.connect_timeout:g} s") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def _ehlo(client: aiosmtplib.SMTP, probe: Probe) -> None:
    import aiosmtplib

    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if exc.code < 500:
            raise
        probe.phase = "waiting for the reply to HELO"
        await client.helo()


def _what(probe: Probe) -> str:
    """``unexpected reply to EHLO`` from ``waiting for the reply to EHLO``."""
    phase = probe.phase
    if phase.startswith("waiting for the reply to "):
        return "unexpected reply to " + phase.removeprefix("waiting for the reply to ").split(" or ")[0]
    if phase == "waiting for the banner":
        return "SMTP banner is not 220"
    return f"SMTP error {phase}"


class SubmissionCheck(SmtpCheck):
    name = "submission"
    summary = "mail submission (port 587): as smtp, banner, EHLO, optional verified STARTTLS and AUTH"
    default_port = 587


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(SmtpCheck)
    register.add(SubmissionCheck)
