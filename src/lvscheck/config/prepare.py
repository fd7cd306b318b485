"""The one road from an ldirectord.cf to prepared pools, taken by every command.

``lvscheck check-config``, ``lvscheck run --config``, ``lvscheck daemon`` (start,
``--check`` and every reload) and ``lvscheck-ldirectord`` all call :func:`read`
(or :func:`prepare` for a config already parsed), so ``check-config``'s verdict
on a file is, by construction, the daemon's.

One pass finds every problem of a file: the parser goes on past errors (a
virtual that does not parse is left out of the model, the rest is kept), then
every check of what remains is validated by its check type, then the pools are
laid out.  Errors and warnings all carry ``file:line``:

* **errors** (the file is refused, nothing of it runs): syntax, values,
  regexes, duplicate virtuals, check options a check type rejects, check types
  that are not installed;
* **warnings** (the file runs): ldirectord oddities, where lvscheck decides
  otherwise than ldirectord (:mod:`lvscheck.config.as_ldirectord`), options a check type has no
  use for, duplicate reals (the first is used), and what lvscheck cannot do
  (``external-perl``, ``fork``, ``supervised``, ``execute``).

:func:`prepare_spec` validates one check spec the same way (the ldirectord
adapter uses it for the single real ldirectord asks about).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from lvscheck.config.as_ldirectord import ROAD_OPTIONS, differences
from lvscheck.config.model import Config, Problem, VirtualService
from lvscheck.config.pools import Layout, build_layout
from lvscheck.config.translate import CheckPlan, plans
from lvscheck.config.via import problems as via_problems
from lvscheck.errors import ConfigError, UsageError
from lvscheck.model import CheckSpec

if TYPE_CHECKING:
    from lvscheck.plugin.check import Check
    from lvscheck.plugins import PluginHost

__all__ = ["Prepared", "PreparedPlan", "prepare", "prepare_spec", "read", "refusal"]

#: Options check_spec() adds on its own; silently dropped when a check type has no use for them.
_DERIVED = frozenset({"checktimeout", "negotiatetimeout", "checkport", "protocol"}) | ROAD_OPTIONS


@dataclass(frozen=True, slots=True)
class PreparedPlan:
    """A :class:`CheckPlan` with its checks validated and ready to run."""

    plan: CheckPlan
    check: Check | None
    connect: Check | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A file that can run: its model, its checks, its pools and what is worth a warning."""

    config: Config
    plans: tuple[PreparedPlan, ...]
    layout: Layout
    warnings: tuple[Problem, ...]

    def checks(self) -> dict[str, tuple[Check | None, Check | None]]:
        """The prepared checks of every managed real, by slot id."""
        by_plan = {id(p.plan): (p.check, p.connect) for p in self.plans}
        return {sid: by_plan.get(id(slot.plan), (None, None)) for sid, slot in self.layout.slots.items()}


def read(
    path: str, plugins: PluginHost | None = None, *, syntax_only: bool = False, via_marks: bool = True
) -> Prepared:
    """Read, validate and lay out the ldirectord.cf at ``path``.

    Raises :class:`ConfigError` whose ``problems`` lists every error of the file
    and whose ``warnings`` lists every warning found on the way.  With
    ``syntax_only`` the check types are not loaded (their options are not checked).
    ``via_marks=False``: no daemon runs beside to keep the private services of
    ``via=vip``, so its reals are checked on their own address (:func:`~lvscheck.config.translate.plans`).
    """
    from lvscheck.config.load import parse_partial, read_text

    config, report = parse_partial(read_text(path), path)
    return _finish(config, list(report.errors), plugins, syntax_only, via_marks)


def prepare(config: Config, plugins: PluginHost | None = None, *, syntax_only: bool = False) -> Prepared:
    """Like :func:`read` for a config already parsed (and so without syntax errors)."""
    return _finish(config, [], plugins, syntax_only)


def _finish(
    config: Config,
    errors: list[Problem],
    plugins: PluginHost | None,
    syntax_only: bool,
    via_marks: bool = True,
) -> Prepared:
    warnings = list(config.warnings)
    warnings.extend(differences(config))  # where lvscheck decides otherwise than ldirectord would
    all_plans = plans(config, via_marks=via_marks)
    via_errors, via_warnings = via_problems(config, all_plans)
    errors += via_errors
    warnings += via_warnings
    prepared: list[PreparedPlan] = []
    if syntax_only:
        prepared = [PreparedPlan(plan, None) for plan in all_plans]
    else:
        if plugins is None:
            from lvscheck.plugins import default_host

            plugins = default_host()
        for plan in all_plans:
            check = connect = None
            if plan.spec is not None:
                check = prepare_spec(plugins, plan.virtual, plan.spec, config.source, errors, warnings)
            if plan.connect is not None:
                connect = prepare_spec(plugins, plan.virtual, plan.connect, config.source, errors, warnings)
            prepared.append(PreparedPlan(plan, check, connect))
    layout = build_layout(config, all_plans, warnings)
    ordered = tuple(sorted(_unique(warnings), key=lambda p: p.line))
    if errors:
        raise refusal(config.source, sorted(_unique(errors), key=lambda p: p.line), ordered)
    return Prepared(config, tuple(prepared), layout, ordered)


def refusal(source: str, errors: list[Problem], warnings: tuple[Problem, ...] = ()) -> ConfigError:
    """The ConfigError that refuses ``source``: every error, and the warnings found beside them."""
    count = len(errors)
    first = str(errors[0])
    message = f"{source}: {count} errors; the first: {first}" if count > 1 else first
    return ConfigError(message, tuple(str(p) for p in errors), tuple(str(w) for w in warnings))


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


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
    """Validate one spec; problems and warnings are appended instead of raised.

    The check type gets only the options it accepts, and every ``#lvscheck:``
    option as written (so a misspelt one is an error); an ldirectord directive
    the check type has no use for is dropped with a warning, as ldirectord
    ignores it for that service.
    """
    try:
        cls = plugins.check_type(spec.check)
    except UsageError as exc:
        line, directive = _line_of(virtual, f"check={spec.check}")
        problems.append(Problem(file, line, directive, f"{virtual.name}: {exc}"))
        return None
    accepted = {o.name for o in cls.all_options()}
    written = virtual.lvscheck.options
    options = {k: v for k, v in spec.options.items() if k in accepted or k in written}
    for name in sorted(spec.options.keys() - options.keys() - _DERIVED):
        line = virtual.lines.get(name, virtual.line)
        message = f"lvscheck's {spec.check} check has no option {name}: ignored"
        warnings.append(Problem(file, line, name, message))
    # A check type stops at the first bad option: take it out and ask again, so one pass
    # names every bad option of a virtual (bounded: one more try per option).
    for _ in range(len(options) + 1):
        try:
            return plugins.prepare(CheckSpec(spec.check, spec.target, MappingProxyType(options)))
        except UsageError as exc:
            line, directive = _line_of(virtual, str(exc))
            problems.append(Problem(file, line, directive, f"{virtual.name}: {exc}"))
            named = _named_option(str(exc))
            if named not in options:
                return None
            del options[named]
    return None


def _named_option(message: str) -> str | None:
    m = re.search(r"option '?([a-z_]+)'?", message)
    return m[1] if m else None
