"""Turning results into what a caller reads: Nagios lines, JSON, exit codes."""

from __future__ import annotations

from collections.abc import Iterable

from lvscheck.model import Result, State

__all__ = ["misc_dynamic_exit", "nagios_exit", "nagios_line", "to_json", "worst_exit"]

_NAGIOS_CODE = {State.UP: 0, State.DEGRADED: 1, State.DOWN: 2}
_NAGIOS_WORD = {State.UP: "OK", State.DEGRADED: "WARNING", State.DOWN: "CRITICAL"}

#: keepalived's misc_dynamic maps exit 2+N to weight N; exit codes stop at 255.
MISC_DYNAMIC_MAX_WEIGHT = 253


def nagios_exit(result: Result) -> int:
    return _NAGIOS_CODE[result.state]


def worst_exit(results: Iterable[Result]) -> int:
    return max((nagios_exit(r) for r in results), default=0)


def nagios_line(result: Result) -> str:
    """``HTTP OK - 127.0.0.1:80 weight 1: HTTP 200 OK | time=0.002s;;;0 weight=1;;;0``."""
    perf = f"time={result.latency:.6f}s;;;0 weight={result.weight};;;0"
    return (
        f"{result.check.upper()} {_NAGIOS_WORD[result.state]} - {result.target} "
        f"weight {result.weight}: {result.reason} | {perf}"
    )


def misc_dynamic_exit(result: Result) -> int:
    """keepalived MISC_CHECK with misc_dynamic: 0 configured weight, 1 down, 2+N weight N."""
    if result.state is State.DOWN:
        return 1
    if result.weight == result.target.weight:
        return 0
    return 2 + min(result.weight, MISC_DYNAMIC_MAX_WEIGHT)


def to_json(result: Result) -> str:
    import json  # only for --json: start-up time counts

    return json.dumps(result.to_dict(), sort_keys=True)
