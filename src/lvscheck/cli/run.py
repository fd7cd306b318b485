"""``lvscheck run``: one check of one real server, or one round of a whole config."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from lvscheck.errors import OptionError, UsageError

if TYPE_CHECKING:
    import argparse

__all__ = ["command_run", "cpu_budget", "parse_options"]


def cpu_budget(args: argparse.Namespace) -> float | None:
    """``--check-cpu-budget``: the engine's CPU budget per check (0: none; not given: the default)."""
    from lvscheck.engine import CPU_BUDGET

    given: float | None = getattr(args, "check_cpu_budget", None)
    if given is None:
        return CPU_BUDGET
    return given or None


def parse_options(words: list[str]) -> dict[str, str]:
    """``key=value`` words into a dict; a word without '=' is an error naming it."""
    options: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise OptionError(f"option {word!r} is not key=value (for example receive='Still alive')")
        options[key.strip().lower()] = value
    return options


def command_run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    if args.config:
        if args.check or args.target:
            raise UsageError("give either --config FILE or CHECK HOST[:PORT], not both")
        from lvscheck.cli.run_config import command_run_config

        return command_run_config(args)
    if not args.check or not args.target:
        raise UsageError("usage: lvscheck run CHECK HOST[:PORT] [key=value ...]  (see `lvscheck checks`)")
    from lvscheck.cli.output import misc_dynamic_exit, nagios_exit, nagios_line, to_json
    from lvscheck.cli.target import parse_hostport
    from lvscheck.engine import Engine
    from lvscheck.model import MAX_WEIGHT, CheckSpec, Target

    host, port = parse_hostport(args.target)
    if not 0 <= args.weight <= MAX_WEIGHT:
        raise UsageError(f"--weight {args.weight}: expected 0..{MAX_WEIGHT}")
    spec = CheckSpec(args.check, Target(host, port, weight=args.weight), parse_options(args.options))

    budget = cpu_budget(args)

    async def one() -> object:
        engine = Engine(cpu_budget=budget)
        return await engine.run(engine.prepare(spec))

    result = asyncio.run(one())
    from lvscheck.model import Result

    assert isinstance(result, Result)
    print(to_json(result) if args.json else nagios_line(result))
    sys.stdout.flush()
    return misc_dynamic_exit(result) if args.exit_codes == "misc-dynamic" else nagios_exit(result)
