"""Reload: read the config through the one road, notice changes, install the difference.

* :func:`load` reads a config file exactly as ``lvscheck check-config`` does
  (:func:`lvscheck.config.prepare.read`): the same file gets the same verdict.
* :class:`ConfigFile` remembers the file's digest and mtime (``autoreload``,
  ``callback`` on a changed content).
* :func:`install` switches the daemon to a new layout: every real that is still
  there keeps its check state; only what changed is restarted or rewritten.  It runs on
  the event loop in slices of at most 5 ms (:mod:`.slices`), in two steps:
  :func:`plan_install` works everything out without touching the running daemon (a
  failure there leaves the old config wholly in force), :func:`commit_install` switches
  the layout and its reals in one step, starts and stops what changed, and writes the
  kernel once, in one batch, at the end (the kernel view is held meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lvscheck.config.prepare import Prepared, prepare, read
from lvscheck.daemon import probes
from lvscheck.daemon.events import MailSettings
from lvscheck.daemon.pools import BAD_KINDS, PoolState, RealState, fixed_track
from lvscheck.daemon.scheduler import Job
from lvscheck.daemon.slices import Slicer
from lvscheck.daemon.state import Phase, initial_track
from lvscheck.errors import ConfigError

if TYPE_CHECKING:
    from lvscheck.config.pools import Slot
    from lvscheck.daemon.director import Director
    from lvscheck.plugin.check import Check
    from lvscheck.plugins import PluginHost

__all__ = [
    "ConfigFile",
    "InstallPlan",
    "commit_install",
    "freeze_heap",
    "install",
    "load",
    "plan_install",
    "reload_config",
    "tune_gc",
    "young_gc_only",
]

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
    milliseconds); the install runs on the loop in slices (:func:`install`); reloads run one
    at a time.
    """
    async with d.reload_lock:
        with young_gc_only():
            return await _reload(d, why)


def _read(d: Director) -> tuple[Prepared, Checks, Shared]:
    """Read, prepare, and find the checks and shared probes (in a thread: pure work)."""
    prepared = load(d.config_path, d.loader, d.engine.plugins)
    return (prepared, *_checks(prepared))


def _checks(prepared: Prepared) -> tuple[Checks, Shared]:
    """The checks of every real and the probes several virtuals share (in a thread: pure work)."""
    checks = prepared.checks()
    return checks, probes.groups(prepared.layout, checks)


async def _reload(d: Director, why: str) -> bool:
    d.sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
    d.events.daemon_state = "reloading"
    started = time.monotonic()
    watch = d.scheduler.watch
    watch.open_window()
    try:
        try:
            prepared, checks, shared = await asyncio.to_thread(_read, d)
            plan = await plan_install(d, prepared, checks, shared, Slicer())
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
    changed = await commit_install(d, plan)
    freeze_heap()
    d.counters.reloads += 1
    last = d.counters.last_reload = {
        "ok": True,
        "why": why,
        "time": time.time(),
        "problems": [],
        "seconds": round(time.monotonic() - started, 3),
        **plan.report(),
    }

    def loop_block() -> None:  # once the loop watch has ticked after the install's last slice
        last["loop_longest_block_ms"] = round(watch.window_longest * 1000, 1)

    asyncio.get_running_loop().call_later(2 * watch.period + 0.05, loop_block)
    d.events.daemon_state = "running"
    d.events.emit("reload", config=d.config_path, why=why, changed=",".join(sorted(changed)))
    d.sd_notify("READY=1")
    return True


Checks = dict[str, tuple["Check | None", "Check | None"]]
Shared = dict[probes.ProbeKey, list[str]]


@dataclass(slots=True)
class _Kept:
    """A real the new config keeps: its state goes on; what the new config changes of it."""

    rs: RealState
    slot: Slot
    restart: bool  # its check or schedule changed: a new check loop


@dataclass(slots=True)
class InstallPlan:
    """What an install will do, worked out without touching the running daemon.

    Everything that can fail (a bug, a check that cannot be built) fails here, while the
    old config is still wholly in force; :func:`commit_install` then only assigns,
    starts and stops.
    """

    prepared: Prepared
    checks: Checks
    shared: Shared
    first: bool
    slicer: Slicer
    reals: dict[str, RealState] = field(default_factory=dict)  # the new config's reals, by slot id
    kept: list[_Kept] = field(default_factory=list)
    fresh: list[RealState] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # slot ids of reals the new config drops
    restarted: set[str] = field(default_factory=set)  # slot ids whose check loop (re)starts
    grouped: set[str] = field(default_factory=set)  # slot ids checked by a shared probe
    unknown: int = 0  # reals not decided yet (their first checks are spread)
    changed: set[str] = field(default_factory=set)  # pool keys whose kernel entries may change
    writes: int = 0
    started_at: float = field(default_factory=time.perf_counter)

    def report(self) -> dict[str, Any]:
        """For ``last_reload`` in the status document."""
        return {
            "kept": len(self.kept),
            "added": len(self.fresh),
            "removed": len(self.gone),
            "ipvs_writes": self.writes,
            "slices": self.slicer.slices,
            "longest_slice_ms": round(self.slicer.longest * 1000, 1),
            "longest_slice_cpu_ms": round(self.slicer.longest_cpu * 1000, 1),
        }


async def install(
    director: Director, prepared: Prepared, *, first: bool, slicer: Slicer | None = None
) -> set[str]:
    """Switch ``director`` to ``prepared`` in slices; returns the names of the virtuals that changed.

    The checks and their shared probes are worked out in a thread first (0.2 s of CPU at
    40,000 reals: the loop, and the control socket on it, go on meanwhile)."""
    checks, shared = await asyncio.to_thread(_checks, prepared)
    plan = await plan_install(director, prepared, checks, shared, slicer or Slicer(), first=first)
    return await commit_install(director, plan)


async def plan_install(
    d: Director, prepared: Prepared, checks: Checks, shared: Shared, slicer: Slicer, *, first: bool = False
) -> InstallPlan:
    """Work out an install (sliced; nothing of the running daemon changes)."""
    plan = InstallPlan(prepared, checks, shared, first, slicer)
    layout, old = prepared.layout, d.layout
    kernel = d.kernel
    async for sid, slot in slicer.each(list(layout.slots.items())):
        rs = d.reals.get(sid)
        if rs is None:
            kd = kernel.dest(layout.pools[slot.pool].service.key, *slot.dest.key)
            track = fixed_track(slot) or initial_track(kd.weight if kd is not None else None)
            rs = RealState(slot, track)
            plan.fresh.append(rs)
            plan.changed.add(slot.pool)
            plan.restarted.add(sid)
        else:
            before = rs.slot
            restart = before.schedule_key != slot.schedule_key
            # the kernel entry and the counts; not the plan's virtual (all its reals: quadratic)
            if restart or before.dest != slot.dest or (before.rise, before.fall) != (slot.rise, slot.fall):
                plan.changed.add(slot.pool)
            plan.kept.append(_Kept(rs, slot, restart))
            if restart:
                plan.restarted.add(sid)
        plan.unknown += rs.track.phase is Phase.UNKNOWN
        plan.reals[sid] = rs
    async for sids in slicer.each(list(shared.values())):
        plan.grouped.update(sids)
    async for sid in slicer.each(list(d.reals)):
        if sid not in layout.slots:
            plan.gone.append(sid)
            plan.changed.add(d.reals[sid].slot.pool)
    async for key, pool in slicer.each(list(layout.pools.items())):
        before_pool = old.pools.get(key)
        if (
            before_pool is None
            or before_pool.service != pool.service
            or before_pool.virtual != pool.virtual  # linear in the virtual's reals: once per pool
        ):
            plan.changed.add(key)
    plan.changed |= {key for key in old.pools if key not in layout.pools}
    return plan


async def commit_install(d: Director, plan: InstallPlan) -> set[str]:
    """Apply ``plan`` in slices; the kernel gets the change as one batch at the end.

    While it runs, the checks of the reals it keeps go on with their state; results still
    arrive, and the kernel writes they ask for join the install's batch.
    """
    options = d.options
    first_spread = max(options.first_round, plan.unknown / options.first_rate)
    await d.view.settle()  # a flush of results under way ends first (sliced when big) ...
    async with d.view.session:  # ... and so does a reconcile (sliced too)
        return await _commit(d, plan, first_spread)


async def _commit(d: Director, plan: InstallPlan, first_spread: float) -> set[str]:
    slicer = plan.slicer
    old, layout = d.layout, plan.prepared.layout
    settings = plan.prepared.config.settings
    scheduler = d.scheduler
    grouped, restarted = plan.grouped, plan.restarted
    d.view.held = True
    try:
        async for sid in slicer.each(plan.gone):
            scheduler.stop(sid)
        async for k in slicer.each(plan.kept):
            rs, slot = k.rs, k.slot
            rs.slot = slot
            fixed = fixed_track(slot)
            if fixed is not None and rs.maintenance is None and rs.track != fixed:
                rs.track = fixed  # a real that is never checked takes its fixed state, unless held down
                plan.changed.add(slot.pool)
        async for key, pool in slicer.each(list(layout.pools.items())):  # extra keys harm nobody
            d.pools.setdefault(key, PoolState())
            v = pool.virtual
            d.mail[key] = MailSettings(
                v.emailalert, v.smtp, settings.emailalertfrom, v.emailalertstatus, v.emailalertfreq
            )
        # the switch: the new layout and its reals together (status and results see one or the other)
        d.reals = plan.reals
        d.layout = layout
        async for key in slicer.each([k for k in d.pools if k not in layout.pools]):
            del d.pools[key]
            d.mail.pop(key, None)
        async for sid, rs in slicer.each(list(plan.reals.items())):
            slot = rs.slot
            rs.check, rs.connect = plan.checks[sid]
            if rs.check is None:
                scheduler.stop(sid)
                rs.job = None
            elif sid in grouped:
                scheduler.stop(sid)  # its own loop, if it had one: a shared probe runs its check
            elif sid in restarted or sid not in scheduler:
                rs.job = Job(sid, rs.pick, slot.interval, slot.fastinterval, slot.jitter, _changing(rs))
                within = first_spread if rs.track.phase is Phase.UNKNOWN else slot.interval
                scheduler.start(rs.job, first_within=min(within, slot.interval))
        probes.install_shared(d, plan.shared, restarted, first_spread)
        await slicer.pause()
        serving: dict[str, bool] = {}  # slowstart=: a new real ramps only into a pool that already serves
        async for rs in slicer.each(plan.fresh):
            key = rs.slot.pool
            if key not in serving:
                serving[key] = any(d.reals[s].track.phase is Phase.UP for s in layout.pools[key].slots)
            rs.ramp_when_new = serving[key]
        async for rid in slicer.each(d.history.gone(d.reals)):
            d.history.forget(rid)
        async for key, pool in slicer.each(list(layout.pools.items())):
            d.pools[key].bad = sum(d.reals[sid].last_kind in BAD_KINDS for sid in pool.slots)
        kept = {p.service.key for p in layout.pools.values()}
        gone = [p.service for p in old.pools.values() if p.service.key not in kept]
        d.view.sync_private(layout.private, layout.marks)  # before the first check through a VIP
        if d.backend.name != "memory":
            d.view.check_accept_local()
        if plan.first:
            d.before_first_write()
        d.view.mark(layout.pools if plan.first else plan.changed & set(layout.pools))
        plan.writes = await d.view.flush_sliced(slicer, gone)
    finally:
        d.view.held = False
        d.view.mark(())  # what results marked after the batch was made goes out as usual
    slicer.finish()
    names = {old.pools[k].name if k in old.pools else layout.pools[k].name for k in plan.changed}
    log.info(
        "installed %d reals (%d kept, %d added, %d removed) in %.3f s, %d slices (longest %.1f ms), "
        "%d IPVS writes in one batch",
        len(plan.reals),
        len(plan.kept),
        len(plan.fresh),
        len(plan.gone),
        time.perf_counter() - plan.started_at,
        slicer.slices,
        slicer.longest * 1000,
        plan.writes,
    )
    return names


def _changing(rs: RealState) -> Callable[[], bool]:
    return lambda: rs.track.changing


def freeze_heap(*, full: bool = False) -> None:
    """Keep the cyclic GC from stalling the check loop.

    The long-lived objects (config, checks, 10,000 coroutines) are moved out of the
    collector's reach (``gc.freeze``), so a full collection does not walk them all; this
    took CPU per check from 0.149 to 0.111 ms with 10,000 connect checks.

    ``full``: collect everything first (before the checks run: it walks the whole heap,
    about 5 ms per 1,000 reals).  Otherwise only the youngest generation is collected
    (bounded by its threshold, a few ms) before the freeze: a reload must not hold the
    loop for a full collection; garbage cycles older than that stay frozen (a reload makes few).
    """
    import gc

    gc.collect() if full else gc.collect(0)
    gc.freeze()
    tune_gc()


@contextlib.contextmanager
def young_gc_only() -> Iterator[None]:
    """While a big config is read and installed: only the youngest generation is collected.

    Reading and installing 40,000 reals makes millions of objects that live on; each
    collection of the older generations walks them all while holding the GIL (150 ms and
    more at 40,000 reals, in the reading thread or between two slices): the loop stops.
    Young collections go on and free the short-lived cycles of the checks that run
    meanwhile; they are made small (5,000 objects, about a millisecond: nearly everything an
    install makes survives, and a collection of 50,000 survivors took 20 ms); the survivors
    wait in the middle generation, and :func:`freeze_heap` at the end puts them out of reach.
    """
    import gc

    before = gc.get_threshold()
    gc.set_threshold(5_000, 1 << 30, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def tune_gc() -> None:
    """Fewer, larger young collections (set before a big config is read, and kept)."""
    import gc

    # Every check allocates ~100 tracked objects, and the default threshold (700) ran a
    # collection every few checks. Measured with 10,000 reals at 5,000 checks/s: start lag
    # p99 148 ms with the defaults, 2.4 ms with this.
    gc.set_threshold(50_000, 20, 1000)
