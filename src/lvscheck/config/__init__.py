"""Reading ``ldirectord.cf``: the language ldirectord accepts, plus ``#lvscheck:`` lines.

::

    lexer.py    lines -> located logical lines (global / block / #lvscheck:), ldirectord's
                indentation, comment and blank-line rules
    parser.py   logical lines -> directives checked one by one (all problems collected)
    resolve.py  inheritance (timeouts, counts, quiescent, fallback), service inference,
                duplicates -> the typed model
    model.py    the typed model (Config, VirtualService, RealServer, ...) and check plans

Entry point: :func:`load_config`.  It raises :class:`~lvscheck.errors.ConfigError`
whose ``problems`` lists *every* problem found (``file:line: directive: message``);
a file with any error yields no model at all.
"""

from __future__ import annotations

from lvscheck.config.model import (
    CheckPlan,
    Config,
    Fallback,
    LvscheckSettings,
    Problem,
    RealServer,
    Settings,
    VirtualService,
    check_spec,
    plans,
)

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
    from lvscheck.config.parser import load

    return load(path)


def parse_text(text: str, source: str = "<text>") -> Config:
    """Like :func:`load_config` for text already in memory (``source`` names it in messages)."""
    from lvscheck.config.parser import parse

    return parse(text, source)
