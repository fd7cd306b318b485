"""``lvscheck daemon --loop``: ``auto`` (the default) takes uvloop where it is installed, else asyncio."""

from __future__ import annotations

import importlib.util

import pytest

from lvscheck.cli import daemon


def test_auto_is_the_default_and_takes_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert daemon._loop_name("auto") == "uvloop"
    assert daemon._loop_name("asyncio") == "asyncio"  # an explicit choice stays


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvloop" else real(name))
    assert daemon._loop_name("auto") == "asyncio"


def test_the_flag_defaults_to_auto() -> None:
    import argparse

    parser, status = argparse.ArgumentParser(), argparse.ArgumentParser()
    daemon.add_arguments(parser, status)
    assert parser.parse_args(["--config", "x.cf"]).loop == "auto"
