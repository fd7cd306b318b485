"""lvscheck: health checks for LVS/IPVS real servers, as a library and a plugin framework.

Quick use::

    import asyncio, lvscheck

    spec = lvscheck.CheckSpec("http", lvscheck.Target("10.0.0.2", 80),
                              {"request": "/test.html", "receive": "Still alive"})
    [result] = lvscheck.run_checks([spec])          # from plain code
    results = await lvscheck.check_many([spec])     # from async code
    print(result.state, result.weight, result.reason, result.latency_ms)
"""

from __future__ import annotations

from collections.abc import Sequence

from lvscheck._version import __version__
from lvscheck.engine import Engine, check_many
from lvscheck.errors import (
    AdapterError,
    CheckFailed,
    ConfigError,
    LvscheckError,
    OptionError,
    PluginError,
    TargetError,
    UnknownCheckError,
    UsageError,
)
from lvscheck.markers import hookimpl
from lvscheck.model import CheckSpec, Option, Outcome, Result, State, Target
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry
from lvscheck.plugins import PluginHost

__all__ = [
    "AdapterError",
    "Check",
    "CheckFailed",
    "CheckRegistry",
    "CheckSpec",
    "ConfigError",
    "Engine",
    "LvscheckError",
    "Option",
    "OptionError",
    "Outcome",
    "PluginError",
    "PluginHost",
    "Probe",
    "Result",
    "State",
    "Target",
    "TargetError",
    "UnknownCheckError",
    "UsageError",
    "__version__",
    "check_many",
    "hookimpl",
    "run_checks",
]


def run_checks(specs: Sequence[CheckSpec], *, max_in_flight: int = 512, per_host: int = 8) -> list[Result]:
    """Run ``specs`` concurrently and return their results in order (blocking call).

    Raises :class:`UsageError` before anything runs if a spec is invalid.
    """
    import asyncio

    return asyncio.run(check_many(specs, max_in_flight=max_in_flight, per_host=per_host))
