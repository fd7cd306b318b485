"""``lvscheck run --config FILE``: one round of every check in an ldirectord.cf."""

from __future__ import annotations

import argparse

from lvscheck.errors import UsageError


def command_run_config(args: argparse.Namespace) -> int:
    raise UsageError(f"--config {args.config}: reading ldirectord.cf is not available yet")
