"""The values that flow through lvscheck: target -> check spec -> outcome -> result.

All are frozen, slotted dataclasses (cheap to import, safe to share between tasks).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "MAX_WEIGHT",
    "CheckSpec",
    "Option",
    "Outcome",
    "Result",
    "State",
    "Target",
]

#: The largest weight IPVS accepts (``ipvsadm -w``: 0..65535).
MAX_WEIGHT = 65535

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class State(enum.Enum):
    """What a check concluded about one real server."""

    UP = "up"
    """Healthy: serve traffic at the configured (or derived) weight."""
    DEGRADED = "degraded"
    """Alive but asks for less traffic (a derived weight below the configured one, lag, ...)."""
    DOWN = "down"
    """Take it out of rotation: weight 0."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Target:
    """One real server to check.

    ``port`` may be ``None``: the check then uses its ``checkport`` option or
    the check type's well-known port.  ``virtual`` names the virtual service the
    real belongs to (``"10.0.0.1:80"``, ``"fwmark 5"``) and is for display only.
    ``weight`` is the configured weight: what a healthy real gets.
    """

    host: str
    port: int | None = None
    weight: int = 1
    virtual: str | None = None
    forwarding: str | None = None  # gate | masq | ipip, as in ldirectord's real=

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"weight {self.weight} is outside 0..{MAX_WEIGHT}")

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets), or the bare host without a port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.address if self.virtual is None else f"{self.address} (vs {self.virtual})"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check type, the real server it probes, and its options as written.

    Option values are strings exactly as an operator writes them on the command
    line or in ``ldirectord.cf`` (``receive="Still alive"``); the check type
    parses and validates them.  Option names follow ldirectord's directives.
    """

    check: str
    target: Target
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __str__(self) -> str:
        return f"{self.check} {self.target}"


@dataclass(frozen=True, slots=True)
class Option:
    """One option a check type accepts.

    ``parse`` turns the written string into the value the check uses and raises
    ``ValueError`` with a short explanation when it cannot.  ``secret`` options
    (passwords) are never shown in output, logs or reasons.
    """

    name: str
    help: str
    default: str | None = None
    parse: Callable[[str], Any] = str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check's probe returns; the engine adds timing and resolves the weight.

    ``weight=None`` means "the configured weight" when up or degraded and 0 when
    down; an int is a weight the check derived from the server (clamped by the
    engine to ``0..MAX_WEIGHT``).
    """

    state: State
    reason: str
    weight: int | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def up(cls, reason: str = "ok", weight: int | None = None, **details: Any) -> Outcome:
        return cls(State.UP, reason, weight, MappingProxyType(details) if details else _EMPTY)

    @classmethod
    def degraded(cls, reason: str, weight: int | None = None, **details: Any) -> Outcome:
        return cls(State.DEGRADED, reason, weight, MappingProxyType(details) if details else _EMPTY)

    @classmethod
    def down(cls, reason: str, **details: Any) -> Outcome:
        return cls(State.DOWN, reason, 0, MappingProxyType(details) if details else _EMPTY)


@dataclass(frozen=True, slots=True)
class Result:
    """The answer for one check of one real server."""

    check: str
    target: Target
    state: State
    weight: int
    reason: str
    latency: float  # seconds, from the start of the check to its verdict
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def latency_ms(self) -> float:
        return round(self.latency * 1000.0, 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape ``lvscheck run --json`` prints)."""
        out: dict[str, Any] = {
            "check": self.check,
            "target": self.target.address,
            "state": self.state.value,
            "weight": self.weight,
            "reason": self.reason,
            "latency_ms": self.latency_ms,
        }
        if self.target.virtual is not None:
            out["virtual"] = self.target.virtual
        if self.details:
            out["details"] = dict(self.details)
        return out
