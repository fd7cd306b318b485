"""``lvscheck sync-daemon start|stop|status``: the kernel's IPVS connection sync daemons.

``start master --interface eth0 --syncid 1`` on the active director and ``start
backup ...`` on the standby: what ``ipvsadm --start-daemon`` does, without
ipvsadm.  ``start`` and ``stop`` are idempotent (exit 0 when the daemon already
runs as asked, or is already stopped), so a cluster agent can call them blindly.
``status`` exits 0 when the daemon asked about runs, 7 when it does not (the OCF
"not running" code), 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "command_sync_daemon"]

EXIT_NOT_RUNNING = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "state",
        nargs="?",
        choices=("master", "backup"),
        help="master (the active director sends) or backup (the standby receives); status: both if omitted",
    )
    from lvscheck.cli.argtypes import InterfaceName, Number

    parser.add_argument(
        "--interface", type=InterfaceName(), metavar="IF", help="the interface the sync messages use (start)"
    )
    parser.add_argument(
        "--syncid",
        type=Number(int, 0, 255),
        default=0,
        metavar="N",
        help="sync id 0..255, the same on both directors (0)",
    )
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def command_sync_daemon(args: argparse.Namespace) -> int:
    from lvscheck.adapters.ipvs.syncd import SyncDaemons
    from lvscheck.errors import AdapterError

    if args.action != "status" and args.state is None:
        print(f"lvscheck sync-daemon {args.action}: say master or backup", file=sys.stderr)
        return 3
    if args.action == "start" and not args.interface:
        print("lvscheck sync-daemon start: --interface IF is required", file=sys.stderr)
        return 3
    try:
        with SyncDaemons() as daemons:
            if args.action == "start":
                started = daemons.start(args.state, args.interface, args.syncid)
                now = daemons.get(args.state)
                print(f"{'started' if started else 'already running'}: {now}")
                return 0
            if args.action == "stop":
                stopped = daemons.stop(args.state)
                print(f"{args.state} sync daemon {'stopped' if stopped else 'was not running'}")
                return 0
            running = [d for d in daemons.running() if args.state in (None, d.state)]
    except AdapterError as exc:
        print(f"lvscheck sync-daemon: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"state": d.state, "interface": d.interface, "syncid": d.syncid} for d in running]))
    else:
        for d in running:
            print(d)
        if not running:
            print(f"no {args.state or ''} sync daemon running".replace("  ", " "))
    return 0 if running else EXIT_NOT_RUNNING
