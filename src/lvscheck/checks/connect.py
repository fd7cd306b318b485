"""``connect``: a TCP connect, as ldirectord's ``checktype=connect``."""

from __future__ import annotations

from lvscheck.markers import hookimpl
from lvscheck.model import Outcome
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry


class ConnectCheck(Check):
    name = "connect"
    summary = "TCP connect to the real server, then close (ldirectord checktype=connect)"
    timeout_option = "checktimeout"

    async def probe(self, probe: Probe) -> Outcome:
        await probe.connect()
        return Outcome.up("TCP connect succeeded")


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(ConnectCheck)
