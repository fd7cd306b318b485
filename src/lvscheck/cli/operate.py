"""``lvscheck drain|undrain VIRTUAL REAL`` and ``lvscheck maintenance on|off REAL``.

Clients of the daemon's control socket: the daemon checks the names against its
config, keeps the decision in its state directory (a restart keeps it) and logs
who asked.  Exit 0 done (or already so), 1 refused, 3 no daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_arguments", "command_operate"]


def add_arguments(sub: Any) -> None:
    from lvscheck.cli.argtypes import NonEmpty
    from lvscheck.cli.daemon import DEFAULT_CONTROL

    for name, help_ in (
        ("drain", "weight 0 for one real of one virtual (entry kept, connections finish)"),
        ("undrain", "give a drained real its weight back"),
    ):
        p = sub.add_parser(name, help=help_, description=help_ + "; kept across reload and restart.")
        p.add_argument(
            "virtual",
            metavar="VIRTUAL",
            type=NonEmpty(),
            help="as `lvscheck status` shows it, e.g. 10.0.0.1:80",
        )
        p.add_argument(
            "real",
            metavar="REAL",
            type=NonEmpty(),
            help="IP:PORT (or IP when the virtual has one real there)",
        )
        p.add_argument(
            "--control", default=DEFAULT_CONTROL, type=NonEmpty(), metavar="PATH", help="the daemon's socket"
        )
    m = sub.add_parser(
        "maintenance",
        help="take a real out of every virtual whatever its checks say (as maintenancedir)",
        description="Take a real out regardless of checks, in every virtual it serves; "
        "kept across reload and restart.",
    )
    m.add_argument("switch", choices=("on", "off"))
    m.add_argument("real", metavar="REAL", type=NonEmpty(), help="IP:PORT, or IP for every port of that host")
    m.add_argument(
        "--control", default=DEFAULT_CONTROL, type=NonEmpty(), metavar="PATH", help="the daemon's socket"
    )


def command_operate(args: argparse.Namespace) -> int:
    from lvscheck.daemon.control import query

    if args.command == "maintenance":
        request = {"action": "maintenance", "on": args.switch == "on", "real": args.real}
    else:
        request = {"action": args.command, "virtual": args.virtual, "real": args.real}
    try:
        answer = query(args.control, json.dumps(request))
    except PermissionError as exc:
        print(
            f"lvscheck {args.command}: {args.control}: {exc.strerror}: root or the control group only",
            file=sys.stderr,
        )
        return 3
    except (OSError, ValueError) as exc:
        print(f"lvscheck {args.command}: no daemon answers on {args.control}: {exc}", file=sys.stderr)
        return 3
    if "error" in answer:
        print(f"lvscheck {args.command}: {answer['error']}", file=sys.stderr)
        return 1
    what = " ".join(str(answer[k]) for k in ("virtual", "real") if k in answer)
    switch = getattr(args, "switch", "")
    done = {"drain": "drained", "undrain": "undrained"}.get(args.command, f"maintenance {switch}")
    print(f"{what}: {done}" + ("" if answer.get("changed") else " (it already was)"))
    return 0
