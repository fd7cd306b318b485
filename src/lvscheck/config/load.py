"""Reading a config one way: text -> lexer -> parser -> resolve -> :class:`Config` or ConfigError.

Each step only uses the ones before it: :mod:`~lvscheck.config.lexer` cuts lines,
:mod:`~lvscheck.config.parser` checks each directive, :mod:`~lvscheck.config.resolve`
builds the model; every step reports to the same :class:`~lvscheck.config.report.Report`,
so a file's problems all come out at once.
"""

from __future__ import annotations

from lvscheck.config.lexer import lex
from lvscheck.config.model import Config
from lvscheck.config.parser import parse_lexed
from lvscheck.config.report import Report
from lvscheck.config.resolve import build
from lvscheck.errors import ConfigError

__all__ = ["load", "parse"]


def parse(text: str, source: str) -> Config:
    """Parse ``text`` (named ``source`` in messages) into a :class:`Config` or raise ConfigError."""
    report = Report(source)
    raw = parse_lexed(lex(text), report)
    config = build(raw, report)
    report.raise_if_errors()
    return config


def load(path: str) -> Config:
    """Read the file at ``path`` and :func:`parse` it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: a binary file, not an ldirectord.cf")
    return parse(data.decode("utf-8", "surrogateescape"), path)
