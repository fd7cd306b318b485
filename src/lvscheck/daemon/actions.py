"""Side actions: what the daemon does besides checking and writing IPVS.

* ``fallbackcommand`` (``CMD start|stop VIP:VPORT PROTOCOL``) when a pool loses
  its last real or gets one back, and ``stop`` at shutdown for every pool whose
  ``start`` ran (ldirectord never does; its users asked: Debian bug 599918);
* ``callback`` (``CMD CONFIG``) when a reload changed the file;
* ``maintenancedir``: a file named ``IP:PORT`` or ``IP`` holds that real down;
* ``emailalertfreq``: the "still down" reminder mails;
* ``monitorfile``: one line per check result, in ldirectord's format.

Commands run through ``/bin/sh`` as ldirectord runs them, never block the
check loop, and are bounded in time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from lvscheck.daemon.state import Phase

if TYPE_CHECKING:
    from lvscheck.adapters.ipvs.table import Dest
    from lvscheck.config.pools import Pool
    from lvscheck.daemon.events import EventSink, MailSettings
    from lvscheck.daemon.pools import RealState
    from lvscheck.model import Result

__all__ = ["SideActions", "maintenance_matches", "monitor_line"]

log = logging.getLogger("lvscheck.daemon")

COMMAND_TIMEOUT = 60.0


class SideActions:
    """Commands, reminders and monitor files of one daemon."""

    def __init__(self, events: EventSink) -> None:
        self.events = events
        self._spawned: set[asyncio.Task[None]] = set()

    def fallback_command(self, pool: Pool, action: str, global_command: str | None) -> None:
        """ldirectord's ``fallbackcommand``: ``CMD start|stop VIP:VPORT PROTOCOL`` through the shell."""
        v = pool.virtual
        command = v.fallbackcommand or global_command
        if not command:
            return
        vip = "" if v.fwmark is not None else v.vip_arg
        self.spawn_shell(f"{command} {action} {vip}:{v.port} {v.protocol}", f"fallbackcommand of {pool.name}")

    def callback(self, command: str, config_path: str) -> None:
        """ldirectord's ``callback``: ``CMD CONFIG`` when the config content changed."""
        self.spawn_shell(f"{command} {config_path}", "callback")

    def spawn_shell(self, line: str, what: str) -> None:
        async def run() -> None:
            try:
                proc = await asyncio.create_subprocess_shell(
                    line, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
                )
            except OSError as exc:
                log.error("%s failed: %s: %s", what, line, exc)
                return
            try:
                rc = await asyncio.wait_for(proc.wait(), COMMAND_TIMEOUT)
            except TimeoutError:
                log.error("%s still runs after %.0f s, killed: %s", what, COMMAND_TIMEOUT, line)
                proc.kill()
                return
            if rc:
                log.error("%s exited with %s: %s", what, rc, line)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            return
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` s) for the commands still running."""
        if self._spawned:
            await asyncio.wait(set(self._spawned), timeout=timeout)

    def remind_down(
        self, pools: dict[str, Pool], reals: dict[str, RealState], mail: dict[str, MailSettings]
    ) -> None:
        """``emailalertfreq``: mail again about every real still down after freq seconds."""
        now = time.monotonic()
        for key, settings in mail.items():
            pool = pools.get(key)
            if settings.freq <= 0 or not settings.to or pool is None:
                continue
            for sid in pool.slots:
                rs = reals[sid]
                if rs.track.phase is not Phase.DOWN:
                    rs.down_since = None
                    continue
                if rs.down_since is None:
                    rs.down_since = rs.last_mailed = now
                elif now - (rs.last_mailed or now) >= settings.freq:
                    rs.last_mailed = now
                    self.events.remind(
                        settings,
                        virtual=pool.name,
                        real=str(rs.slot.dest),
                        down_for_s=round(now - rs.down_since),
                        reason=rs.last.reason if rs.last is not None else "",
                    )

    def monitor(self, pool: Pool, rs: RealState, result: Result) -> None:
        """``monitorfile=``: append the result's line; a file we cannot write is logged once."""
        path = pool.virtual.monitorfile
        if not path:
            return
        try:
            with open(path, "a", encoding="utf-8", errors="replace") as fh:
                fh.write(monitor_line(pool, rs, result))
        except OSError as exc:
            if path not in _MONITOR_FAILED:
                _MONITOR_FAILED.add(path)
                log.error("monitorfile of %s: cannot write %s: %s", pool.name, path, exc)


_MONITOR_FAILED: set[str] = set()


def monitor_line(pool: Pool, rs: RealState, result: Result) -> str:
    """``[<localtime>] [<pid>] <real id, ':' as ' '> [up|down] <message>`` as ldirectord writes it."""
    v = pool.virtual
    if v.checktype in ("negotiate", "combined"):
        check = f"{v.checktype} {v.service}"
    elif v.checktype in ("external", "external-perl"):
        check = f"{v.checktype} {v.checkcommand}"
    else:
        check = v.checktype
    real = rs.slot.plan.real
    parts = [
        check,
        v.protocol,
        real.host,
        str(real.port),
        v.options.get("virtualhost", ""),
        "" if v.checkport is None else str(v.checkport),
        str(real.weight),
        real.forwarding,
        real.request if real.request is not None else v.options.get("request", ""),
        real.receive if real.receive is not None else v.options.get("receive", ""),
    ]
    ident = " ".join(p.replace(":", " ") for p in parts if p)
    state = "up" if result.state.value != "down" else "down"
    message = result.reason or "-"
    for ch in "%|\r\n":
        message = message.replace(ch, f"%{ord(ch):02x}")
    return f"[{time.strftime('%a %b %e %H:%M:%S %Y')}] [{os.getpid()}] {ident} [{state}] {message}\n"


def maintenance_matches(dests: dict[str, Dest], names: set[str]) -> dict[str, str]:
    """The reals (id -> kernel entry) that ``maintenancedir`` entries ``names`` hold down:
    real id -> the file name (``IP:PORT`` or ``IP``; IPv6 in brackets)."""
    held: dict[str, str] = {}
    if not names:
        return held
    for sid, d in dests.items():
        host = f"[{d.addr}]" if ":" in d.addr else d.addr
        for name in (f"{host}:{d.port}", host):
            if name in names:
                held[sid] = name
                break
    return held


def list_maintenancedir(directory: str | None) -> set[str]:
    if not directory:
        return set()
    try:
        return set(os.listdir(directory))
    except OSError:
        return set()
