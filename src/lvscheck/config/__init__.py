"""Reading ``ldirectord.cf``: the language ldirectord accepts, plus ``#lvscheck:`` lines.

::

    Loading, one way: text -> lexer -> parser -> resolve -> Config (load.py runs the steps)
    load.py            read a file or text, run the steps below, raise ConfigError or return Config
    lexer.py           lines -> located logical lines (global / block / #lvscheck:), ldirectord's
                       indentation, comment and blank-line rules
    parser.py          logical lines -> directives checked one by one (all problems collected):
      global_section.py  column-0 directives
      block.py           directives inside virtual=/virtual6=
      rules.py           value rules both share (numbers, yes/no, quotes, e-mail, fallback)
      directives.py      which directives exist where; what to say about unknown ones
    raw.py             what the parser hands to resolve (checked values and their lines)
    resolve.py         addresses, inheritance (timeouts, counts, quiescent, fallback), service
                       inference, duplicate virtuals -> the typed model
      reals.py           real= lines: ranges, ports, flags, duplicates, the size bounds
      lvscheck_lines.py  #lvscheck: key=value lines
      semantics.py       warnings for what ldirectord accepts but does not do
    values.py          addresses, ports, port names, bounded numbers (no lookups)
    report.py          problems collected while reading (file:line: directive: message)

    The typed model
    model.py           Config, VirtualService, RealServer, Settings, ... (frozen dataclasses)
    services.py        ldirectord's check types, services, port <-> service table, defaults

    ldirectord -> lvscheck
    as_ldirectord.py   ldirectord's semantics: the check options the road sets (redirects,
                       whole body, TLS chain only, ...) and where lvscheck still differs
    translate.py       check_spec(), plans(), CheckPlan: what lvscheck runs for each real
    pools.py           plans -> IPVS services, their reals and checks (the daemon's layout)
    prepare.py         the one road: read() runs load.py's steps, validates every check
                       (each check type checks its options) and lays out the pools

Each module imports only those listed before it in its group (and the model); only this
package and prepare.py import load.py, so there is no import cycle
(tests/config/test_imports.py).

Entry point: :func:`load_config`.  It raises :class:`~lvscheck.errors.ConfigError`
whose ``problems`` lists *every* problem found (``file:line: directive: message``);
a file with any error yields no model at all.
"""

from __future__ import annotations

from lvscheck.config.model import (
    Config,
    Fallback,
    LvscheckSettings,
    Problem,
    RealServer,
    Settings,
    VirtualService,
)
from lvscheck.config.translate import CheckPlan, check_spec, plans

__all__ = [
    "CheckPlan",
    "Config",
    "Fallback",
    "LvscheckSettings",
    "Problem",
    "RealServer",
    "Settings",
    "VirtualService",
    "check_spec",
    "load_config",
    "parse_text",
    "plans",
]


def load_config(path: str) -> Config:
    """Read and validate the ldirectord.cf at ``path``.

    Raises :class:`~lvscheck.errors.ConfigError` listing every problem
    (``file:line: directive: message: what is accepted``) when the file cannot be
    read or has any error; warnings (accepted oddities) are in ``Config.warnings``.
    Host names are never resolved: literal IPs and ``localhost`` only.
    """
    from lvscheck.config.load import load

    return load(path)


def parse_text(text: str, source: str = "<text>") -> Config:
    """Like :func:`load_config` for text already in memory (``source`` names it in messages)."""
    from lvscheck.config.load import parse

    return parse(text, source)
