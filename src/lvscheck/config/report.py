"""Collecting errors and warnings while reading a config, so all are reported at once."""

from __future__ import annotations

from lvscheck.config.model import Problem
from lvscheck.errors import ConfigError

__all__ = ["Report"]


class Report:
    """Problems found so far in one file.  :meth:`raise_if_errors` ends the reading."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, line: int, directive: str, message: str) -> None:
        self.errors.append(Problem(self.file, line, directive, message))

    def warn(self, line: int, directive: str, message: str) -> None:
        self.warnings.append(Problem(self.file, line, directive, message))

    def raise_if_errors(self) -> None:
        if not self.errors:
            return
        errors = sorted(self.errors, key=lambda p: p.line)
        count = len(errors)
        summary = f"{self.file}: {count} error{'s' if count > 1 else ''}"
        raise ConfigError(
            f"{summary}; the first: {errors[0]}" if count > 1 else str(errors[0]),
            tuple(str(p) for p in errors),
        )
