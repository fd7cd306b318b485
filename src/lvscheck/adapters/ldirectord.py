"""The ldirectord adapter: run one real's check from its ldirectord.cf, in process or as a server.

``lvscheck-ldirectord VIP VPORT RIP RPORT`` (the light client in
:mod:`lvscheck_ldirectord`) ends up here:

* :func:`check_once` reads the config, finds the virtual for ``VIP VPORT`` (the
  firewall mark and 0 for fwmark services) and the real for ``RIP RPORT``, and
  runs the check ldirectord's ``checktype=negotiate`` would run for that
  virtual (the ``service=`` decides, with its request/receive/login/...
  directives and ``#lvscheck:`` settings), with lvscheck's implementation;
* :func:`serve` is the check server: it keeps all of that imported, parsed
  (re-read when the file changes) and prepared, and answers clients on a Unix
  socket until it has been idle for ``LVSCHECK_LDIRECTORD_IDLE`` seconds (300).

Deadline: ldirectord kills the command at ``checktimeout``; the check gets
``checktimeout`` minus a margin (10 %, at least 0.2 s), minus the time already
spent since ldirectord forked the client (its interpreter's start-up included), so
the answer always comes first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import signal
import time
from typing import TYPE_CHECKING

from lvscheck.config.model import Config, Problem, RealServer, VirtualService
from lvscheck.config.translate import check_spec
from lvscheck.errors import ConfigError

if TYPE_CHECKING:
    import asyncio

    from lvscheck.engine import Engine
    from lvscheck.model import CheckSpec
    from lvscheck.plugin.check import Check

__all__ = ["budget", "check_once", "find_real", "serve", "spec_for"]

IDLE_SECONDS = 300.0
#: Seconds a client is assumed to need to start and reach the server (subtracted from the budget).
CLIENT_ALLOWANCE = 0.1


def budget(checktimeout: float) -> float:
    """Seconds a check may take so that we answer before ldirectord's SIGTERM."""
    return max(0.1, checktimeout - max(0.2, checktimeout * 0.1))


def _norm_ip(text: str) -> str:
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _virtual(config: Config, args: list[str]) -> VirtualService | None:
    vip = args[0]
    return config.find_virtual(vip if vip.isdigit() else _norm_ip(vip), args[1])


def find_real(virtual: VirtualService, rip: str, rport: str) -> RealServer:
    """The real of ``virtual`` at ``RIP RPORT``; one with the virtual's defaults if it is not listed."""
    host = _norm_ip(rip)
    port = int(rport) if rport.isdigit() else 0
    for real in virtual.reals:
        if real.host == host and real.port == port:
            return real
    return RealServer(host, port, ipv6=":" in host)


def spec_for(config: Config, args: list[str], elapsed: float = 0.0) -> tuple[CheckSpec | None, str]:
    """The spec for ``VIP VPORT RIP RPORT`` (``None``: always up) and a label for messages.

    Raises :class:`ConfigError` when the virtual is not in the config.
    """
    vip, vport, rip, rport = args
    virtual = _virtual(config, args)
    if virtual is None:
        raise ConfigError(f"{config.source}: no virtual service {vip}:{vport} in it")
    real = find_real(virtual, rip, rport)
    label = f"{virtual.name} real {real.address}"
    negotiate = dataclasses.replace(virtual, checktype="negotiate", combined=None)
    spec = check_spec(negotiate, real)
    if spec is None:
        return None, label
    limit = budget(virtual.checktimeout) - elapsed
    options = dict(spec.options)
    for name in ("checktimeout", "negotiatetimeout"):
        own = float(options.get(name, limit))
        # whole tenths (rounded down) read better in reasons: "timed out after 4.3 s ..."
        options[name] = f"{max(0.1, int(min(own, limit) * 10) / 10):g}"
    return spec.replace(options=options), label


def _prepare(config: Config, args: list[str], spec: CheckSpec) -> Check:
    from lvscheck.config.prepare import prepare_spec
    from lvscheck.plugins import default_host

    virtual = _virtual(config, args)
    assert virtual is not None
    errors: list[Problem] = []
    check = prepare_spec(default_host(), virtual, spec, config.source, errors, [])
    if check is None:
        raise ConfigError(str(errors[0]) if errors else "the check cannot be prepared")
    return check


def _outer(checktimeout: float, inner: float) -> float:
    """The last-resort timeout around a check whose own deadline is ``inner``: a bit later, so the
    check's own reason ("timed out after 2 s waiting for ...") wins, but before ldirectord's SIGTERM."""
    return max(0.05, min(inner + 0.05, checktimeout - 0.05))


async def _run(engine: Engine, check: Check, seconds: float) -> tuple[int, str]:
    import asyncio

    try:
        async with asyncio.timeout(max(0.05, seconds)):
            result = await engine.run(check)
    except TimeoutError:
        return 1, f"{check.spec.check}: no verdict within {seconds:.1f} s"
    if result.state.value == "down":
        return 1, f"{result.check} down: {result.reason}"
    return 0, ""


def check_once(config_path: str, args: list[str], started: float) -> tuple[int, str]:
    """Run the check for ``VIP VPORT RIP RPORT`` in this process: ``(exit status, reason)``."""
    import asyncio

    from lvscheck.config.prepare import read

    try:
        config = read(config_path).config  # the one road: refused here iff the daemon refuses it
        spec, label = spec_for(config, args, time.time() - started)
        if spec is None:
            return 0, ""
        check = _prepare(config, args, spec)
    except ConfigError as exc:
        return 1, str(exc)
    from lvscheck.engine import Engine

    virtual = _virtual(config, args)
    assert virtual is not None
    inner = float(spec.options["checktimeout"])
    code, reason = asyncio.run(_run(Engine(), check, _outer(virtual.checktimeout, inner)))
    return code, f"{label}: {reason}" if reason else ""


# -- the check server --------------------------------------------------------------------------


def _code_stamp() -> tuple[float, ...]:
    """Modification times of the code a server runs: it retires when they change (an upgrade)."""
    import lvscheck
    import lvscheck_ldirectord

    stamps = []
    for path in (__file__, lvscheck.__file__, lvscheck_ldirectord.__file__):
        try:
            stamps.append(os.stat(str(path)).st_mtime)
        except OSError:
            stamps.append(0.0)
    return tuple(stamps)


class _Server:
    def __init__(self, sockdir: str) -> None:
        from lvscheck.engine import Engine

        self.sockdir = sockdir
        self.path = os.path.join(sockdir, "server.sock")
        self.engine = Engine()
        self.configs: dict[str, tuple[tuple[int, int, int], Config | ConfigError]] = {}
        self.checks: dict[tuple[str, tuple[str, ...], tuple[int, int, int]], tuple[Check | None, str]] = {}
        self.last = time.monotonic()
        self.busy = 0
        self.stop: asyncio.Event | None = None
        self.code_stamp = _code_stamp()

    def _config(self, path: str) -> tuple[tuple[int, int, int], Config]:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self.configs.get(path)
        if cached is None or cached[0] != key:
            from lvscheck.config.prepare import read

            try:
                loaded: Config | ConfigError = read(path).config  # the one road, as the daemon
            except ConfigError as exc:
                loaded = exc
            self.configs[path] = (key, loaded)
            self.checks = {k: v for k, v in self.checks.items() if k[0] != path}
            cached = self.configs[path]
        if isinstance(cached[1], ConfigError):
            raise cached[1]
        return key, cached[1]

    async def answer(self, line: str) -> str:
        parts = line.split("\t")
        from lvscheck_ldirectord import PROTOCOL

        if len(parts) != 7 or parts[0] != PROTOCOL:
            self._retire()  # a client of another version: make room for a server that speaks it
            return "E\tprotocol mismatch"
        config_path, args, started = parts[1], parts[2:6], float(parts[6])
        try:
            key, config = self._config(config_path)
            cache_key = (config_path, tuple(args), key)
            cached = self.checks.get(cache_key)
            if cached is None:
                spec, label = spec_for(config, args, elapsed=CLIENT_ALLOWANCE)
                check = _prepare(config, args, spec) if spec is not None else None
                cached = self.checks[cache_key] = (check, label)
        except (ConfigError, OSError) as exc:
            return f"1\t{exc}"
        check, label = cached
        if check is None:
            return "0"
        virtual = _virtual(config, args)
        assert virtual is not None
        remaining = budget(virtual.checktimeout) - (time.time() - started)
        code, reason = await _run(self.engine, check, _outer(virtual.checktimeout, remaining))
        return f"{code}\t{label}: {reason}" if code else "0"

    async def handle(self, reader: object, writer: object) -> None:
        import asyncio

        assert isinstance(reader, asyncio.StreamReader)
        assert isinstance(writer, asyncio.StreamWriter)
        self.busy += 1
        try:
            raw = await asyncio.wait_for(reader.readline(), 5)
            reply = await self.answer(raw.decode("utf-8", "surrogateescape").rstrip("\n"))
            writer.write(reply.replace("\n", " ").encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, ValueError):
            pass
        finally:
            self.busy -= 1
            self.last = time.monotonic()
            writer.close()
            if _code_stamp() != self.code_stamp:
                self._retire()  # lvscheck was upgraded: the next client starts a fresh server

    def _retire(self) -> None:
        if self.stop is not None:
            self.stop.set()

    async def run(self, idle: float) -> None:
        import asyncio

        old = os.umask(0o077)
        try:
            server = await asyncio.start_unix_server(self.handle, self.path)
        finally:
            os.umask(old)
        inode = os.stat(self.path).st_ino
        stop = self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        replaced = False
        async with server:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(5.0, idle))
                try:
                    replaced = os.stat(self.path).st_ino != inode
                except OSError:
                    replaced = True
                if replaced or (not self.busy and time.monotonic() - self.last > idle):
                    break
        if not replaced:
            os.unlink(self.path)


def serve(sockdir: str) -> int:
    """Run the check server in ``sockdir`` (one per directory: a lock file decides)."""
    import asyncio
    import fcntl

    lock = os.open(os.path.join(sockdir, "server.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server runs
    path = os.path.join(sockdir, "server.sock")
    if os.path.exists(path):
        os.unlink(path)
    idle = float(os.environ.get("LVSCHECK_LDIRECTORD_IDLE", IDLE_SECONDS))
    pidfile = os.path.join(sockdir, "server.pid")
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        asyncio.run(_Server(sockdir).run(idle))
    finally:
        os.unlink(pidfile)
    return 0


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--serve":
        return serve(argv[1])
    from lvscheck_ldirectord import main as client_main

    return client_main()


if __name__ == "__main__":
    import sys

    sys.exit(main())
