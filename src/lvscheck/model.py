"""The values that flow through lvscheck: target -> check spec -> outcome -> result.

All are immutable, slotted value classes, safe to share between tasks.  They are
written out by hand rather than with ``@dataclass``: generating dataclasses costs
a few milliseconds at import, and ``lvscheck run`` is started once per check by
ldirectord and Nagios (see bench/README.md, start-up).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

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


_V = TypeVar("_V", bound="_Value")


class _Value:
    """Immutable value: equality, hash and repr from ``__slots__``; ``replace()`` copies."""

    __slots__ = ()

    @property
    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Value)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names)
        return f"{type(self).__name__}({fields})"

    def replace(self: _V, **changes: Any) -> _V:
        """A copy with ``changes`` applied (like ``dataclasses.replace``)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in self._names}
        values.update(changes)
        return type(self)(**values)


_set = object.__setattr__


class Target(_Value):
    """One real server to check.

    ``port`` may be ``None``: the check then uses its ``checkport`` option or
    the check type's well-known port.  ``virtual`` names the virtual service the
    real belongs to (``"10.0.0.1:80"``, ``"fwmark 5"``) and is for display only.
    ``weight`` is the configured weight: what a healthy real gets.
    ``forwarding`` is ldirectord's gate | masq | ipip, when known.
    ``via`` and ``mark``: check through the virtual address (LVS-DR/TUN, ``via=vip``):
    the probe connects to ``via`` with ``SO_MARK`` = ``mark``, and a private
    firewall-mark IPVS service delivers it to this real only (docs/via-vip.md).
    """

    __slots__ = ("host", "port", "weight", "virtual", "forwarding", "via", "mark")  # noqa: RUF023
    host: str
    port: int | None
    weight: int
    virtual: str | None
    forwarding: str | None
    via: str | None
    mark: int

    def __init__(
        self,
        host: str,
        port: int | None = None,
        weight: int = 1,
        virtual: str | None = None,
        forwarding: str | None = None,
        via: str | None = None,
        mark: int = 0,
    ) -> None:
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight {weight} is outside 0..{MAX_WEIGHT}")
        _set(self, "host", host)
        _set(self, "port", port)
        _set(self, "weight", weight)
        _set(self, "virtual", virtual)
        _set(self, "forwarding", forwarding)
        _set(self, "via", via)
        _set(self, "mark", mark)

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets), or the bare host without a port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.address if self.virtual is None else f"{self.address} (vs {self.virtual})"


class CheckSpec(_Value):
    """A check type, the real server it probes, and its options as written.

    Option values are strings exactly as an operator writes them on the command
    line or in ``ldirectord.cf`` (``receive="Still alive"``); the check type
    parses and validates them.  Option names follow ldirectord's directives.
    """

    __slots__ = ("check", "target", "options")  # noqa: RUF023 - field order
    check: str
    target: Target
    options: Mapping[str, str]

    def __init__(self, check: str, target: Target, options: Mapping[str, str] | None = None) -> None:
        _set(self, "check", check)
        _set(self, "target", target)
        _set(self, "options", _EMPTY if options is None else options)

    def __hash__(self) -> int:
        return hash((self.check, self.target, tuple(sorted(self.options.items()))))

    def __str__(self) -> str:
        return f"{self.check} {self.target}"


class Option(_Value):
    """One option a check type accepts.

    ``parse`` turns the written string into the value the check uses and raises
    ``ValueError`` with a short explanation when it cannot.  ``secret`` options
    (passwords) are never shown in output, logs or reasons.
    """

    __slots__ = ("name", "help", "default", "parse", "secret")  # noqa: RUF023 - field order
    name: str
    help: str
    default: str | None
    parse: Callable[[str], Any]
    secret: bool

    def __init__(
        self,
        name: str,
        help: str,
        default: str | None = None,
        parse: Callable[[str], Any] = str,
        secret: bool = False,
    ) -> None:
        _set(self, "name", name)
        _set(self, "help", help)
        _set(self, "default", default)
        _set(self, "parse", parse)
        _set(self, "secret", secret)


def _details(details: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(details) if details else _EMPTY


class Outcome(_Value):
    """What a check's probe returns; the engine adds timing and resolves the weight.

    ``weight=None`` means "the configured weight" when up or degraded and 0 when
    down; an int is a weight the check derived from the server (clamped by the
    engine to ``0..MAX_WEIGHT``).
    """

    __slots__ = ("state", "reason", "weight", "details")  # noqa: RUF023 - field order
    state: State
    reason: str
    weight: int | None
    details: Mapping[str, Any]

    def __init__(
        self,
        state: State,
        reason: str,
        weight: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        _set(self, "state", state)
        _set(self, "reason", reason)
        _set(self, "weight", weight)
        _set(self, "details", _EMPTY if details is None else details)

    def __hash__(self) -> int:
        return hash((self.state, self.reason, self.weight))

    @classmethod
    def up(cls, reason: str = "ok", weight: int | None = None, **details: Any) -> Outcome:
        return cls(State.UP, reason, weight, _details(details))

    @classmethod
    def degraded(cls, reason: str, weight: int | None = None, **details: Any) -> Outcome:
        return cls(State.DEGRADED, reason, weight, _details(details))

    @classmethod
    def down(cls, reason: str, **details: Any) -> Outcome:
        return cls(State.DOWN, reason, 0, _details(details))


class Result(_Value):
    """The answer for one check of one real server."""

    __slots__ = ("check", "target", "state", "weight", "reason", "latency", "details")  # noqa: RUF023 - field order
    check: str
    target: Target
    state: State
    weight: int
    reason: str
    latency: float  # seconds, from the start of the check to its verdict
    details: Mapping[str, Any]

    def __init__(
        self,
        check: str,
        target: Target,
        state: State,
        weight: int,
        reason: str,
        latency: float,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        _set(self, "check", check)
        _set(self, "target", target)
        _set(self, "state", state)
        _set(self, "weight", weight)
        _set(self, "reason", reason)
        _set(self, "latency", latency)
        _set(self, "details", _EMPTY if details is None else details)

    def __hash__(self) -> int:
        return hash((self.check, self.target, self.state, self.weight, self.reason, self.latency))

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
