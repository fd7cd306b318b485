"""Placeholder: the parser lands in the next commit."""

from __future__ import annotations

from lvscheck.config.model import Config
from lvscheck.errors import ConfigError


def load(path: str) -> Config:
    raise ConfigError(f"{path}: the ldirectord.cf parser is not available yet")


def parse(text: str, source: str) -> Config:
    raise ConfigError(f"{source}: the ldirectord.cf parser is not available yet")
