"""On an ldirectord.cf, decide as ldirectord does; say where lvscheck still differs.

Two pure functions, both on the one road (:mod:`lvscheck.config.translate` and
:mod:`lvscheck.config.prepare`):

* :func:`road_options`: the check options that give ldirectord's verdicts, which
  :func:`~lvscheck.config.translate.check_spec` puts under the virtual's own
  directives and ``#lvscheck:`` options (so one ``#lvscheck:`` line picks
  lvscheck's own behaviour).  ``lvscheck run CHECK ...`` from a shell never sees
  them and keeps lvscheck's defaults.
* :func:`differences`: one warning per virtual naming what lvscheck still does
  differently on that virtual, and the ``#lvscheck:`` line that picks the other
  behaviour (when there is one).

What ldirectord 4.12 does, from its source (``check_http`` and LWP::UserAgent,
``check_ldap`` and Net::LDAP, ``check_radius``, ``check_sip``, ``check_dns``,
``check_sql``, ``check_pop``):

========== ===================================================== ============================
service    ldirectord                                            road option
========== ===================================================== ============================
http(s)    LWP follows 301/302/303/307/308 for GET/HEAD, 7 times ``redirects=7``
http(s)    the whole body is read (no limit)                     ``maxbody=1m`` (a cap)
https      ``verify_hostname => 0``: chain verified, name not    ``tlsverify=chain``
http_proxy the whole body                                        ``maxbody=1m``
ldaps      Net::LDAP's default ``verify => 'none'``              ``tlsverify=no``
imaps/pops IO::Socket::SSL defaults: chain verified, name not    ``tlsverify=chain``
imap(s)    always port 143/993: the port is ignored (an IP)      (check-config warns)
ftp        PASV sent, the file fetched in active mode            (check-config warns)
radius     ``check_pwd``: only Access-Accept is up               ``expect=accept``
sip        only ``SIP/2.0 200 OK`` is up                         ``status=200``
========== ===================================================== ============================

``maxbody=1m``: ldirectord reads any body into memory within negotiatetimeout; a
health page past 1 MiB is not one, and a cap keeps a daemon of thousands of
reals bounded (1 MiB per check in flight at most, under the same one deadline).
"""

from __future__ import annotations

from collections.abc import Mapping

from lvscheck.config.model import Config, Problem, VirtualService
from lvscheck.config.services import SERVICE_CHECKS

__all__ = ["LDIRECTORD_BODY", "ROAD_OPTIONS", "differences", "road_options"]

#: ldirectord reads the whole body; the road reads this much (see the module's docstring).
LDIRECTORD_BODY = "1m"

#: Every option :func:`road_options` may set (prepare.py drops them quietly for a check
#: type that has no use for them, as it does the timeouts).
ROAD_OPTIONS = frozenset({"redirects", "maxbody", "tlsverify", "expect", "status"})


def _check_of(virtual: VirtualService) -> str | None:
    return virtual.lvscheck.check or SERVICE_CHECKS.get(virtual.service)


def road_options(virtual: VirtualService, check: str) -> dict[str, str]:
    """ldirectord's values for the options of ``check`` run for ``virtual``'s service.

    Empty when ``#lvscheck: check=`` runs a check type other than the service's own
    (then the operator chose lvscheck's check, with its own defaults).
    """
    service = virtual.service
    if check != SERVICE_CHECKS.get(service):
        return {}
    if service in ("http", "https"):
        options = {"redirects": "7", "maxbody": LDIRECTORD_BODY}
        if service == "https" and "virtualhost" not in virtual.options:
            options["tlsverify"] = "chain"
        return options
    return dict(_OTHER.get(service, {}))


_OTHER: Mapping[str, Mapping[str, str]] = {
    "http_proxy": {"maxbody": LDIRECTORD_BODY},
    "ldaps": {"tlsverify": "no"},
    "imaps": {"tlsverify": "chain"},
    "pops": {"tlsverify": "chain"},
    "radius": {"expect": "accept"},
    "sip": {"status": "200"},
}


def _effective(virtual: VirtualService, check: str) -> dict[str, str]:
    """The options the check gets, as far as they decide a difference."""
    return road_options(virtual, check) | dict(virtual.options) | dict(virtual.lvscheck.options)


def _http(virtual: VirtualService, options: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    redirects = options.get("redirects", "0").strip()
    if redirects != "7":
        found.append(
            f"follows {redirects} redirects, ldirectord 7 (#lvscheck: redirects=7 follows as ldirectord)"
            if redirects.isdigit() and redirects != "0"
            else "redirects are not followed, ldirectord follows 7 (#lvscheck: redirects=7)"
        )
    if options.get("maxbody", "64k").strip().lower() != LDIRECTORD_BODY:
        found.append(
            f"reads {options.get('maxbody', '64k')} of the body, ldirectord all of it "
            f"(#lvscheck: maxbody={LDIRECTORD_BODY})"
        )
    if "status" in virtual.lvscheck.options:
        found.append(f"accepts status {options['status']}, ldirectord 2xx (drop #lvscheck: status=)")
    if virtual.service == "https":
        verify = options.get("tlsverify", "yes").strip().lower()
        if verify in ("yes", "full", "true", "on", "1"):
            name = options.get("virtualhost", "the real's address")
            found.append(
                f"the certificate must name {name}, ldirectord checks the chain only "
                "(#lvscheck: tlsverify=chain)"
            )
        elif verify in ("no", "false", "off", "0"):
            found.append(
                "the certificate is not verified, ldirectord checks its chain (#lvscheck: tlsverify=chain)"
            )
    return found


def _found(virtual: VirtualService, check: str) -> list[str]:
    service = virtual.service
    options = _effective(virtual, check)
    if check != SERVICE_CHECKS.get(service):
        return [f"#lvscheck: check={check} runs lvscheck's {check} check, not ldirectord's {service} check"]
    if service in ("http", "https"):
        return _http(virtual, options)
    found: list[str] = []
    if service == "ftp" and options.get("request"):
        found.append(
            "lvscheck fetches in passive mode; ldirectord sends PASV but fetches in active mode (PORT), "
            "so a server that refuses PORT is down for it (no #lvscheck line: ldirectord is wrong there)"
        )
    elif service == "http_proxy":
        found.append("redirects are not followed through the proxy, ldirectord follows 7 (no #lvscheck line)")
    elif service in ("mysql", "pgsql") and options.get("receive"):
        found.append("receive= is checked, ldirectord ignores it (#lvscheck: receive= ignores it too)")
    # (mysql/pgsql without request, pop without login, dns without receive: config/semantics.py)
    elif service == "radius" and options.get("expect", "any") != "accept":
        found.append("an Access-Reject is up, ldirectord says down (#lvscheck: expect=accept)")
    elif service == "sip" and options.get("status", "any").strip() != "200":
        found.append(
            f"status {options.get('status', 'any')} is up, ldirectord: 200 only (#lvscheck: status=200)"
        )
    elif service in ("ldaps", "imaps", "pops") and "tlsverify" in virtual.lvscheck.options:
        found.append(f"tlsverify={options['tlsverify']}, ldirectord {_OTHER[service]['tlsverify']}")
    if service in _IMAP_PORTS:
        found += _imap_port(virtual, _IMAP_PORTS[service])
    return found


#: The only port ldirectord's imap/imaps check connects to: it hands Net::IMAP::Simple the
#: real's IP address and the port as ``port =>``, which Net::IMAP::Simple ignores for an IP.
_IMAP_PORTS: Mapping[str, int] = {"imap": 143, "imaps": 993}


def _imap_port(virtual: VirtualService, wellknown: int) -> list[str]:
    checked = {virtual.checkport} if virtual.checkport else {r.port or wellknown for r in virtual.reals}
    others = sorted(checked - {wellknown})
    if not others:
        return []
    return [
        f"lvscheck checks port {', '.join(map(str, others))}; ldirectord's {virtual.service} check "
        f"connects to port {wellknown} whatever the port (no #lvscheck line: ldirectord is wrong there)"
    ]


def differences(config: Config) -> list[Problem]:
    """One warning per virtual whose verdicts can differ from ldirectord's on the same server.

    Only negotiate checks (and ``combined``'s negotiate part) are compared: connect,
    ping, external, on and off run as ldirectord runs them.
    """
    out: list[Problem] = []
    for virtual in config.virtuals:
        if virtual.checktype not in ("negotiate", "combined") and not _adapter(virtual):
            continue
        check = _check_of(virtual)
        if check is None:
            continue
        found = _found(virtual, check)
        if found:
            directive = "virtual6" if virtual.ipv6 else "virtual"
            message = f"{virtual.name}: differs from ldirectord: " + "; ".join(found)
            out.append(Problem(config.source, virtual.line, directive, message))
    return out


def _adapter(virtual: VirtualService) -> bool:
    import os

    command = virtual.checkcommand.strip().strip('"') if virtual.checktype == "external" else ""
    return os.path.basename(command) == "lvscheck-ldirectord"
