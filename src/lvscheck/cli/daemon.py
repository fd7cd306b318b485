"""``lvscheck daemon --config FILE`` and ``lvscheck status``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["DEFAULT_CONTROL", "add_arguments", "command_daemon", "command_status"]

DEFAULT_CONTROL = "/run/lvscheck/lvscheck.sock"

log = logging.getLogger("lvscheck.daemon")


def add_arguments(daemon: argparse.ArgumentParser, status: argparse.ArgumentParser) -> None:
    daemon.add_argument("--config", required=True, metavar="FILE", help="the ldirectord.cf to run")
    daemon.add_argument(
        "--ipvs",
        choices=("netlink", "none"),
        default="netlink",
        help="netlink (default): program the kernel IPVS table; none: run the checks, write nothing",
    )
    daemon.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH", help="status socket")
    daemon.add_argument("--metrics", metavar="[HOST:]PORT", help="serve Prometheus metrics (127.0.0.1)")
    daemon.add_argument("--event-log", metavar="FILE", help="append one JSON line per event")
    daemon.add_argument("--notify-command", metavar="CMD", help="run CMD EVENT VIRTUAL REAL on transitions")
    daemon.add_argument(
        "--smtp",
        metavar="HOST[:PORT]",
        help="relay for alert mail (emailalert=); overrides smtp= of the config",
    )
    daemon.add_argument("--pid-file", metavar="FILE", help="write the daemon's pid here")
    daemon.add_argument(
        "--reconcile", type=float, default=10.0, metavar="S", help="re-read the kernel table every S s (10)"
    )
    daemon.add_argument("--max-in-flight", type=int, default=512, help="checks in flight in total (512)")
    daemon.add_argument("--per-host", type=int, default=8, help="checks in flight per real host (8)")
    daemon.add_argument(
        "--behind",
        type=float,
        default=1.0,
        metavar="S",
        help="a check that starts S s late cannot take a real out (1.0)",
    )
    daemon.add_argument(
        "--check",
        action="store_true",
        help="only read the config and prepare every check; exit 0, or 3 on errors",
    )
    daemon.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop: uvloop (pip install 'lvscheck[daemon]') costs less CPU per check",
    )
    daemon.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    daemon.add_argument(
        "--logfile",
        metavar="PATH|FACILITY|none",
        help="log also here, overriding the config's logfile= (default: the config's, as ldirectord)",
    )
    status.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH", help="the daemon's socket")
    status.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    status.add_argument("--reload", action="store_true", help="ask the daemon to reload its config")


def command_daemon(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from lvscheck.daemon.director import Director, DirectorOptions
    from lvscheck.daemon.events import EventSink
    from lvscheck.daemon.sdnotify import notify
    from lvscheck.engine import Engine
    from lvscheck.errors import AdapterError, ConfigError

    if args.ipvs == "none" or args.check:
        from lvscheck.adapters.ipvs.table import MemoryIPVS

        backend: Any = MemoryIPVS()
    else:
        from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

        try:
            backend = NetlinkIPVS()
        except AdapterError as exc:
            print(f"lvscheck daemon: {exc}", file=sys.stderr)
            return 1
    from lvscheck.daemon.logfile import LogTarget

    director = Director(
        args.config,
        backend,
        engine=Engine(max_in_flight=args.max_in_flight, per_host=args.per_host),
        events=EventSink(args.event_log, args.notify_command, smtp=args.smtp),
        options=DirectorOptions(reconcile=args.reconcile, behind=args.behind),
        notify=notify,
        logfile=LogTarget("none" if args.check else args.logfile),
    )
    try:
        director.load_initial()  # the one road: the same verdict as `lvscheck check-config`
    except ConfigError as exc:
        for warning in exc.warnings:
            print(f"lvscheck daemon: [warn] {warning}", file=sys.stderr)
        for problem in exc.problems:
            print(f"lvscheck daemon: [error] {problem}", file=sys.stderr)
        return 3
    if args.check:
        layout = director.prepared.layout
        print(f"{args.config}: ok: {len(layout.pools)} virtual services, {layout.reals} real servers")
        return 0
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    runner: Any = asyncio.run
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print(
                "lvscheck daemon: --loop uvloop needs uvloop: pip install 'lvscheck[daemon]'", file=sys.stderr
            )
            return 3
        runner = uvloop.run
    try:
        runner(_main(director, args))
    except AdapterError as exc:
        print(f"lvscheck daemon: {exc}", file=sys.stderr)
        return 1
    finally:
        backend.close()
        director.events.close()
        if args.pid_file:
            with contextlib.suppress(OSError):
                os.unlink(args.pid_file)
    return 0


async def _main(director: Any, args: argparse.Namespace) -> None:
    from lvscheck.daemon.control import serve_control, serve_metrics
    from lvscheck.daemon.sdnotify import notify, watchdog_interval

    director.install_signal_handlers()
    servers = []
    if args.control:
        os.makedirs(os.path.dirname(args.control) or ".", exist_ok=True)
        servers.append(await serve_control(director, args.control))
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        servers.append(await serve_metrics(director, host or "127.0.0.1", int(port)))
    every = watchdog_interval()
    dog = None
    if every:

        async def watchdog() -> None:
            while True:
                notify("WATCHDOG=1")
                await asyncio.sleep(every)

        dog = asyncio.get_running_loop().create_task(watchdog())
    try:
        await director.run()
    finally:
        if dog is not None:
            dog.cancel()
        for server in servers:
            server.close()
        if args.control:
            with contextlib.suppress(OSError):
                os.unlink(args.control)


def command_status(args: argparse.Namespace) -> int:
    from lvscheck.daemon.control import query

    try:
        answer = query(args.control, "reload" if args.reload else "status")
    except (OSError, ValueError) as exc:
        print(f"lvscheck status: no daemon answers on {args.control}: {exc}", file=sys.stderr)
        return 3
    if args.reload and not args.json:
        if answer.get("reloaded"):
            print(f"lvscheck status: {answer.get('config', 'the config')} reloaded")
            return 0
        problems = answer.get("problems") or [answer.get("error", "refused")]
        print("lvscheck status: reload refused, the running config stays:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.json or args.reload:
        print(json.dumps(answer, indent=2, default=str))
        return 0 if not args.reload or answer.get("reloaded") else 1
    lag = answer["start_lag"]
    print(
        f"lvscheck daemon pid {answer['pid']} {answer['state']}, config {answer['config']}, "
        f"ipvs {answer['ipvs']}, {answer['checks']} checks, start lag p50 {lag['p50'] * 1000:.1f} ms "
        f"p99 {lag['p99'] * 1000:.1f} ms, IPVS write errors {answer['ipvs_write_errors']}"
    )
    now = time.time()
    for v in answer["virtuals"]:
        flags = []
        if not v["in_kernel"]:
            flags.append("NOT IN KERNEL")
        if v["guarded"]:
            flags.append("GUARDED")
        if v["fallback_active"]:
            flags.append(f"fallback {v['fallback']} active")
        print(f"\n{v['virtual']} ({v['service']} {v['scheduler']}){'  ' + ', '.join(flags) if flags else ''}")
        print(f"  {'real':<24} {'state':<8} {'weight':>6} {'kernel':>6} {'last':>7} {'latency':>9}  reason")
        for r in v["reals"]:
            kw = "-" if r["kernel_weight"] is None else str(r["kernel_weight"])
            last = "-" if r["last_check"] is None else f"{now - r['last_check']:.1f}s"
            lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}ms"
            state = r["state"] + (f"({r['streak']})" if r["streak"] else "")
            reason = r["reason"] or (f"fixed {r['fixed']}" if r["fixed"] else "")
            if r.get("maintenance"):
                reason = f"MAINTENANCE ({r['maintenance']}); last check: {reason}"
            weight = r["configured_weight"]
            print(f"  {r['real']:<24} {state:<8} {weight:>6} {kw:>6} {last:>7} {lat:>9}  {reason}")
    return 0
