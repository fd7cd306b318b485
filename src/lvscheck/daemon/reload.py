"""Reload: read the config through the one road, notice changes, install the difference.

* :func:`load` reads a config file exactly as ``lvscheck check-config`` does
  (:func:`lvscheck.config.prepare.read`): the same file gets the same verdict.
* :class:`ConfigFile` remembers the file's digest and mtime (``autoreload``,
  ``callback`` on a changed content).
* :func:`install` switches the daemon to a new layout: every real that is still
  there keeps its check state; only what changed is restarted or rewritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lvscheck.config.prepare import Prepared, prepare, read
from lvscheck.daemon import probes
from lvscheck.daemon.events import MailSettings
from lvscheck.daemon.pools import BAD_KINDS, PoolState, RealState, fixed_track
from lvscheck.daemon.scheduler import Job
from lvscheck.daemon.state import Phase, initial_track
from lvscheck.errors import ConfigError

if TYPE_CHECKING:
    from lvscheck.config.pools import Layout
    from lvscheck.daemon.director import Director
    from lvscheck.plugins import PluginHost

__all__ = ["ConfigFile", "freeze_heap", "install", "load", "reload_config"]

log = logging.getLogger("lvscheck.daemon")


def load(
    path: str, loader: Callable[[str], Any] | None = None, plugins: PluginHost | None = None
) -> Prepared:
    """The prepared config at ``path`` (``loader``: a parsed config from elsewhere, for tests)."""
    if loader is not None:
        return prepare(loader(path), plugins)
    return read(path, plugins)


class ConfigFile:
    """The config file's identity: content digest and mtime."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.digest = b""
        self.mtime = 0.0

    def remember(self) -> bool:
        """Read the file's digest and mtime now; True when the content changed."""
        before = self.digest
        try:
            with open(self.path, "rb") as fh:
                self.digest = hashlib.sha256(fh.read()).digest()
            self.mtime = os.stat(self.path).st_mtime
        except OSError:
            return False
        return self.digest != before

    def touched(self) -> bool:
        """True when the file's content differs from what was remembered (mtime first, cheap)."""
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return False
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            with open(self.path, "rb") as fh:
                return hashlib.sha256(fh.read()).digest() != self.digest
        except OSError:
            return False


async def reload_config(d: Director, why: str) -> bool:
    """Re-read the config; keep the old one if the new one has any error.

    Reading and preparing a big file is CPU work (a 40,000-real file takes seconds): it runs
    in a thread, so the check loop goes on meanwhile (the GIL is handed back every few
    milliseconds); reloads run one at a time.
    """
    async with d.reload_lock:
        return await _reload(d, why)


async def _reload(d: Director, why: str) -> bool:
    d.sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
    d.events.daemon_state = "reloading"
    try:
        try:
            prepared = await asyncio.to_thread(load, d.config_path, d.loader, d.engine.plugins)
        except ConfigError:
            raise
        except Exception as exc:  # a bug or an I/O error must not kill the running daemon
            log.exception("reload (%s): reading %s failed", why, d.config_path)
            raise ConfigError(f"{d.config_path}: {type(exc).__name__}: {exc}") from exc
    except ConfigError as exc:
        d.counters.reload_failures += 1
        d.counters.last_reload = {
            "ok": False,
            "why": why,
            "time": time.time(),
            "problems": list(exc.problems),
        }
        for problem in exc.problems:
            log.error("reload (%s) refused, the running config stays: %s", why, problem)
        d.events.emit("reload-failed", config=d.config_path, problems=list(exc.problems))
        d.file.remember()
        d.events.daemon_state = "running"
        d.sd_notify("READY=1")
        return False
    d.prepared, d.config = prepared, prepared.config
    d.logfile.apply(d.config.settings.logfile)
    d.log_warnings(f"reload ({why})")
    if d.file.remember() and d.config.settings.callback:
        d.actions.callback(d.config.settings.callback, d.config_path)
    changed = install(d, prepared, first=False)
    freeze_heap()
    d.counters.reloads += 1
    d.counters.last_reload = {"ok": True, "why": why, "time": time.time(), "problems": []}
    d.view.flush()
    d.events.daemon_state = "running"
    d.events.emit("reload", config=d.config_path, why=why, changed=",".join(sorted(changed)))
    d.sd_notify("READY=1")
    return True


def install(director: Director, prepared: Prepared, *, first: bool) -> set[str]:
    """Switch ``director`` to ``prepared``; returns the names of the virtuals that changed."""
    old, layout = director.layout, prepared.layout
    checks = prepared.checks()
    settings = prepared.config.settings
    changed: set[str] = set()
    for sid in list(director.reals):
        if sid not in layout.slots:
            director.scheduler.stop(sid)
            changed.add(director.reals[sid].slot.pool)
            del director.reals[sid]
    director.layout = layout
    changed |= _install_pools(director, old, layout, settings.emailalertfrom)
    options = director.options
    unknown = sum(1 for sid in layout.slots if sid not in director.reals)
    first_spread = max(options.first_round, unknown / options.first_rate)
    kernel = director.kernel
    fresh: list[RealState] = []
    shared = probes.groups(layout, checks)  # reals checked the same way by several virtuals
    grouped = {sid for sids in shared.values() for sid in sids}
    restarted: set[str] = set()
    for sid, slot in layout.slots.items():
        rs = director.reals.get(sid)
        if rs is None:
            kd = kernel.dest(layout.pools[slot.pool].service.key, *slot.dest.key)
            track = fixed_track(slot) or initial_track(kd.weight if kd is not None else None)
            rs = director.reals[sid] = RealState(slot, track)
            fresh.append(rs)
            restart = True
            changed.add(slot.pool)
        else:
            restart = rs.slot.schedule_key != slot.schedule_key
            if rs.slot != slot:
                changed.add(slot.pool)
            rs.slot = slot
            fixed = fixed_track(slot)
            if fixed is not None and rs.maintenance is None and rs.track != fixed:
                rs.track = fixed  # a real that is never checked takes its fixed state, unless held down
                changed.add(slot.pool)
        rs.check, rs.connect = checks[sid]
        if restart:
            restarted.add(sid)
        if rs.check is None:
            director.scheduler.stop(sid)
            rs.job = None
        elif sid in grouped:
            director.scheduler.stop(sid)  # its own loop, if it had one: a shared probe runs its check
        elif restart or sid not in director.scheduler:
            rs.job = Job(sid, rs.pick, slot.interval, slot.fastinterval, slot.jitter, _changing(rs))
            within = first_spread if rs.track.phase is Phase.UNKNOWN else slot.interval
            director.scheduler.start(rs.job, first_within=min(within, slot.interval))
    probes.install_shared(director, shared, restarted, first_spread)
    for rs in fresh:  # slowstart=: a new real ramps only into a pool that already serves
        pool_slots = layout.pools[rs.slot.pool].slots
        rs.ramp_when_new = any(director.reals[s].track.phase is Phase.UP for s in pool_slots)
    kept = {p.service.key for p in layout.pools.values()}
    gone = [p.service for p in old.pools.values() if p.service.key not in kept]
    director.view.remove(gone)
    director.view.sync_private(layout.private, layout.marks)  # before the first check through a VIP
    if director.backend.name != "memory":
        director.view.check_accept_local()
    director.history.keep(director.reals)
    for key, pool in layout.pools.items():
        director.pools[key].bad = sum(director.reals[sid].last_kind in BAD_KINDS for sid in pool.slots)
    director.view.mark(layout.pools if first else changed & set(layout.pools))
    return {old.pools[k].name if k in old.pools else layout.pools[k].name for k in changed}


def _install_pools(director: Director, old: Layout, layout: Layout, mail_from: str | None) -> set[str]:
    """Pool state and mail settings for the new layout; the keys of pools that changed."""
    changed: set[str] = set()
    for key, pool in layout.pools.items():
        director.pools.setdefault(key, PoolState())
        v = pool.virtual
        director.mail[key] = MailSettings(
            v.emailalert, v.smtp, mail_from, v.emailalertstatus, v.emailalertfreq
        )
        before = old.pools.get(key)
        if before is None or before.service != pool.service or before.virtual != pool.virtual:
            changed.add(key)
    for key in list(director.pools):
        if key not in layout.pools:
            del director.pools[key]
            director.mail.pop(key, None)
            changed.add(key)
    return changed


def _changing(rs: RealState) -> Callable[[], bool]:
    return lambda: rs.track.changing


def freeze_heap() -> None:
    """Keep the cyclic GC from stalling the check loop.

    The long-lived objects (config, checks, 10,000 coroutines) are moved out of the
    collector's reach (``gc.freeze``), so a full collection does not walk them all; this
    took CPU per check from 0.149 to 0.111 ms with 10,000 connect checks.
    """
    import gc

    gc.collect()
    gc.freeze()
    # Fewer, larger young collections: every check allocates ~100 tracked objects, and the
    # default threshold (700) ran a collection every few checks. Measured with 10,000 reals
    # at 5,000 checks/s: start lag p99 148 ms with the defaults, 2.4 ms with this.
    gc.set_threshold(50_000, 20, 1000)
