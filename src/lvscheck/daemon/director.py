"""The director: life cycle and wiring of the daemon's parts.

A :class:`~lvscheck.Result` travels: :mod:`.scheduler` (runs each real's check on
its interval) -> :meth:`Director.on_result` -> :mod:`.pools` (observation,
rise/fall, desired weights, pool guard; pure) -> :mod:`.kernel` (dirty pools,
one batched IPVS write, reconcile) -> :mod:`lvscheck.adapters.ipvs`.  Beside it:
:mod:`.reload` (load through the one road, digest, install the difference),
:mod:`.actions` (fallbackcommand, callback, maintenancedir, mail reminders,
monitorfile), :mod:`.status` (counters, the status document), :mod:`.events`.

* **Start**: read the kernel table first.  A real already there with a weight
  above 0 starts UP and keeps its weight until ``fall`` failures say otherwise
  (a restart, even after ``kill -9``, never drains a healthy pool); a real with
  weight 0 starts DOWN; an absent one is decided by its first result.
* **Reload** (SIGHUP, ``autoreload``, ``lvscheck status --reload``): a config with
  any error is refused (every problem logged as ``file:line: ...``) and the old
  one keeps running; warnings are logged at every start and reload.
* **Stop**: ``cleanstop=yes`` virtuals are removed, the others left as they are;
  ``fallbackcommand stop`` runs for every pool whose ``start`` ran.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lvscheck.adapters.ipvs.table import Dest, Service, Table
from lvscheck.config.pools import Layout
from lvscheck.daemon import pools as P
from lvscheck.daemon import results
from lvscheck.daemon.actions import SideActions, list_maintenancedir
from lvscheck.daemon.events import EventSink, MailSettings
from lvscheck.daemon.history import History
from lvscheck.daemon.kernel import Backend, KernelView
from lvscheck.daemon.logfile import LogTarget
from lvscheck.daemon.overrides import Overrides
from lvscheck.daemon.probes import SharedProbe
from lvscheck.daemon.reload import (
    ConfigFile,
    freeze_heap,
    install,
    load,
    reload_config,
    tune_gc,
    young_gc_only,
)
from lvscheck.daemon.scheduler import Job, Scheduler
from lvscheck.daemon.state import Phase
from lvscheck.daemon.status import Counters, document
from lvscheck.engine import Engine
from lvscheck.model import Result

if TYPE_CHECKING:
    from lvscheck.daemon.workers import WorkerPool

__all__ = ["Backend", "Director", "DirectorOptions"]

log = logging.getLogger("lvscheck.daemon")


@dataclass(slots=True)
class DirectorOptions:
    reconcile: float = 10.0  # seconds between kernel re-reads (0: never)
    behind: float = 1.0  # start lag (s) from which failures are not trusted
    flush_delay: float = 0.01  # seconds to gather writes into one batch
    first_round: float = 1.0  # unchecked reals get their first check within this many seconds ...
    first_rate: float = 2000.0  # ... or slower: at most this many first checks per second
    autoreload_every: float = 2.0
    maintenance_every: float = 1.0
    workers: int = 1  # check worker processes; 1: every check on this process's loop
    worker_loop: str = "asyncio"  # the workers' event loop: asyncio | uvloop


class Director:
    """The daemon's core.  :meth:`load_initial`, then ``await run()`` until :meth:`stop`."""

    def __init__(
        self,
        config_path: str,
        backend: Backend,
        *,
        engine: Engine | None = None,
        events: EventSink | None = None,
        options: DirectorOptions | None = None,
        notify: Callable[[str], object] | None = None,
        loader: Callable[[str], Any] | None = None,
        logfile: LogTarget | None = None,
    ) -> None:
        self.loader = loader
        self.config_path = config_path
        self.file = ConfigFile(config_path)
        self.backend = backend
        self.engine = engine or Engine()
        self.events = events or EventSink()
        self.options = options or DirectorOptions()
        self.sd_notify: Callable[[str], object] = notify or (lambda _msg: None)
        self.logfile = logfile or LogTarget("none")
        self.scheduler: Scheduler | WorkerPool = self._scheduler()
        self.counters = Counters()
        self.actions = SideActions(self.events)
        self.view = KernelView(
            backend,
            self.counters,
            self.events,
            self._desired,
            lambda: self.layout.pools,
            self.options.flush_delay,
        )
        self.view.on_flushed = self._placed
        self.config: Any = None
        self.prepared: Any = None
        self.layout = Layout()
        self.reals: dict[str, P.RealState] = {}
        self.pools: dict[str, P.PoolState] = {}
        self.mail: dict[str, MailSettings] = {}
        self.ramping: set[str] = set()  # reals climbing back to their weight (slowstart=)
        self.probes: dict[str, SharedProbe] = {}  # probes several virtuals share, by scheduler id
        self.probe_of: dict[str, str] = {}  # slot id -> the shared probe that checks it
        self.warnings: tuple[str, ...] = ()
        self.started = time.time()
        self.state = "starting"
        self._stopping = asyncio.Event()
        self.reload_lock = asyncio.Lock()  # one reload at a time (reload.py)
        # set once every real is decided (no phase UNKNOWN) and that table is written (cluster agents wait)
        self.table_ready = asyncio.Event()
        self._undecided: tuple[list[P.RealState], dict[str, P.RealState]] | None = None
        self._background: list[asyncio.Task[None]] = []
        self.history = History()  # per-real latency and transition rings (status page)
        self.overrides = Overrides()  # drained reals and reals in maintenance (lvscheck drain)
        self.maintenance_held = False  # some real was held down by maintenance at the last look

    def _scheduler(self) -> Scheduler | WorkerPool:
        """Checks on this loop, or spread over ``workers`` processes (:mod:`.workers`)."""
        if self.options.workers <= 1:
            return Scheduler(self.engine, self.on_result, behind=self.options.behind)
        from lvscheck.daemon.workers import WorkerPool

        limits = self.engine.limits
        return WorkerPool(
            self.options.workers,
            self.on_result,
            max_in_flight=limits.total,
            per_host=limits.per_host,
            loop=self.options.worker_loop,
            cpu_budget=self.engine.cpu_budget,
        )

    @property
    def kernel(self) -> Table:
        """What the daemon believes the kernel IPVS table holds."""
        return self.view.table

    # -- life cycle ---------------------------------------------------------------------------

    def load_initial(self) -> None:
        """Read the config through the one road (raises ConfigError); call before :meth:`run`."""
        tune_gc()  # a big config allocates millions of objects: no full collection every few ms
        self.prepared = load(self.config_path, self.loader, self.engine.plugins)
        self.config = self.prepared.config
        self.file.remember()
        self.logfile.apply(self.config.settings.logfile)
        self.log_warnings("config")

    async def run(self) -> None:
        """Start (kernel first), run until stopped, then clean up as ``cleanstop`` says."""
        if self.prepared is None:
            self.load_initial()
        self.view.read()
        freeze_heap(full=True)  # the config read so far, before any check runs
        async with self.reload_lock:  # a SIGHUP between two slices waits for the whole first install
            with young_gc_only():
                await install(self, self.prepared, first=True)  # in slices: the first checks already run
        self._note_ready()
        freeze_heap()
        self.state = self.events.daemon_state = "running"
        self.events.emit(
            "start",
            config=self.config_path,
            virtuals=len(self.layout.pools),
            reals=len(self.reals),
            ipvs=self.backend.name,
        )
        self.sd_notify(f"READY=1\nSTATUS=checking {len(self.reals)} reals")
        loop = asyncio.get_running_loop()
        if self.options.reconcile > 0:
            self._background.append(loop.create_task(self.view.reconcile_every(self.options.reconcile)))
        self._background.append(
            loop.create_task(self._every(self.options.autoreload_every, self._autoreload))
        )
        self._background.append(loop.create_task(self._every(self.options.maintenance_every, self._minutely)))
        self._background.append(loop.create_task(self._every(0.25, self._ramp_tick)))
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload("SIGHUP")))

    async def _shutdown(self) -> None:
        self.state = self.events.daemon_state = "stopping"
        self.sd_notify("STOPPING=1")
        for task in self._background:
            task.cancel()
        await self.scheduler.close()
        self.view.close()
        removed = self.view.remove(p.service for p in self.layout.pools.values() if p.cleanstop)
        removed += self.view.remove_private(keep=self.layout.private_kept_at_stop())
        settings = self.config.settings if self.config is not None else None
        for key, pstate in self.pools.items():
            if pstate.all_down and key in self.layout.pools:
                self.actions.fallback_command(
                    self.layout.pools[key], "stop", settings and settings.fallbackcommand
                )
        kept = [p.name for p in self.layout.pools.values() if not p.cleanstop]
        self.events.emit("stop", removed=removed, kept=",".join(kept))
        await self.actions.drain()
        await self.events.drain()
        self.logfile.close()

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                outcome = job()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                log.exception("%s failed", getattr(job, "__name__", "a periodic job"))

    # -- config -------------------------------------------------------------------------------

    async def reload(self, why: str = "reload") -> bool:
        """Re-read the config; keep the old one if the new one has any error (see :mod:`.reload`)."""
        return await reload_config(self, why)

    def log_warnings(self, when: str) -> None:
        self.warnings = tuple(str(w) for w in self.prepared.warnings)
        for warning in self.warnings:
            log.warning("%s: %s", when, warning)

    async def _autoreload(self) -> None:
        if self.config is not None and self.config.settings.autoreload and self.file.touched():
            await self.reload("autoreload")

    def before_first_write(self) -> None:
        """Maintenance (maintenancedir, ``lvscheck maintenance``) holds before the first write."""
        self._minutely()

    def _minutely(self) -> None:
        directory = self.config.settings.maintenancedir if self.config is not None else None
        self.apply_maintenance(list_maintenancedir(directory) | self.overrides.maintenance)
        self.actions.remind_down(self.layout.pools, self.reals, self.mail)

    def apply_maintenance(self, names: Iterable[str]) -> None:
        """Hold down the reals ``names`` (maintenancedir entries) match; release the others."""
        results.apply_maintenance(self, names)

    def _ramp_tick(self) -> None:
        results.ramp_tick(self)

    def on_result(self, job: Job, result: Result, lag: float) -> None:
        """One check result of one real (the scheduler calls this): see :mod:`.results`."""
        results.on_result(self, job, result, lag)

    # -- the kernel ----------------------------------------------------------------------------

    def _desired(self, key: str) -> tuple[Service, Iterable[Dest]] | None:
        """What pool ``key`` should hold now; acts on its pool-wide flags (fallback)."""
        pool = self.layout.pools.get(key)
        if pool is None:
            return None
        in_kernel = self.kernel.dests.get(pool.service.key, {})
        readd = bool(self.config is not None and self.config.settings.readdquiescent)
        drained = self.overrides.drained_ids(
            pool.name, ((s, str(self.reals[s].slot.dest)) for s in pool.slots)
        )
        want = P.desired_pool(pool, self.reals, in_kernel, readdquiescent=readd, drained=drained)
        pstate = self.pools[key]
        if want.all_down != pstate.all_down:
            pstate.all_down = want.all_down
            command = self.config.settings.fallbackcommand if self.config is not None else None
            self.actions.fallback_command(pool, "start" if want.all_down else "stop", command)
        if want.fallback_on != pstate.fallback_active:
            pstate.fallback_active = want.fallback_on
            self.events.emit(
                "fallback-on" if want.fallback_on else "fallback-off",
                virtual=pool.name,
                real=str(pool.fallback),
            )
        return want.service, want.dests.values()

    def _placed(self, keys: set[str]) -> None:
        for key in keys:
            pool = self.layout.pools.get(key)
            if pool is not None:
                P.mark_placed(pool, self.reals, self.kernel.dests.get(pool.service.key, {}))
        self._note_ready()

    def _note_ready(self) -> None:
        if self.table_ready.is_set():
            return
        # reals never go back to UNKNOWN: drop the decided ones from the end of a list of the
        # undecided (made once per install), so the calls of a start are linear in all
        if self._undecided is None or self._undecided[1] is not self.reals:
            self._undecided = ([r for r in self.reals.values() if r.track.phase is Phase.UNKNOWN], self.reals)
        waiting = self._undecided[0]
        while waiting and waiting[-1].track.phase is not Phase.UNKNOWN:
            waiting.pop()
        if not waiting and not self.table_ready.is_set():
            self.table_ready.set()
            self.events.emit("ready", reals=len(self.reals), seconds=round(time.time() - self.started, 3))

    async def reconcile(self) -> list[Any]:
        """Read the kernel table now and restore whatever differs from what the daemon wants."""
        return await self.view.reconcile()

    def status(self) -> dict[str, Any]:
        """Everything ``lvscheck status`` shows (JSON-ready)."""
        return document(self)
