"""The ``lvscheck`` command.  argparse, and each subcommand imports what it needs itself."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

__all__ = ["EXIT_UNKNOWN", "main"]

#: Nagios "UNKNOWN": bad usage, bad options, a config that cannot be used.
EXIT_UNKNOWN = 3


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line (argparse); with ``only="run"``, just the ``run`` subcommand."""
    from lvscheck.cli.parser import build_parser as build

    return build(only)


#: ``lvscheck run`` flags the fast path understands, and the values --exit-codes takes.
_EXIT_CODES = ("nagios", "misc-dynamic")


def _fast_run_args(words: Sequence[str]) -> Any:
    """The parsed arguments of a plain ``lvscheck [-v] run CHECK HOST[:PORT] k=v ... [flags]``.

    ``None`` for anything else (help, ``--config``, abbreviations, errors): argparse then
    parses the words and gives its usual answers.  The result has the same attributes
    argparse would set.  This is start-up time: argparse and its parser cost about 3 ms
    of the ~12 ms that ``lvscheck run`` adds to a bare ``python -c "import asyncio, ssl"``.
    """
    from types import SimpleNamespace

    args = SimpleNamespace(
        command="run",
        verbose=False,
        check=None,
        target=None,
        options=[],
        config=None,
        weight=1,
        json=False,
        exit_codes="nagios",
        check_cpu_budget=None,  # (--check-cpu-budget: argparse's road)
    )
    i = 0
    while i < len(words) and words[i] in ("-v", "--verbose"):
        args.verbose = True
        i += 1
    if i >= len(words) or words[i] != "run":
        return None
    positionals: list[str] = []
    flag_after_positionals = False
    rest = list(words[i + 1 :])
    while rest:
        word = rest.pop(0)
        if not word.startswith("-"):
            if flag_after_positionals:
                return None  # argparse: "unrecognized arguments"
            positionals.append(word)
            continue
        if positionals:
            flag_after_positionals = True
        name, eq, value = word.partition("=")
        if word == "--json":
            args.json = True
        elif name in ("-w", "--weight"):
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if not value.isdigit():
                return None
            args.weight = int(value)
        elif name == "--exit-codes":
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if value not in _EXIT_CODES:
                return None
            args.exit_codes = value
        else:
            return None
    if len(positionals) < 2:
        return None
    args.check, args.target, args.options = positionals[0], positionals[1], positionals[2:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), None)
    args = _fast_run_args(words) if command == "run" else None
    parser = None
    if args is None:
        parser = build_parser(only="run" if command == "run" else None)
        args = parser.parse_args(words)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    from lvscheck.errors import PluginError, UsageError

    try:
        code = _dispatch(args, parser)
        sys.stdout.flush()  # here, so that a closed pipe is seen below and not at exit
        return code
    except (UsageError, PluginError) as exc:  # a broken plugin is the installation's problem: no traceback
        print(f"lvscheck: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``lvscheck checks | head -1``): it had what it wanted, so stop
        # quietly and successfully, as ``status --watch`` does (cli/status_view.py).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: Any, parser: argparse.ArgumentParser | None) -> int:
    """Run the subcommand ``args.command``; its exit status."""
    if args.command == "run":
        from lvscheck.cli.run import command_run

        return command_run(args, parser)
    if args.command == "checks":
        from lvscheck.cli.listing import command_checks

        return command_checks(args)
    if args.command == "plugins":
        from lvscheck.cli.listing import command_plugins

        return command_plugins()
    if args.command == "demo":
        from lvscheck.cli.demo import command_demo

        return command_demo(args)
    if args.command == "check-config":
        from lvscheck.cli.check_config import command_check_config

        return command_check_config(args)
    if args.command == "daemon":
        from lvscheck.cli.daemon import command_daemon

        return command_daemon(args)
    if args.command == "status":
        from lvscheck.cli.daemon import command_status

        return command_status(args)
    if args.command in ("drain", "undrain", "maintenance"):
        from lvscheck.cli.operate import command_operate

        return command_operate(args)
    if args.command == "sync-daemon":
        from lvscheck.cli.sync_daemon import command_sync_daemon

        return command_sync_daemon(args)
    if parser is not None:
        parser.print_help()
    return EXIT_UNKNOWN
