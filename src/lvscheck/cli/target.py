"""Parsing ``HOST[:PORT]`` as written on a command line."""

from __future__ import annotations

import re
import socket

from lvscheck.errors import TargetError

__all__ = ["parse_hostport"]

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")


def parse_hostport(text: str) -> tuple[str, int | None]:
    """``10.0.0.2``, ``10.0.0.2:80``, ``web1:8080``, ``[2001:db8::2]:80`` or ``2001:db8::2``."""
    accepted = "accepted: HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address"
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise TargetError(f"target {_shown(text)}: missing ']' after the IPv6 address; {accepted}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise TargetError(f"target {_shown(text)}: expected ':PORT' after ']'; {accepted}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port: int | None = None
    if port_text is not None:
        port = _port_number(port_text)
        if port is None:
            raise TargetError(f"target {_shown(text)}: port {_shown(port_text)} is not a number 1..65535")
    try:
        host = _ip_address(host)
    except ValueError:
        if ":" in host or not _HOSTNAME.match(host) or re.fullmatch(r"[\d.]+", host):
            raise TargetError(
                f"target {_shown(text)}: {_shown(host)} is not an IP address or host name; {accepted}"
            ) from None
    return host, port


def _shown(text: str) -> str:
    """``text`` quoted for a message; a very long one shortened (an operator's typo can be huge)."""
    if len(text) <= 60:
        return repr(text)
    return f"{text[:40]!r}... ({len(text)} characters)"


def _port_number(text: str) -> int | None:
    """ASCII digits 1..65535 (a long string is refused before ``int()``, which stops at 4,300 digits)."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 5:
        return None
    port = int(text.lstrip("0") or "0")
    return port if 1 <= port <= 65535 else None


def _ip_address(text: str) -> str:
    """``text`` as a normalised IP address (``2001:DB8::0:1`` -> ``2001:db8::1``), or ValueError.

    ``socket.inet_pton`` rather than the ``ipaddress`` module: same answers for
    what a target can be, without importing ``ipaddress`` on every start.
    """
    address, percent, zone = text.partition("%")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if percent and (family != socket.AF_INET6 or not zone):
        raise ValueError(text)
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, address)) + percent + zone
    except OSError:
        raise ValueError(text) from None
