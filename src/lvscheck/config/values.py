"""Addresses, ports, service names and numbers as ldirectord reads them, without any lookup.

ldirectord resolves host names with getaddrinfo and port names through
/etc/services when it starts.  lvscheck never touches the network to read a
config: literal IP addresses and ``localhost`` only, and port names from the
built-in table below (the common entries of Debian's /etc/services, with the
protocols they are listed for).

Numbers are bounded: a run of more than :data:`MAX_DIGITS` digits (leading zeros not
counted) is an error, so that no value can reach Python's limit on converting long
strings to integers (4,300 digits) or make a timeout or weight meaningless.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["MAX_DIGITS", "PORT_NAMES", "read_number", "resolve_host", "resolve_port"]

_T = ("tcp",)
_U = ("udp",)
_TU = ("tcp", "udp")

#: port name -> (port, protocols it is defined for); Debian netbase's /etc/services.
PORT_NAMES: Mapping[str, tuple[int, tuple[str, ...]]] = MappingProxyType(
    {
        "ftp": (21, _T),
        "ssh": (22, _T),
        "telnet": (23, _T),
        "smtp": (25, _T),
        "mail": (25, _T),
        "domain": (53, _TU),
        "nameserver": (53, _TU),
        "tftp": (69, _U),
        "http": (80, _T),
        "www": (80, _T),
        "kerberos": (88, _TU),
        "pop3": (110, _T),
        "pop-3": (110, _T),
        "nntp": (119, _T),
        "ntp": (123, _U),
        "imap2": (143, _T),
        "imap": (143, _T),
        "snmp": (161, _TU),
        "bgp": (179, _T),
        "ldap": (389, _TU),
        "https": (443, _TU),
        "microsoft-ds": (445, _T),
        "isakmp": (500, _U),
        "syslog": (514, _U),
        "submission": (587, _T),
        "ldaps": (636, _TU),
        "rsync": (873, _T),
        "ftps": (990, _T),
        "imaps": (993, _T),
        "pop3s": (995, _T),
        "openvpn": (1194, _TU),
        "ms-sql-s": (1433, _T),
        "radius": (1812, _TU),
        "nfs": (2049, _TU),
        "mysql": (3306, _T),
        "sip": (5060, _TU),
        "xmpp-client": (5222, _T),
        "postgresql": (5432, _T),
        "postgres": (5432, _T),
        "amqp": (5672, _T),
        "redis": (6379, _T),
        "http-alt": (8080, _T),
        "webcache": (8080, _T),
    }
)

#: The longest number lvscheck reads from a config (below 2**63; leading zeros do not count).
MAX_DIGITS = 18


def read_number(digits: str) -> tuple[int | None, str]:
    """ASCII ``digits`` as ``(number, "")``, or ``(None, why)`` when there are too many of them."""
    significant = len(digits.lstrip("0"))
    if significant > MAX_DIGITS:
        return None, (
            f"a number of {significant} digits is too long: lvscheck reads numbers of at most "
            f"{MAX_DIGITS} digits"
        )
    return int(digits.lstrip("0") or "0"), ""


_DOTTED = re.compile(r"\d+\.\d+\.\d+\.\d+", re.ASCII)


def _is_ipv4(text: str) -> bool:
    """A dotted quad in canonical form (four numbers 0..255, no leading zeros)."""
    if not _DOTTED.fullmatch(text):
        return False
    try:
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        return False
    return all(part == "0" or not part.startswith("0") for part in text.split("."))


def resolve_host(name: str, ipv6: bool) -> tuple[str | None, str]:
    """``(address, "")`` for a literal IP of the family (or ``localhost``), else ``(None, why)``.

    Brackets around an IPv6 literal are removed.  The address comes back in the
    form getnameinfo(NI_NUMERICHOST) gives ldirectord (compressed IPv6).
    """
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if text == "localhost":
        return ("::1" if ipv6 else "127.0.0.1"), ""
    if not ipv6 and _is_ipv4(text):  # the common case, without ipaddress's cost per real
        return text, ""
    import ipaddress  # only here: an IPv4 config never pays for importing it

    family = "IPv6" if ipv6 else "IPv4"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if not ipv6 and _DOTTED.fullmatch(text):
            return None, (
                f"{name} is not a valid IPv4 address (ldirectord would look it up as a host name "
                "and fail): expected four numbers 0..255 without leading zeros"
            )
        if ipv6 or ":" in text:
            return None, f"{name} is not a valid {family} address: expected an address such as [2001:db8::1]"
        return None, (
            f"{name} is a host name; lvscheck does not resolve names when it reads a config "
            "(ldirectord would look it up with getaddrinfo at start): write its IP address "
            "(only 'localhost' is understood)"
        )
    if address.version == (6 if ipv6 else 4):
        return str(address), ""
    if ipv6:
        return None, f"{name} is an IPv4 address in an IPv6 virtual service: use virtual= and real="
    return None, f"{name} is an IPv6 address in an IPv4 virtual service: use virtual6= and real6="


def resolve_port(text: str, protocols: tuple[str, ...]) -> tuple[int | None, str]:
    """A port number or name as ldirectord's ``ld_getservbyname``: ``(port, "")`` or ``(None, why)``.

    Numbers 0..65535 are taken as they are.  A name must be defined for every
    protocol in ``protocols`` (``()`` means any protocol).
    """
    if text.isascii() and text.isdigit():
        port, why = read_number(text)
        if port is None:
            return None, f"port: {why}"
        if port > 65535:
            return None, f"port {text} is above 65535"
        return port, ""
    entry = PORT_NAMES.get(text)
    if entry is None:
        return None, (
            f"unknown port name {text!r}: write the port number (lvscheck knows the common "
            "/etc/services names such as http, https, domain, smtp, ldap, mysql, postgresql)"
        )
    port, defined = entry
    missing = [p for p in protocols if p not in defined]
    if missing:
        return None, (
            f"port name {text!r} is defined only for {'/'.join(defined)} in /etc/services, "
            f"not for {missing[0]}: write the port number {port}"
        )
    return port, ""
