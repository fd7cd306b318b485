"""``radius``: one RADIUS Access-Request (RFC 2865) over UDP, the reply authenticated.

The dialogue: a 20-byte header (code 1, a random identifier, the length, a
random 16-byte Request Authenticator) and the attributes Message-Authenticator
(80, HMAC-MD5 over the packet, RFC 3579), User-Name (1) = ``login``,
User-Password (2) = ``passwd`` hidden with the shared ``secret`` (RFC 2865
5.2) and NAS-Identifier (32) = ``lvscheck``.  The same datagram is resent every
second until a reply arrives or the deadline ends.

A reply counts only if it is well formed, carries our identifier and its
Response Authenticator (and Message-Authenticator, when present) verifies with
the shared secret: a server with another secret, or a garbled reply, is down.
Access-Accept is up.  Access-Reject and Access-Challenge prove the server alive
and answering with our secret, so they are up too, with "rejected" in the reason
(``expect=accept`` demands Access-Accept; that is what ldirectord's
``Authen::Radius::check_pwd`` actually requires).

The packet code is a few lines of ``hashlib``/``hmac``; pyrad would add a
dictionary file and its own socket handling for no gain here.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Mapping
from typing import Any

from lvscheck.checks._db import PASSWORD_OPTIONS, read_password
from lvscheck.checks._udp import exchange
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["RadiusCheck", "build_access_request", "hide_password", "parse_reply"]

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 1, 2, 3, 11
USER_NAME, USER_PASSWORD, REPLY_MESSAGE, NAS_IDENTIFIER, MESSAGE_AUTHENTICATOR = 1, 2, 18, 32, 80
CODES = {ACCESS_ACCEPT: "Access-Accept", ACCESS_REJECT: "Access-Reject", ACCESS_CHALLENGE: "Access-Challenge"}
MAX_PACKET = 4096  # RFC 2865 3: the largest RADIUS packet


def _parse_expect(text: str) -> str:
    value = text.strip().lower()
    if value not in ("any", "accept"):
        raise ValueError("expected any (Accept, Reject or Challenge) or accept (Access-Accept only)")
    return value


def _attr(kind: int, value: bytes) -> bytes:
    if not 1 <= len(value) <= 253:
        raise ValueError(f"RADIUS attribute {kind} must be 1..253 bytes, not {len(value)}")
    return struct.pack("!BB", kind, len(value) + 2) + value


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding, RFC 2865 5.2: 16-byte blocks XORed with chained MD5s."""
    padded = password + b"\0" * (-len(password) % 16 or (16 if not password else 0))
    out = b""
    prev = authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + prev, usedforsecurity=False).digest()
        block = bytes(a ^ b for a, b in zip(padded[i : i + 16], key, strict=True))
        out += block
        prev = block
    return out


def build_access_request(
    login: bytes, password: bytes, secret: bytes, identifier: int, authenticator: bytes
) -> bytes:
    """The Access-Request datagram, Message-Authenticator first (the BlastRADIUS advice)."""
    attrs = (
        _attr(MESSAGE_AUTHENTICATOR, b"\0" * 16)
        + _attr(USER_NAME, login)
        + _attr(USER_PASSWORD, hide_password(password, secret, authenticator))
        + _attr(NAS_IDENTIFIER, b"lvscheck")
    )
    header = struct.pack("!BBH", ACCESS_REQUEST, identifier, 20 + len(attrs)) + authenticator
    packet = header + attrs
    mac = hmac.new(secret, packet, hashlib.md5).digest()
    return header + attrs[:2] + mac + attrs[18:]


def parse_reply(
    data: bytes, identifier: int, request_authenticator: bytes, secret: bytes
) -> tuple[int, dict[int, list[bytes]]]:
    """Check a reply datagram; return its code and attributes or raise CheckFailed saying why."""
    if len(data) < 20:
        raise CheckFailed(f"reply too short for RADIUS ({len(data)} bytes, header is 20)")
    code, ident, length = struct.unpack("!BBH", data[:4])
    if not 20 <= length <= min(len(data), MAX_PACKET):
        raise CheckFailed(f"reply length field {length} does not fit the {len(data)}-byte datagram")
    if code not in CODES:
        raise CheckFailed(f"reply code {code} is not an answer to an Access-Request")
    if ident != identifier:
        raise CheckFailed(f"reply identifier {ident} does not match the request's {identifier}")
    packet = data[:length]  # octets past the length are padding (RFC 2865 3)
    attrs: dict[int, list[bytes]] = {}
    at = 20
    while at < length:
        if at + 2 > length or packet[at + 1] < 2 or at + packet[at + 1] > length:
            raise CheckFailed(f"malformed attribute at offset {at} of the {CODES[code]}")
        attrs.setdefault(packet[at], []).append(packet[at + 2 : at + packet[at + 1]])
        at += packet[at + 1]
    expected = hashlib.md5(
        packet[:4] + request_authenticator + packet[20:] + secret, usedforsecurity=False
    ).digest()
    if not hmac.compare_digest(expected, packet[4:20]):
        raise CheckFailed(
            f"{CODES[code]} fails authentication (Response Authenticator): the server has another secret"
        )
    if MESSAGE_AUTHENTICATOR in attrs:
        got = attrs[MESSAGE_AUTHENTICATOR][0]
        offset = _offset_of(packet, MESSAGE_AUTHENTICATOR)
        zeroed = packet[:4] + request_authenticator + packet[20 : offset + 2] + b"\0" * 16
        zeroed += packet[offset + 18 :]
        if len(got) != 16 or not hmac.compare_digest(hmac.new(secret, zeroed, hashlib.md5).digest(), got):
            raise CheckFailed(f"{CODES[code]} has a Message-Authenticator that does not verify")
    return code, attrs


def _offset_of(packet: bytes, kind: int) -> int:
    at = 20
    while packet[at] != kind:
        at += packet[at + 1]
    return at


def _read_secret(opts: Mapping[str, Any]) -> str | None:
    """The shared secret from ``secret``, ``secretfile`` or ``secretenv`` (at most one)."""
    given = [name for name in ("secret", "secretfile", "secretenv") if opts.get(name) is not None]
    if len(given) > 1:
        raise OptionError(f"check type 'radius': give only one of {', '.join(given)}")
    if not given:
        return None
    if given[0] == "secret":
        return str(opts["secret"])
    if given[0] == "secretfile":
        path = str(opts["secretfile"])
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(65536)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise OptionError(f"check type 'radius': secretfile={path!r} cannot be read: {why}") from None
        return text.splitlines()[0] if text else ""
    value = os.environ.get(str(opts["secretenv"]))
    if value is None:
        raise OptionError(f"check type 'radius': secretenv={opts['secretenv']}: that variable is not set")
    return value


class RadiusCheck(Check):
    name = "radius"
    summary = "RADIUS Access-Request; an authenticated Accept (or Reject: alive) decides"
    default_port = 1812
    timeout_option = "checktimeout"  # as ldirectord: alarm(checktimeout) around the whole exchange
    options = (
        Option("login", "User-Name to send", "lvscheck"),
        *PASSWORD_OPTIONS,
        Option("secret", "shared secret of this client on the RADIUS server", None, secret=True),
        Option("secretfile", "read the shared secret from this file (first line)"),
        Option("secretenv", "read the shared secret from this environment variable"),
        Option(
            "expect",
            "any: Accept, Reject or Challenge mean alive; accept: only Access-Accept",
            "any",
            _parse_expect,
        ),
    )

    def setup(self) -> None:
        secret = _read_secret(self.opts)
        if not secret:
            raise OptionError(
                "check type 'radius' needs this client's shared secret: secret=, secretfile= or secretenv="
            )
        self.secret = secret.encode()
        self.login = str(self.opts["login"]).encode()
        password = read_password(self.name, self.opts)
        self.keep_secret(secret, password)
        self.password = (password or "").encode()
        if not 1 <= len(self.login) <= 253:
            raise OptionError("login= must be 1..253 bytes for RADIUS")
        if len(self.password) > 128:
            raise OptionError("passwd= must be at most 128 bytes for RADIUS (RFC 2865 5.2)")
        self.expect: str = self.opts["expect"]

    def describe(self) -> str:
        return f"radius {self.login.decode(errors='replace')} {self.spec.target.host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        identifier = os.urandom(1)[0]
        authenticator = os.urandom(16)
        packet = build_access_request(self.login, self.password, self.secret, identifier, authenticator)
        endpoint = await probe.datagram()
        probe.phase = "waiting for the RADIUS reply (none: server down, or it drops us: wrong secret?)"
        data = await exchange(probe, endpoint, packet)
        code, attrs = parse_reply(data, identifier, authenticator, self.secret)
        user = self.login.decode(errors="replace")
        message = b" ".join(attrs.get(REPLY_MESSAGE, [])).decode("utf-8", "replace").strip()
        said = f" ({message[:100]!r})" if message else ""
        if code == ACCESS_ACCEPT:
            return Outcome.up(f"Access-Accept for {user!r}{said}", code=CODES[code])
        verdict = "rejected" if code == ACCESS_REJECT else "challenged"
        if self.expect == "accept":
            return Outcome.down(
                f"{CODES[code]} for {user!r}: {verdict}{said}; expect=accept", code=CODES[code]
            )
        return Outcome.up(
            f"{CODES[code]} for {user!r}: {verdict}, but the server answers with our secret{said}",
            code=CODES[code],
        )


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(RadiusCheck)
