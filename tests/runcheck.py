"""One check of one target through lvscheck's public API: the ``check`` fixture of tests/conftest.py."""

from __future__ import annotations

import time

import lvscheck
from lvscheck.model import CheckSpec, Result, Target

__all__ = ["Checks"]


class Checks:
    """``check(kind, port, host=, weight=, **options)``: one check of one target, run to its Result."""

    def __init__(self, weight: int = 1) -> None:
        self.weight = weight

    def __call__(
        self,
        kind: str,
        port: int | None = None,
        /,
        *,
        host: str = "127.0.0.1",
        weight: int | None = None,
        **options: object,
    ) -> Result:
        """Options are given as an operator writes them: each value is passed on as its text."""
        target = Target(host, port, weight=self.weight if weight is None else weight)
        texts = {name: value if isinstance(value, str) else str(value) for name, value in options.items()}
        [result] = lvscheck.run_checks([CheckSpec(kind, target, texts)])
        return result

    def timed(self, kind: str, port: int | None = None, /, **options: object) -> tuple[Result, float]:
        """The Result and the seconds the check took."""
        started = time.monotonic()
        result = self(kind, port, **options)  # type: ignore[arg-type]
        return result, time.monotonic() - started

    def weighted(self, weight: int) -> Checks:
        """The same, for reals whose configured weight is ``weight``."""
        return Checks(weight)
