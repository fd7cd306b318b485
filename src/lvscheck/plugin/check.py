"""The base class every check type derives from, and parsers for option values.

A check type is a subclass of :class:`Check` with a ``name``, the ``options`` it
accepts and one coroutine, :meth:`Check.probe`, that talks to the real server
and returns an :class:`~lvscheck.model.Outcome`.  :meth:`Check.prepare` parses
and validates the options once (compiles regexes, builds TLS contexts), so a
long-running director reuses the prepared check for every round.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from lvscheck.errors import OptionError, UsageError
from lvscheck.model import MAX_WEIGHT, CheckSpec, Option, Outcome

if TYPE_CHECKING:
    from lvscheck.plugin.probe import Probe

__all__ = [
    "COMMON_OPTIONS",
    "DEFAULT_TIMEOUT",
    "Check",
    "parse_bool",
    "parse_choice",
    "parse_cpu_budget",
    "parse_port",
    "parse_regex",
    "parse_seconds",
    "parse_size",
    "parse_weight",
    "size_text",
]

#: driver package -> the lvscheck extra that installs it
DRIVER_EXTRAS = {
    "aiomysql": "mysql",
    "asyncpg": "pgsql",
    "ldap3": "ldap",
    "aiosmtplib": "mail",
    "dns": "dns",
    "hpack": "grpc",
}

#: Seconds a check may take when neither checktimeout nor negotiatetimeout is set.
#: Below ldirectord's checktimeout default (5 s) is not needed: we *are* the deadline.
DEFAULT_TIMEOUT = 5.0


def parse_seconds(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise ValueError("expected a number of seconds such as 3 or 0.5") from None
    if not 0 < value <= 3600:
        raise ValueError("expected a number of seconds above 0 and at most 3600")
    return value


def parse_cpu_budget(text: str) -> float:
    """``cpubudget=``: seconds of CPU, 0 (no bound) up to 3600."""
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise ValueError("expected seconds of CPU such as 0.5 (0: no bound)") from None
    if not 0 <= value <= 3600:  # (NaN fails too)
        raise ValueError("expected seconds of CPU 0..3600 such as 0.5 (0: no bound)")
    return value


def parse_port(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("expected a port number 1..65535")
    return int(text)


def parse_weight(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= MAX_WEIGHT:
        raise ValueError(f"expected a weight 0..{MAX_WEIGHT}")
    return int(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    raise ValueError("expected yes or no")


def parse_choice(*words: str) -> Callable[[str], str]:
    """A parser for one of ``words`` (lowercase; any case and blanks around accepted).

    ``parse_choice("udp", "tcp")`` refuses anything else with "expected udp or tcp".
    """
    expected = f"expected {', '.join(words[:-1])} or {words[-1]}"

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in words:
            raise ValueError(expected)
        return value

    return parse


def parse_regex(text: str) -> re.Pattern[bytes]:
    """A ``receive`` expression, matched against raw bytes (ldirectord matches the raw body)."""
    try:
        return re.compile(text.encode("utf-8", "surrogateescape"))
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def parse_size(text: str) -> int:
    """``65536``, ``64k`` or ``1m`` (at most 64 MiB): how much of a reply or body to read."""
    text = text.strip().lower()
    factor = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    digits = text[:-1] if factor > 1 else text
    if not digits.isdigit() or not 0 < int(digits) * factor <= 64 * 1024 * 1024:
        raise ValueError("expected a size in bytes such as 65536, 64k or 1m (at most 64m)")
    return int(digits) * factor


def size_text(n: int) -> str:
    """A size from :func:`parse_size` as reasons show it: ``64 KiB`` or ``1000 bytes``."""
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


COMMON_OPTIONS: tuple[Option, ...] = (
    Option("checkport", "port to check instead of the real server's port", None, parse_port),
    Option(
        "checktimeout",
        f"seconds for the whole check when negotiatetimeout is not set (default {DEFAULT_TIMEOUT:g})",
        None,
        parse_seconds,
    ),
    Option(
        "negotiatetimeout",
        "seconds for the whole check: connect, TLS, request and reply together",
        None,
        parse_seconds,
    ),
    Option("connecttimeout", "seconds allowed for the TCP connect alone", None, parse_seconds),
    Option(
        "cpubudget",
        "seconds of CPU the check may use before it is cut off (default: the engine's, 0.5; 0: no bound)",
        None,
        parse_cpu_budget,
    ),
)


class Check:
    """Base class of check types.  Subclasses set the class attributes and ``probe``."""

    #: The check type's name, as written after ``lvscheck run`` or in ``service=``.
    name: ClassVar[str]
    #: One line for ``lvscheck checks``.
    summary: ClassVar[str] = ""
    #: Port used when neither the target nor ``checkport`` gives one.
    default_port: ClassVar[int | None] = None
    #: Options this type accepts, on top of :data:`COMMON_OPTIONS`.
    options: ClassVar[tuple[Option, ...]] = ()
    #: Python packages (import names) the check's driver needs, checked when it is prepared,
    #: so a missing driver is a clear usage error rather than a failed check.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Which option bounds the whole check first: ldirectord uses checktimeout for
    #: connect-type checks and negotiatetimeout for protocol dialogues.
    timeout_option: ClassVar[str] = "negotiatetimeout"
    #: Seconds of CPU this check may use (``cpubudget=``; 0: no bound); None: the engine's.
    cpu_budget: float | None = None

    def __init__(self, spec: CheckSpec, opts: Mapping[str, Any]) -> None:
        self.spec = spec
        self.opts = opts
        self.timeout: float = self._total_timeout(opts)
        self.connect_timeout: float = min(opts["connecttimeout"] or self.timeout, self.timeout)
        self.port: int | None = opts["checkport"] or spec.target.port or self.default_port
        self.cpu_budget = opts["cpubudget"]
        self.secrets: tuple[str, ...] = tuple(
            str(spec.options[o.name]) for o in self.all_options() if o.secret and spec.options.get(o.name)
        )
        self.setup()

    def _total_timeout(self, opts: Mapping[str, Any]) -> float:
        other = "checktimeout" if self.timeout_option == "negotiatetimeout" else "negotiatetimeout"
        value = opts[self.timeout_option] or opts[other]
        return float(value) if value else DEFAULT_TIMEOUT

    @classmethod
    def all_options(cls) -> tuple[Option, ...]:
        return COMMON_OPTIONS + cls.options

    @classmethod
    def prepare(cls, spec: CheckSpec) -> Check:
        """Parse and validate ``spec.options``; raise :class:`OptionError` naming the bad one.

        This is the check type alone.  The road every spec takes (``PluginHost.prepare``,
        used by the engine, the config and the daemon's workers) also applies the wrappers
        that work on any check type, such as ``agent=PORT``.
        """
        known = {o.name: o for o in cls.all_options()}
        unknown = [k for k in spec.options if k not in known]
        if unknown:
            raise OptionError(
                f"check type {cls.name!r} has no option {unknown[0]!r}; accepted: {', '.join(sorted(known))}"
            )
        opts: dict[str, Any] = {}
        for name, option in known.items():
            text = spec.options.get(name, option.default)
            if text is None:
                opts[name] = None
                continue
            try:
                opts[name] = option.parse(text)
            except ValueError as exc:
                shown = "(hidden)" if option.secret else repr(text)
                raise OptionError(
                    f"check type {cls.name!r}: option {name}={shown} is not valid: {exc}"
                ) from None
        cls._check_requirements()
        check = cls(spec, opts)
        if check.port is None:
            raise OptionError(
                f"check type {cls.name!r} has no default port: give {spec.target.host}:PORT or checkport=PORT"
            )
        return check

    @classmethod
    def _check_requirements(cls) -> None:
        if not cls.requires:
            return
        from importlib.util import find_spec

        for package in cls.requires:
            if find_spec(package) is None:
                extra = DRIVER_EXTRAS.get(package, "all")
                raise UsageError(
                    f"check type {cls.name!r} needs the Python package {package!r}, which is not "
                    f"installed: pip install 'lvscheck[{extra}]'"
                )

    def keep_secret(self, *values: str | None) -> None:
        """Hide ``values`` (a password read from a file or the environment) in every reason.

        Options declared ``secret=True`` are hidden already; call this for a secret a check
        obtains another way, in ``setup()``.
        """
        self.secrets = (*self.secrets, *(v for v in values if v))

    def setup(self) -> None:
        """Validate option combinations and build reusable state (TLS contexts, ...).

        Raise :class:`OptionError` for a combination that cannot work.
        """

    async def probe(self, probe: Probe) -> Outcome:
        """Talk to the real server and judge it.  Raise nothing you can return instead."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short label for logs: ``http GET /test.html 10.0.0.2:80``."""
        return f"{self.name} {self.spec.target.host}:{self.port}"

    def __str__(self) -> str:
        return self.describe()
