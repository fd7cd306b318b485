"""What ldirectord accepts but does not do what an operator expects (ldirectord.md §10).

Warnings only: each one names the virtual's line and says what happens instead.
"""

from __future__ import annotations

from lvscheck.config.model import VirtualService
from lvscheck.config.raw import RawVirtual
from lvscheck.config.report import Report
from lvscheck.config.services import SERVICE_OPTIONS, SERVICE_PORTS

__all__ = ["semantic_warnings"]


def semantic_warnings(v: VirtualService, rv: RawVirtual, report: Report) -> None:
    """What ldirectord accepts but does not do what an operator expects (ldirectord.md §10)."""
    line = v.line
    key = "virtual6" if v.ipv6 else "virtual"
    runs_service = v.checktype in ("negotiate", "combined") or (
        v.checktype == "external" and v.checkcommand.rsplit("/", 1)[-1] == "lvscheck-ldirectord"
    )
    if runs_service and v.service == "none" and v.lvscheck.check is None:
        why = (
            "a firewall-mark service"
            if v.fwmark is not None
            else f"port {v.port} is not in ldirectord's table"
        )
        report.warn(
            line,
            key,
            f"no check at all: service=none ({why}), so every real always counts as up; "
            "set service= or checktype=connect",
        )
    if runs_service and v.service in ("mysql", "pgsql"):
        missing = [k for k in ("login", "request") if k not in v.options]
        if missing:
            report.warn(
                line,
                key,
                f"service={v.service} without {' and '.join(missing)}: ldirectord marks every real down; "
                "lvscheck logs in and checks the connection when request is missing",
            )
    if runs_service and v.service in ("pop", "pops") and "login" not in v.options:
        report.warn(
            line,
            key,
            f"service={v.service} without login: ldirectord says up even for a closed port; "
            "lvscheck does not",
        )
    if runs_service and v.service == "dns" and "receive" not in v.options:
        report.warn(line, key, "service=dns without receive: ldirectord's dns check never succeeds")
    if runs_service and v.service in SERVICE_PORTS and v.checkport is None and v.fwmark is None:
        wellknown = SERVICE_PORTS[v.service]
        if wellknown != v.port and any(r.port == 0 for r in v.reals):
            report.warn(
                line,
                key,
                f"reals without a port are checked on port {wellknown} (service={v.service}'s port), "
                f"not the virtual's {v.port}; give the reals a port or set checkport={v.port}",
            )
    if runs_service:
        _unused_options(v, rv, report)


def _unused_options(v: VirtualService, rv: RawVirtual, report: Report) -> None:
    """Check directives the virtual's service does not read."""
    for name in v.options:
        line = rv.lines.get(name, v.line)
        if name in SERVICE_OPTIONS.get(v.service, ()):
            continue
        if v.service == "oracle":
            report.warn(
                line,
                name,
                "not used: lvscheck's oracle check pings the TNS listener, it does not log in with SQL",
            )
        elif v.service != "none":
            report.warn(line, name, f"not used by service={v.service} (ldirectord ignores it too)")
