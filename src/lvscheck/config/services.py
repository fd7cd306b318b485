"""ldirectord's vocabulary: check types, services, the port <-> service table, defaults.

Plain data with no dependency inside lvscheck: the parser checks words against it,
resolve infers ``service=`` from a port with it, and :mod:`lvscheck.config.translate`
maps a service to the lvscheck check type and the options it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "CHECKTYPES",
    "DEFAULT_CHECKTIMEOUT",
    "DEFAULT_NEGOTIATETIMEOUT",
    "SERVICES",
    "SERVICE_CHECKS",
    "SERVICE_OPTIONS",
    "SERVICE_PORTS",
    "port_to_service",
]

#: ldirectord's defaults when neither the virtual nor the global section sets a timeout (§2.5).
DEFAULT_CHECKTIMEOUT = 5
DEFAULT_NEGOTIATETIMEOUT = 30

#: ``checktype=`` words ldirectord accepts; any value containing a digit is "combined" N.
CHECKTYPES = ("connect", "negotiate", "ping", "external", "external-perl", "on", "off")

#: ``service=`` words ldirectord accepts (lowercase only).
SERVICES = (
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "mysql",
    "nntp",
    "none",
    "oracle",
    "pop",
    "pops",
    "radius",
    "pgsql",
    "sip",
    "smtp",
    "submission",
    "simpletcp",
)

#: ldirectord's port <-> service table (``ld_port_to_service`` / ``ld_service_to_port``).
SERVICE_PORTS: Mapping[str, int] = MappingProxyType(
    {
        "ftp": 21,
        "smtp": 25,
        "dns": 53,
        "http": 80,
        "pop": 110,
        "nntp": 119,
        "imap": 143,
        "ldap": 389,
        "https": 443,
        "submission": 587,
        "ldaps": 636,
        "imaps": 993,
        "pops": 995,
        "oracle": 1521,
        "radius": 1812,
        "http_proxy": 3128,
        "mysql": 3306,
        "sip": 5060,
        "pgsql": 5432,
    }
)
_PORT_SERVICES = {port: name for name, port in SERVICE_PORTS.items()}

#: ldirectord service -> lvscheck check type.  The names are the same on purpose;
#: ``none`` has no entry (no check at all: the real is always up).
SERVICE_CHECKS: Mapping[str, str] = MappingProxyType({s: s for s in SERVICES if s != "none"})

#: Which of a virtual's check directives ldirectord's check for a service reads.
#: Only these are handed to the lvscheck check (as options of the same name).
SERVICE_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "http": ("request", "receive", "virtualhost", "httpmethod"),
        "https": ("request", "receive", "virtualhost", "httpmethod"),
        "http_proxy": ("request", "receive", "httpmethod"),
        "ftp": ("login", "passwd", "request", "receive"),
        "smtp": (),
        "submission": (),
        "pop": ("login", "passwd"),
        "pops": ("login", "passwd"),
        "imap": ("login", "passwd"),
        "imaps": ("login", "passwd"),
        "ldap": ("login", "passwd", "request", "receive"),
        "ldaps": ("login", "passwd", "request", "receive"),
        "nntp": (),
        "dns": ("request", "receive"),
        "radius": ("login", "passwd", "secret"),
        "sip": ("login",),
        "simpletcp": ("request", "receive"),
        "mysql": ("login", "passwd", "database", "request", "receive"),
        "pgsql": ("login", "passwd", "database", "request", "receive"),
        # ldirectord logs in with DBI; lvscheck's oracle check pings the TNS listener instead
        "oracle": (),
    }
)


def port_to_service(port: int) -> str:
    """ldirectord's inference of ``service=`` from the virtual port: ``none`` when unknown."""
    return _PORT_SERVICES.get(port, "none")
