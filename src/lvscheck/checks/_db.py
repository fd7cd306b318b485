"""What the ``mysql``, ``pgsql`` and ``ldap`` checks share: secrets, receive, roles, lag -> weight.

Nothing here imports a driver; each check imports its own inside ``probe``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lvscheck.errors import CheckFailed, OptionError
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import parse_choice

__all__ = [
    "LAG_OPTIONS",
    "PASSWORD_OPTIONS",
    "REQUEST_OPTIONS",
    "LagRule",
    "lag_outcome",
    "nonempty",
    "parse_role",
    "parse_text_regex",
    "parse_verdict",
    "read_password",
    "request_note",
    "request_options",
    "short",
    "values_match",
]


def parse_text_regex(text: str) -> re.Pattern[str]:
    """A ``receive`` expression matched against text values (SQL cells, LDAP DNs)."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def nonempty(pattern: re.Pattern[str] | None) -> re.Pattern[str] | None:
    """``receive=""`` means no receive (as in ldirectord), not "match anything"."""
    return pattern if pattern is not None and pattern.pattern else None


def _parse_envname(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError("expected an environment variable name such as LVS_DB_PASSWORD")
    return text


PASSWORD_OPTIONS: tuple[Option, ...] = (
    Option("passwd", "password (visible in ps and configs: prefer passwdfile or passwdenv)", secret=True),
    Option("passwdfile", "read the password from this file (first line; read when the check is prepared)"),
    Option("passwdenv", "read the password from this environment variable", None, _parse_envname),
)


def read_password(check_name: str, opts: Mapping[str, Any]) -> str | None:
    """The password from ``passwd``, ``passwdfile`` or ``passwdenv`` (at most one), or ``None``.

    Error messages name the option and the file or variable, never the password.
    """
    given = [name for name in ("passwd", "passwdfile", "passwdenv") if opts.get(name) is not None]
    if len(given) > 1:
        raise OptionError(f"check type {check_name!r}: give only one of {', '.join(given)}")
    if not given:
        return None
    if given[0] == "passwd":
        return str(opts["passwd"])
    if given[0] == "passwdfile":
        path = str(opts["passwdfile"])
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(65536)
        except OSError as exc:
            raise OptionError(
                f"check type {check_name!r}: passwdfile={path!r} cannot be read: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise OptionError(f"check type {check_name!r}: passwdfile={path!r} is not UTF-8 text") from None
        return text.splitlines()[0] if text else ""
    name = str(opts["passwdenv"])
    value = os.environ.get(name)
    if value is None:
        raise OptionError(
            f"check type {check_name!r}: passwdenv={name}: that environment variable is not set"
        )
    return value


def values_match(pattern: re.Pattern[str], rows: Iterable[Iterable[Any]]) -> str | None:
    """The first cell (as text) that ``pattern`` finds a match in, or ``None``."""
    for row in rows:
        for value in row:
            if value is None:
                continue
            if isinstance(value, bytes | bytearray | memoryview):
                text = bytes(value).decode("utf-8", "replace")
            else:
                text = str(value)
            if pattern.search(text):
                return text
    return None


# -- request and receive (mysql, pgsql) --------------------------------------------------

REQUEST_OPTIONS: tuple[Option, ...] = (
    Option("request", "SQL statement; up iff it returns at least one row (default: login only)"),
    Option(
        "receive",
        "regular expression one value of the request's result must match (searched, unanchored)",
        None,
        parse_text_regex,
    ),
)


def request_options(check_name: str, opts: Mapping[str, Any]) -> tuple[str | None, re.Pattern[str] | None]:
    """``request`` and ``receive`` (``""`` is none of either); receive without request is refused."""
    request: str | None = opts["request"] or None
    receive = nonempty(opts["receive"])  # receive="" is no receive
    if receive is not None and request is None:
        raise OptionError(
            f"check type {check_name!r}: receive= needs request= (the query whose result to match)"
        )
    return request, receive


def request_note(request: str, receive: re.Pattern[str] | None, rows: Sequence[Iterable[Any]]) -> str:
    """What the ``request`` returned (rows of cells), or CheckFailed: no rows, or no cell matches receive."""
    if not rows:
        raise CheckFailed(f"request returned no rows: {short(request)}")
    counted = f"request returned {len(rows)} row{'s' if len(rows) != 1 else ''}"
    if receive is None:
        return counted
    found = values_match(receive, rows)
    if found is None:
        raise CheckFailed(f"{counted}, none with a value matching receive={receive.pattern!r}")
    return f"{counted}, {short(found)!r} matched receive"


def short(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters (for reasons)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- roles ----------------------------------------------------------------------------

_ROLES = {
    "any": "any",
    "primary": "primary",
    "master": "primary",
    "source": "primary",
    "rw": "primary",
    "readwrite": "primary",
    "read-write": "primary",
    "standby": "standby",
    "replica": "standby",
    "slave": "standby",
    "ro": "standby",
    "readonly": "standby",
    "read-only": "standby",
}


def parse_role(text: str) -> str:
    role = _ROLES.get(text.strip().lower())
    if role is None:
        raise ValueError("expected primary (rw), standby (ro, replica) or any")
    return role


# -- replication lag -> weight ---------------------------------------------------------


#: ``down``, ``up`` or ``degraded``: what an unclear state counts as (lagnull=, donor=).
parse_verdict = parse_choice("down", "up", "degraded")


def _parse_lag(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise ValueError("expected seconds of replication lag such as 30") from None
    if not 0 <= value <= 86400 * 7 or math.isnan(value):
        raise ValueError("expected seconds of replication lag from 0 to 604800")
    return value


LAG_OPTIONS: tuple[Option, ...] = (
    Option("minlag", "weightmode=lag: lag (s) at or below which the full weight is kept", "1", _parse_lag),
    Option("maxlag", "weightmode=lag: lag (s) at or above which the server is down", "60", _parse_lag),
    Option(
        "lagnull",
        "weightmode=lag: verdict when the lag is unknown (replication stopped or broken): "
        "down, up or degraded (weight 1)",
        "down",
        parse_verdict,
    ),
)


@dataclass(frozen=True, slots=True)
class LagRule:
    """How replication lag becomes a weight (see docs/checks/mysql.md, "Weight rules")."""

    minlag: float
    maxlag: float
    lagnull: str

    @classmethod
    def from_opts(cls, check_name: str, opts: Mapping[str, Any]) -> LagRule:
        rule = cls(float(opts["minlag"]), float(opts["maxlag"]), str(opts["lagnull"]))
        if rule.maxlag <= rule.minlag:
            raise OptionError(
                f"check type {check_name!r}: maxlag={rule.maxlag:g} must be above minlag={rule.minlag:g}"
            )
        return rule


def lag_outcome(rule: LagRule, lag: float | None, weight: int, what: str, null_why: str) -> Outcome:
    """The verdict for a replica ``lag`` seconds behind (``None``: unknown) at configured ``weight``.

    * lag <= minlag: up at the configured weight;
    * minlag < lag < maxlag: degraded, weight scaled linearly from the configured
      weight down to 1 (rounded up, never 0);
    * lag >= maxlag: down;
    * unknown: ``lagnull`` (down; up at the configured weight; degraded at weight 1).
    """
    if lag is None:
        reason = f"{what}: replication lag unknown ({null_why})"
        if rule.lagnull == "up":
            return Outcome.up(f"{reason}; lagnull=up", lag=None)
        if rule.lagnull == "degraded":
            return Outcome.degraded(f"{reason}; lagnull=degraded", weight=min(1, weight), lag=None)
        return Outcome.down(f"{reason}; lagnull=down", lag=None)
    shown = f"{lag:.3f}".rstrip("0").rstrip(".")
    if lag <= rule.minlag:
        return Outcome.up(f"{what}: replication lag {shown} s", lag=lag)
    if lag >= rule.maxlag:
        return Outcome.down(f"{what}: replication lag {shown} s reaches maxlag={rule.maxlag:g}", lag=lag)
    share = (rule.maxlag - lag) / (rule.maxlag - rule.minlag)
    derived = max(1, math.ceil(weight * share)) if weight > 0 else 0
    if derived >= weight:
        return Outcome.up(f"{what}: replication lag {shown} s", lag=lag)
    return Outcome.degraded(
        f"{what}: replication lag {shown} s (minlag={rule.minlag:g}, maxlag={rule.maxlag:g}): "
        f"weight {derived} of {weight}",
        weight=derived,
        lag=lag,
    )
