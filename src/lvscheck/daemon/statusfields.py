"""The daemon-wide fields the status page adds to ``Director.status()``: version, clock,
last reload, drain/maintenance state, check counters."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["daemon_extras"]


def daemon_extras(director: Director) -> dict[str, Any]:
    from lvscheck._version import __version__

    ov = director.overrides
    c = director.counters
    return {
        "version": __version__,
        "now": time.time(),
        "generation": c.reloads,
        "reloads": c.reloads,
        "reload_failures": c.reload_failures,
        "state_file": ov.path,
        "drained": [list(x) for x in sorted(ov.drained)],
        "maintenance_reals": sorted(ov.maintenance),
        "transitions_total": c.transitions,
        "check_results": dict(c.checks),
    }
