"""``lvscheck daemon --config FILE`` and ``lvscheck status``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
from typing import Any

__all__ = ["DEFAULT_CONTROL", "add_arguments", "command_daemon", "command_status"]

DEFAULT_CONTROL = "/run/lvscheck/lvscheck.sock"
DEFAULT_STATE_DIR = "/var/lib/lvscheck"

log = logging.getLogger("lvscheck.daemon")


def add_arguments(daemon: argparse.ArgumentParser, status: argparse.ArgumentParser) -> None:
    from lvscheck.cli.argtypes import (
        Directory,
        Executable,
        ExistingFile,
        FileToWrite,
        GroupName,
        ListenAddress,
        LogDestination,
        NonEmpty,
        Number,
        RelayAddress,
    )

    daemon.add_argument(
        "--config", required=True, type=NonEmpty(), metavar="FILE", help="the ldirectord.cf to run"
    )
    daemon.add_argument(
        "--ipvs",
        choices=("netlink", "none"),
        default="netlink",
        help="netlink (default): program the kernel IPVS table; none: run the checks, write nothing",
    )
    daemon.add_argument(
        "--control",
        default=DEFAULT_CONTROL,
        type=FileToWrite(socket=True, made_by_lvscheck=DEFAULT_CONTROL, off=True),
        metavar="PATH",
        help="status socket ('': none)",
    )
    daemon.add_argument(
        "--metrics",
        type=ListenAddress(),
        metavar="[HOST:]PORT",
        help="serve the status page, /status.json and Prometheus /metrics (127.0.0.1)",
    )
    daemon.add_argument(
        "--control-group",
        type=GroupName(),
        metavar="GROUP",
        help="members of GROUP may use the control socket too (mode 0660; default: root only)",
    )
    daemon.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        type=Directory(),
        metavar="DIR",
        help=f"where drained reals and reals in maintenance are kept ({DEFAULT_STATE_DIR})",
    )
    daemon.add_argument(
        "--http-tokens",
        type=ExistingFile(),
        metavar="FILE",
        help="lines 'NAME TOKEN': allows POST /action with that bearer token (default: HTTP is read-only)",
    )
    daemon.add_argument(
        "--event-log", type=FileToWrite(), metavar="FILE", help="append one JSON line per event"
    )
    daemon.add_argument(
        "--notify-command",
        type=Executable(),
        metavar="CMD",
        help="run CMD EVENT VIRTUAL REAL on transitions",
    )
    daemon.add_argument(
        "--smtp",
        type=RelayAddress(),
        metavar="HOST[:PORT]",
        help="relay for alert mail (emailalert=); overrides smtp= of the config",
    )
    daemon.add_argument("--pid-file", type=FileToWrite(), metavar="FILE", help="write the daemon's pid here")
    daemon.add_argument(
        "--ready-file",
        type=FileToWrite(),
        metavar="FILE",
        help="create FILE once every real is decided and the table is written (removed at exit)",
    )
    daemon.add_argument(
        "--reconcile",
        type=Number(float, 0, 86400),
        default=10.0,
        metavar="S",
        help="re-read the kernel table every S s; 0: never (10)",
    )
    daemon.add_argument(
        "--max-in-flight", type=Number(int, 1, 1_000_000), default=512, help="checks in flight in total (512)"
    )
    daemon.add_argument(
        "--per-host", type=Number(int, 1, 100_000), default=8, help="checks in flight per real host (8)"
    )
    from lvscheck.cli.parser import add_cpu_budget

    add_cpu_budget(daemon)
    daemon.add_argument(
        "--behind",
        type=Number(float, 0.01, 3600),
        default=1.0,
        metavar="S",
        help="a check that starts S s late cannot take a real out (1.0)",
    )
    daemon.add_argument(
        "--shadow",
        action="store_true",
        help="beside a live ldirectord on the same file: check, write nothing, and report every real "
        "whose kernel entry (ldirectord's decision) differs from lvscheck's for longer than a check "
        "interval (compared every --reconcile s)",
    )
    daemon.add_argument(
        "--check",
        action="store_true",
        help="only read the config and prepare every check; exit 0, or 3 on errors",
    )
    daemon.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop; auto (default): uvloop where it is installed (pip install 'lvscheck[daemon]'), "
        "it costs less CPU per check; else asyncio",
    )
    daemon.add_argument(
        "--workers",
        type=Number(int, 0, 256),
        default=1,
        metavar="N",
        help="check worker processes (1: every check in the daemon's own loop; 0: one per core it may use)",
    )
    daemon.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    daemon.add_argument(
        "--logfile",
        type=LogDestination(),
        metavar="PATH|FACILITY|none",
        help="log also here, overriding the config's logfile= (default: the config's, as ldirectord)",
    )
    status.add_argument(
        "--control", default=DEFAULT_CONTROL, type=NonEmpty(), metavar="PATH", help="the daemon's socket"
    )
    status.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    status.add_argument("--reload", action="store_true", help="ask the daemon to reload its config")
    status.add_argument("--watch", action="store_true", help="redraw the table in place until Ctrl-C")
    status.add_argument(
        "--interval", type=Number(float, 0.1, 3600), default=2.0, metavar="S", help="--watch: every S s (2)"
    )


def command_daemon(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from lvscheck.cli.run import cpu_budget
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

    kind: Any = Director
    sink: Any = EventSink
    if args.shadow:  # lvscheck.daemon.shadow: reads the table, writes nothing, leaves logfile= alone
        from lvscheck.daemon.shadow import QuietEvents, ShadowDirector

        kind = functools.partial(ShadowDirector, compare=args.reconcile or 2.0)
        sink = QuietEvents
    try:
        events = sink(args.event_log, args.notify_command, smtp=args.smtp)
    except OSError as exc:
        backend.close()
        raise _flag_error("--event-log", args.event_log, exc) from None
    director = kind(
        args.config,
        backend,
        engine=Engine(max_in_flight=args.max_in_flight, per_host=args.per_host, cpu_budget=cpu_budget(args)),
        events=events,
        options=DirectorOptions(
            reconcile=args.reconcile,
            behind=args.behind,
            workers=_worker_count(args.workers),
            worker_loop=_loop_name(args.loop),
        ),
        notify=notify,
        logfile=LogTarget("none" if args.check or args.shadow else args.logfile),
    )
    try:
        director.load_initial()  # the one road: the same verdict as `lvscheck check-config`
        director.overrides = _load_overrides(args)
        http_tokens = _load_tokens(args)
        control_gid = _control_gid(args)
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
        try:
            with open(args.pid_file, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        except OSError as exc:
            backend.close()
            director.events.close()
            raise _flag_error("--pid-file", args.pid_file, exc) from None
    if args.ready_file:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.ready_file)
    runner: Any = asyncio.run
    if _loop_name(args.loop) == "uvloop":
        try:
            import uvloop
        except ImportError:
            print(
                "lvscheck daemon: --loop uvloop needs uvloop: pip install 'lvscheck[daemon]'", file=sys.stderr
            )
            return 3
        runner = uvloop.run
    try:
        runner(_main(director, args, http_tokens, control_gid))
    except AdapterError as exc:
        print(f"lvscheck daemon: {exc}", file=sys.stderr)
        return 1
    finally:
        backend.close()
        director.events.close()
        for path in (args.pid_file, args.ready_file):
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    return 0


def _loop_name(asked: str) -> str:
    """``auto``: uvloop when it can be imported (measured: docs/daemon.md), else asyncio."""
    if asked != "auto":
        return asked
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _worker_count(asked: int) -> int:
    if asked > 0:
        return asked
    from lvscheck.daemon.workers import default_count

    return default_count()


def _load_overrides(args: argparse.Namespace) -> Any:
    from lvscheck.daemon.overrides import Overrides

    overrides = Overrides.load(args.state_dir)
    if overrides.drained or overrides.maintenance:
        log.warning(
            "kept from before (%s): drained %s; in maintenance %s",
            overrides.path,
            ", ".join(f"{v} {r}" for v, r in sorted(overrides.drained)) or "none",
            ", ".join(sorted(overrides.maintenance)) or "none",
        )
    return overrides


def _load_tokens(args: argparse.Namespace) -> Any:
    from lvscheck.web.tokens import Tokens

    return Tokens.load(args.http_tokens)


def _control_gid(args: argparse.Namespace) -> int | None:
    import grp

    from lvscheck.errors import ConfigError

    if not args.control_group:
        return None
    try:
        return grp.getgrnam(args.control_group).gr_gid
    except KeyError:
        raise ConfigError(f"--control-group {args.control_group}: no such group") from None


async def _main(director: Any, args: argparse.Namespace, tokens: Any = None, gid: int | None = None) -> None:
    from lvscheck.daemon.sdnotify import notify, watchdog_interval

    director.install_signal_handlers()
    servers: list[Any] = []  # asyncio.Server and web.server.HttpListener: both close()
    dog = None
    marker = None
    try:
        await _listen(director, args, servers, tokens, gid)
        every = watchdog_interval()
        if every:

            async def watchdog() -> None:
                while True:
                    notify("WATCHDOG=1")
                    await asyncio.sleep(every)

            dog = asyncio.get_running_loop().create_task(watchdog())
        if args.ready_file:
            from lvscheck.daemon.readiness import write_when_ready

            marker = asyncio.get_running_loop().create_task(write_when_ready(director, args.ready_file))
        await director.run()
    finally:
        if marker is not None:
            marker.cancel()
        if dog is not None:
            dog.cancel()
        for server in servers:
            server.close()
        if args.control and servers:  # the control socket is the first server: ours to remove
            with contextlib.suppress(OSError):
                os.unlink(args.control)


async def _listen(
    director: Any, args: argparse.Namespace, servers: list[Any], tokens: Any, gid: int | None
) -> None:
    """The control socket and the metrics port, appended to ``servers``; a refusal names its flag."""
    from lvscheck.daemon.control import serve_control, serve_metrics

    if args.control:
        try:
            if args.control == DEFAULT_CONTROL:
                os.makedirs(os.path.dirname(args.control), exist_ok=True)
            servers.append(await serve_control(director, args.control, gid))
        except OSError as exc:
            raise _flag_error("--control", args.control, exc) from None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        try:
            servers.append(await serve_metrics(director, host or "127.0.0.1", int(port), tokens))
        except OSError as exc:
            raise _flag_error("--metrics", args.metrics, exc) from None


def _flag_error(flag: str, value: str, exc: OSError) -> Exception:
    """The UsageError for a flag whose file or address the system refused (exit 3, no traceback)."""
    from lvscheck.errors import UsageError

    return UsageError(f"{flag} {value}: {exc.strerror or exc}")


def command_status(args: argparse.Namespace) -> int:
    from lvscheck.daemon.control import query

    try:
        answer = query(args.control, "reload" if args.reload else "status")
    except (OSError, ValueError) as exc:
        print(f"lvscheck status: no daemon answers on --control {args.control}: {exc}", file=sys.stderr)
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
    from lvscheck.cli.status_view import render, watch

    if args.watch:
        return watch(lambda: query(args.control), args.interval)
    try:
        sys.stdout.write(render(answer, sys.stdout.isatty() and not os.environ.get("NO_COLOR")))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
