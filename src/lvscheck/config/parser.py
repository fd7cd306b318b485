"""Directives: each global and virtual-block line checked the way ldirectord checks it.

Every rule here mirrors ``read_config`` in ldirectord (see ldirectord.md §2 and
docs/config.md): the same directives, the same quoting rules, the first-digits
rule for numbers, exact ``yes``/``no``.  What ldirectord rejects is an error
(with a message that says what is accepted); what it accepts although it is
odd is accepted the same way and reported as a warning.  Nothing stops at the
first problem: every line is checked and all problems are reported together.

The rules live in :mod:`~lvscheck.config.global_section` (column 0),
:mod:`~lvscheck.config.block` (inside ``virtual=``), :mod:`~lvscheck.config.rules`
(values both share) and :mod:`~lvscheck.config.directives` (which names exist where).
"""

from __future__ import annotations

from lvscheck.config.block import parse_block
from lvscheck.config.global_section import parse_globals
from lvscheck.config.lexer import Lexed
from lvscheck.config.raw import RawConfig
from lvscheck.config.report import Report
from lvscheck.config.rules import Reader

__all__ = ["parse_lexed"]


def parse_lexed(lexed: Lexed, report: Report) -> RawConfig:
    """Every directive of ``lexed`` checked; problems go to ``report``."""
    reader = Reader(report)
    raw = RawConfig(lexed)
    parse_globals(reader, lexed, raw)
    for block in lexed.blocks:
        raw.virtuals.append(parse_block(reader, block))
    for entry in lexed.lvscheck:
        if entry.indented:  # resolve skips these
            report.error(
                entry.line,
                "#lvscheck",
                "an indented #lvscheck: line outside a virtual block (a blank line ends a block); "
                "write it at column 0 for settings of every virtual",
            )
    return raw
