"""Turning a Config into plain JSON data, for golden files and comparisons."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lvscheck.config import Config, plans


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def dump(config: Config) -> dict[str, Any]:
    """The model (minus warnings and source) and the check plan of every real."""
    data = plain(config)
    del data["warnings"], data["source"]
    data["plans"] = [
        {
            "virtual": p.virtual.name,
            "real": p.real.address,
            "check": p.spec.check if p.spec else None,
            "options": dict(p.spec.options) if p.spec else None,
            "fixed": p.fixed.value if p.fixed else None,
            "combined": p.combined,
            "unsupported": p.unsupported,
        }
        for p in plans(config)
    ]
    return data
