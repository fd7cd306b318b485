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

__all__ = ["load", "parse", "parse_partial", "read_text"]


def parse(text: str, source: str) -> Config:
    """Parse ``text`` (named ``source`` in messages) into a :class:`Config` or raise ConfigError."""
    config, report = parse_partial(text, source)
    report.raise_if_errors()
    return config


def parse_partial(text: str, source: str) -> tuple[Config, Report]:
    """Parse ``text`` as far as it goes: the model of what is valid, and every problem found.

    The model leaves out what has errors (a virtual whose header is bad, a real that
    does not parse); :mod:`lvscheck.config.prepare` goes on with it so one run reports
    every problem of a file (syntax, values, check options, duplicates) at once.
    """
    report = Report(source)
    raw = parse_lexed(lex(text), report)
    return build(raw, report), report


def read_text(path: str) -> str:
    """The text of the file at ``path``; ConfigError when it cannot be read or is binary."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: a binary file, not an ldirectord.cf")
    return data.decode("utf-8", "surrogateescape")


def load(path: str) -> Config:
    """Read the file at ``path`` and :func:`parse` it."""
    return parse(read_text(path), path)
