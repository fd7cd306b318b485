"""What the parser hands to resolve: each directive's checked value and its line.

Values are already checked one by one (see :mod:`lvscheck.config.parser`); what
needs the whole file (addresses, reals, inheritance, duplicates) is left to
:mod:`lvscheck.config.resolve`.  Plain slotted classes: internal, and cheaper to
define at import time than dataclasses.
"""

from __future__ import annotations

from typing import Any

from lvscheck.config.lexer import Block, Lexed

__all__ = ["RawConfig", "RawFallback", "RawVirtual"]


class RawFallback:
    __slots__ = ("forwarding", "line", "port", "server")

    def __init__(self, server: str, port: str | None, forwarding: str, line: int) -> None:
        self.server = server
        self.port = port
        self.forwarding = forwarding
        self.line = line


class RawVirtual:
    __slots__ = ("block", "lines", "reals", "values")

    def __init__(self, block: Block) -> None:
        self.block = block
        self.values: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.reals: list[tuple[str, int]] = []  # (text after "real=", line)

    def store(self, key: str, value: Any, line: int) -> None:
        """Keep ``value`` for ``key``: the last one written wins, as in ldirectord."""
        self.values[key] = value
        self.lines[key] = line


class RawConfig:
    __slots__ = ("lexed", "lines", "values", "virtuals")

    def __init__(self, lexed: Lexed) -> None:
        self.lexed = lexed
        self.values: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.virtuals: list[RawVirtual] = []

    def store(self, key: str, value: Any, line: int) -> None:
        """Keep ``value`` for ``key``: the last one written wins, as in ldirectord."""
        self.values[key] = value
        self.lines[key] = line
