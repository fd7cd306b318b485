"""From check plans to prepared checks, with every option problem reported as a config error.

:func:`prepare` is the last step before anything runs: it finds each plan's
check type, hands it only the ldirectord directives it understands (what
ldirectord would ignore for that service is dropped, with a warning), keeps
every ``#lvscheck:`` option as written, and lets the check type validate them
all.  Every problem comes back at once in one :class:`~lvscheck.errors.ConfigError`,
located at the line of the directive when it can be found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from lvscheck.config.model import CheckPlan, Config, Problem, VirtualService, plans
from lvscheck.errors import ConfigError, UsageError
from lvscheck.model import CheckSpec

if TYPE_CHECKING:
    from lvscheck.checktype import Check
    from lvscheck.plugins import PluginHost

__all__ = ["PreparedPlan", "prepare", "prepare_spec"]

#: Options check_spec() adds on its own; silently dropped when a check type has no use for them.
_DERIVED = frozenset({"checktimeout", "negotiatetimeout", "checkport", "protocol"})


@dataclass(frozen=True, slots=True)
class PreparedPlan:
    """A :class:`CheckPlan` with its checks validated and ready to run."""

    plan: CheckPlan
    check: Check | None
    connect: Check | None = None


def _line_of(virtual: VirtualService, message: str) -> tuple[int, str]:
    """The line of the option an error message names (#lvscheck: line or directive)."""
    for m in re.finditer(r"option '?([a-z_]+)'?|\b([a-z_]+)=", message):
        name = m[1] or m[2]
        if name in virtual.lvscheck.lines:
            return virtual.lvscheck.lines[name], f"#lvscheck {name}"
        if name in virtual.lines:
            return virtual.lines[name], name
    return virtual.line, "virtual6" if virtual.ipv6 else "virtual"


def prepare_spec(
    plugins: PluginHost,
    virtual: VirtualService,
    spec: CheckSpec,
    file: str,
    problems: list[Problem],
    warnings: list[Problem],
) -> Check | None:
    """Validate one spec; problems and warnings are appended (once each) instead of raised."""
    try:
        cls = plugins.check_type(spec.check)
    except UsageError as exc:
        line, directive = _line_of(virtual, f"check={spec.check}")
        _add(problems, Problem(file, line, directive, f"{virtual.name}: {exc}"))
        return None
    accepted = {o.name for o in cls.all_options()}
    written = virtual.lvscheck.options
    options = {k: v for k, v in spec.options.items() if k in accepted or k in written}
    for name in spec.options.keys() - options.keys() - _DERIVED:
        line = virtual.lines.get(name, virtual.line)
        message = f"lvscheck's {spec.check} check has no option {name}: ignored"
        _add(warnings, Problem(file, line, name, message))
    try:
        return cls.prepare(CheckSpec(spec.check, spec.target, MappingProxyType(options)))
    except UsageError as exc:
        line, directive = _line_of(virtual, str(exc))
        _add(problems, Problem(file, line, directive, f"{virtual.name}: {exc}"))
        return None


def _add(problems: list[Problem], problem: Problem) -> None:
    if problem not in problems:
        problems.append(problem)


def prepare(config: Config, plugins: PluginHost | None = None) -> tuple[list[PreparedPlan], list[Problem]]:
    """Every plan of ``config``, prepared; returns the plans and warnings.

    Raises :class:`ConfigError` listing every check whose options do not
    validate (or whose check type is not installed).
    """
    if plugins is None:
        from lvscheck.plugins import default_host

        plugins = default_host()
    errors: list[Problem] = []
    warnings: list[Problem] = []
    out: list[PreparedPlan] = []
    for plan in plans(config):
        check = connect = None
        if plan.spec is not None:
            check = prepare_spec(plugins, plan.virtual, plan.spec, config.source, errors, warnings)
        if plan.connect is not None:
            connect = prepare_spec(plugins, plan.virtual, plan.connect, config.source, errors, warnings)
        out.append(PreparedPlan(plan, check, connect))
    if errors:
        errors.sort(key=lambda p: p.line)
        raise ConfigError(str(errors[0]), tuple(str(p) for p in errors))
    return out, sorted(warnings, key=lambda p: p.line)
