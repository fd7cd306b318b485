"""The argparse side of the ``lvscheck`` command: the parser of every subcommand.

Kept apart from :mod:`lvscheck.cli` so that the common ``lvscheck run CHECK HOST k=v``
(started once per check by ldirectord) does not import argparse at all.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from lvscheck._version import __version__
from lvscheck.cli import EXIT_UNKNOWN
from lvscheck.cli.argtypes import NonEmpty, Number
from lvscheck.model import MAX_WEIGHT

__all__ = ["add_cpu_budget", "build_parser"]


def add_cpu_budget(parser: argparse.ArgumentParser) -> None:
    """``--check-cpu-budget SECONDS`` (``lvscheck run`` and ``lvscheck daemon``)."""
    parser.add_argument(
        "--check-cpu-budget",
        type=Number(float, 0, 3600),
        default=None,
        metavar="S",
        help="seconds of CPU one check may use before it is cut off and down (0.5; 0: no bound); "
        "a check's cpubudget= option wins",
    )


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter without ``import shutil`` (and its bz2/lzma/zlib) on every start.

    argparse builds a formatter for each ``add_argument`` and asks shutil for the
    terminal width; ``os.get_terminal_size`` answers the same question.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24) -> None:
        import os

        try:
            width = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                width = os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
            except (OSError, ValueError):
                width = 80
        super().__init__(prog, indent_increment, max_help_position, width=width - 2)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only="run"``, just the ``run`` subcommand.

    ``lvscheck run`` is started once per check by ldirectord, so it does not pay
    for building (and importing) every other subcommand's parser.
    """
    parser = _Parser(prog="lvscheck", description="Health checks for LVS/IPVS real servers.")
    parser.add_argument("--version", action="version", version=f"lvscheck {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log probes to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="check one real server once (Nagios plugin conventions)",
        description=(
            "Check one real server once.  Exit 0 up, 1 degraded, 2 down, 3 unknown "
            "(bad usage), and print one Nagios status line with perfdata."
        ),
    )
    run.add_argument("check", nargs="?", metavar="CHECK", help="check type, e.g. http, https, connect")
    run.add_argument("target", nargs="?", metavar="HOST[:PORT]", help="the real server")
    run.add_argument("options", nargs="*", metavar="key=value", help="check options (see `lvscheck checks`)")
    run.add_argument(
        "--config", type=NonEmpty(), metavar="FILE", help="run every check of an ldirectord.cf once"
    )
    run.add_argument(
        "-w",
        "--weight",
        type=Number(int, 0, MAX_WEIGHT),
        default=1,
        help="configured weight of a healthy real (default 1)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a status line")
    add_cpu_budget(run)
    run.add_argument(
        "--exit-codes",
        choices=("nagios", "misc-dynamic"),
        default="nagios",
        help="nagios (default): 0 up 1 degraded 2 down 3 unknown; "
        "misc-dynamic: keepalived MISC_CHECK misc_dynamic (0 up, 1 down, 2+N weight N)",
    )
    if only == "run":
        return parser

    checks = sub.add_parser("checks", help="list the installed check types and their options")
    checks.add_argument("name", nargs="?", type=NonEmpty(), help="show only this check type")
    checks.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("plugins", help="list the registered plugins as JSON")

    demo = sub.add_parser(
        "demo",
        help="start two local web servers, check them, stop one, and show its weight drop",
    )
    demo.add_argument(
        "--rounds", type=Number(int, 1, 1000), default=3, help="check rounds after the failure (default 3)"
    )

    from lvscheck.cli.check_config import add_arguments as check_config_arguments

    check_config_arguments(
        sub.add_parser(
            "check-config",
            help="validate an ldirectord.cf and summarise it (like nginx -t)",
            description="Validate an ldirectord.cf: print every error (exit 1) or a summary (exit 0).",
        )
    )

    from lvscheck.cli.daemon import add_arguments as daemon_arguments

    daemon_arguments(
        sub.add_parser("daemon", help="run an ldirectord.cf: check the reals and program IPVS"),
        sub.add_parser("status", help="show the running daemon's view of every real"),
    )

    from lvscheck.cli.operate import add_arguments as operate_arguments

    operate_arguments(sub)

    from lvscheck.cli.sync_daemon import add_arguments as sync_daemon_arguments

    sync_daemon_arguments(
        sub.add_parser("sync-daemon", help="start, stop or show the kernel's IPVS connection sync daemon")
    )
    return parser
