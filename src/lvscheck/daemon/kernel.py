"""The daemon's view of the kernel IPVS table: dirty pools, batched writes, reconcile.

The view is what the daemon believes the kernel holds: read once at start, then
patched with every write that succeeded.  A pool whose desired state may have
changed is marked *dirty*; dirty pools are diffed against the view and written
in one batch a few milliseconds later (:meth:`KernelView.mark`).  Every
``reconcile`` seconds the table is read again and whatever differs from what
the daemon wants (a real deleted by hand with ipvsadm, a weight changed) is
restored.  The writes themselves go through a :class:`Backend`
(:mod:`lvscheck.adapters.ipvs`).

A flush diffs pool by pool for at most :data:`FLUSH_BUDGET` seconds per loop turn: the
first results of a 40,000-real start mark hundreds of pools at once (diffing them in one
go held the loop for 0.1-0.5 s of CPU), so a big flush goes on in the next turns and its
writes still go out as one batch at its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING, Protocol

from lvscheck.adapters.ipvs.table import Dest, Op, OpError, OpKind, Service, ServiceKey, Table, plan

if TYPE_CHECKING:
    from lvscheck.config.via import MarkRange
    from lvscheck.daemon.events import EventSink
    from lvscheck.daemon.slices import Slicer
    from lvscheck.daemon.status import Counters

__all__ = ["FLUSH_BUDGET", "THREAD_WRITES", "Backend", "KernelView"]

#: A batch of at least this many writes goes to the backend from a thread (the loop runs on).
THREAD_WRITES = 2000
#: Seconds of loop time one turn of an ordinary flush may spend diffing pools (a pool is not cut).
FLUSH_BUDGET = 0.005

log = logging.getLogger("lvscheck.daemon")

#: pool key -> (service, destinations) it should have now; None for a pool that is gone
DesiredFn = Callable[[str], "tuple[Service, Iterable[Dest]] | None"]


class Backend(Protocol):
    """An IPVS table: :class:`~lvscheck.adapters.ipvs.netlink.NetlinkIPVS` or ``MemoryIPVS``."""

    name: str
    writes: int
    batches: int

    def dump(self) -> Table: ...

    def apply(self, ops: list[Op]) -> list[OpError]: ...

    def close(self) -> None: ...


class KernelView:
    """What the kernel holds, and the one way the daemon writes to it."""

    def __init__(
        self,
        backend: Backend,
        counters: Counters,
        events: EventSink,
        desired: DesiredFn,
        pool_keys: Callable[[], Iterable[str]],
        flush_delay: float = 0.01,
    ) -> None:
        self.backend = backend
        self.table = Table()
        self.counters = counters
        self.events = events
        self.desired = desired
        self.pool_keys = pool_keys
        self.flush_delay = flush_delay
        self.dirty: set[str] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        #: via=vip: the private firewall-mark services and the marks the daemon owns
        self.private: dict[ServiceKey, tuple[Service, Dest]] = {}
        self.owned: Container[int] = ()
        self.on_flushed: Callable[[set[str]], None] = lambda _keys: None
        #: an install is under way: writes wait (pools stay dirty) and reconcile skips, so that
        #: the install's change reaches the kernel as one batch at its end (:meth:`flush_sliced`)
        self.held = False
        #: one long writer at a time: an install's commit or a reconcile (both hold the view)
        self.session = asyncio.Lock()
        #: a flush too big for one loop turn, going on in slices (:meth:`_flush_rest`)
        self.flushing: asyncio.Task[None] | None = None

    def read(self) -> None:
        """Read the whole table (raises what the backend raises)."""
        self.table = self.backend.dump()

    def mark(self, keys: Iterable[str], *, now: bool = False) -> None:
        """Pools whose kernel entries may have to change; written together shortly."""
        self.dirty.update(keys)
        if self.held:
            return
        if now:
            self.flush()
        elif self._flush_handle is None and self.dirty:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.flush_delay, self.flush)

    def cancel(self) -> None:
        """Forget the scheduled flush (a flush under way in slices goes on)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def close(self) -> None:
        """At shutdown: no more flushes (the one under way is dropped); :meth:`remove` still writes."""
        self.held = True
        self.cancel()
        if self.flushing is not None:
            self.flushing.cancel()

    async def settle(self) -> None:
        """Wait for a flush under way in slices to end (its writes are not drift to restore)."""
        while self.flushing is not None:
            await asyncio.wait([self.flushing])

    def flush(self) -> None:
        """Write what the dirty pools need, in one batch (diffed in slices when there are many)."""
        self.cancel()
        if not self.dirty or self.held or self.flushing is not None:
            return  # a flush under way looks at the dirty pools again when it ends
        keys, self.dirty = list(self.dirty), set()
        ops: list[Op] = []
        later: list[Op] = []
        deadline = time.perf_counter() + FLUSH_BUDGET
        for done, key in enumerate(keys):
            if done and time.perf_counter() >= deadline:
                rest = self._flush_rest(keys, done, ops, later)
                self.flushing = asyncio.get_running_loop().create_task(rest, name="lvscheck-ipvs-flush")
                return
            self._diff_pool(key, ops, later)
        self.report(self.apply(ops + later))
        self.on_flushed(set(keys))

    async def _flush_rest(self, keys: list[str], done: int, ops: list[Op], later: list[Op]) -> None:
        """The rest of a big flush: the remaining pools between slices, then one batch."""
        from lvscheck.daemon.slices import Slicer

        slicer = Slicer(FLUSH_BUDGET)
        try:
            await slicer.yield_now()
            for key in keys[done:]:
                await slicer.pause()
                if self.held:
                    break
                self._diff_pool(key, ops, later)
            if self.held:  # an install or a reconcile took over: it diffs these pools itself
                self.dirty.update(keys)
                return
            self.report(self.apply(ops + later))
            await self._placed_sliced(keys, slicer)
        except asyncio.CancelledError:
            self.dirty.update(keys)
            raise
        finally:
            self.flushing = None
            if self.dirty and not self.held:
                self.mark(())

    def _diff_pool(self, key: str, ops: list[Op], later: list[Op]) -> None:
        """Add the writes that make the view hold what pool ``key`` wants (real deletions: ``later``)."""
        want = self.desired(key)
        if want is None:
            return
        service, dests = want
        desired, actual = Table(), Table()
        desired.add(service, dests)
        sk = service.key
        if sk in self.table.services:
            actual.add(self.table.services[sk], self.table.dests.get(sk, {}).values())
        for op in plan(desired, actual):
            (later if op.kind is OpKind.DEL_DEST else ops).append(op)

    async def flush_sliced(self, slicer: Slicer, gone: Iterable[Service] = ()) -> int:
        """Like :meth:`flush`, in slices of loop time, for an install (call while :attr:`held`).

        Deletes the ``gone`` services in the same batch.  The diff is made pool by pool
        between slices; the batch is written once, from a thread when it is large (the
        backend is not used by anything else while the view is held); the view is patched
        and the pools told (``on_flushed``) in slices again.  Returns the number of writes.
        """
        assert self.held, "flush_sliced is for an install, which holds the view"
        self.cancel()
        keys, self.dirty = self.dirty, set()
        removed = [Op(OpKind.DEL_SERVICE, s) for s in gone if s.key in self.table.services]
        ops = removed + await self._diff_sliced(keys, slicer)
        await slicer.pause()
        self.report(await self._apply_sliced(ops, slicer))
        await self._placed_sliced(keys, slicer)
        return len(ops)

    async def _diff_sliced(self, keys: Iterable[str], slicer: Slicer) -> list[Op]:
        """The writes that make the view hold what pools ``keys`` want, pool by pool between slices
        (services and additions first, deletions of reals last, as :func:`plan` orders them)."""
        ops: list[Op] = []
        later: list[Op] = []
        async for key in slicer.each(list(keys)):
            self._diff_pool(key, ops, later)
        return ops + later

    async def _placed_sliced(self, keys: Iterable[str], slicer: Slicer) -> None:
        """Tell the pools ``keys`` were written (``on_flushed``), a few at a time between slices."""
        batch: set[str] = set()
        async for key in slicer.each(list(keys)):
            batch.add(key)
            if len(batch) >= 16:  # each pool: a walk over its reals
                self.on_flushed(batch)
                batch = set()
        self.on_flushed(batch)

    async def _apply_sliced(self, ops: list[Op], slicer: Slicer) -> list[OpError]:
        if len(ops) < THREAD_WRITES:
            return self.apply(ops)
        if log.isEnabledFor(logging.DEBUG):
            for op in ops:
                log.debug("ipvs write: %s", op)
        try:
            errors = await asyncio.to_thread(self.backend.apply, ops)
            slicer.restart()
        except Exception as exc:
            self.counters.write_errors += len(ops)
            self.events.emit("ipvs-error", message=str(exc), ops=len(ops))
            return []
        failed = {id(e.op) for e in errors}
        async for op in slicer.each(ops):
            if id(op) not in failed:
                _patch(self.table, op)
        self.counters.write_errors += len(errors)
        return errors

    def sync_private(self, private: dict[ServiceKey, tuple[Service, Dest]], owned: MarkRange) -> None:
        """Make the kernel hold exactly these private (via=vip) services among the owned marks."""
        self.private = private
        self.owned = owned
        desired = self._private_table()
        actual = Table()
        for key in self.table.services:
            if key in private or self._stale(key):
                actual.add(self.table.services[key], self.table.dests.get(key, {}).values())
        self.report(self.apply(plan(desired, actual, remove=[k for k in actual.services if self._stale(k)])))

    def check_accept_local(self, conf: str = "/proc/sys/net/ipv4/conf") -> bool:
        """With private services: warn when no interface accepts replies from the director's own
        VIP (``accept_local``); every check through the VIP would time out.  True when fine."""
        if not self.private or _accepts_local(conf):
            return True
        self.events.emit(
            "via-vip-blocked",
            message="net.ipv4.conf.*.accept_local is 0 everywhere: the replies of checks through the VIP "
            "come from the VIP, an address of this director, and are dropped; set it to 1 on the "
            "interface facing the reals (docs/via-vip.md)",
        )
        return False

    def remove_private(self, keep: Container[ServiceKey] = ()) -> int:
        """Delete the private services (but ``keep``); returns how many went."""
        return self.remove(s for k, (s, _) in self.private.items() if k not in keep)

    def _private_table(self) -> Table:
        table = Table()
        for service, dest in self.private.values():
            table.add(service, [dest])
        return table

    def _stale(self, key: ServiceKey) -> bool:
        """A service with one of the daemon's private marks that it no longer wants."""
        return bool(key.fwmark) and key.fwmark in self.owned and key not in self.private

    def remove(self, services: Iterable[Service]) -> int:
        """Delete these services (those the kernel has); returns how many went."""
        ops = [Op(OpKind.DEL_SERVICE, s) for s in services if s.key in self.table.services]
        errors = self.apply(ops)
        self.report(errors)
        return len(ops) - len(errors)

    def apply(self, ops: list[Op]) -> list[OpError]:
        """Write ``ops``; keep the view in step with what succeeded."""
        if not ops:
            return []
        if log.isEnabledFor(logging.DEBUG):
            for op in ops:
                log.debug("ipvs write: %s", op)
        try:
            errors = self.backend.apply(ops)
        except Exception as exc:
            self.counters.write_errors += len(ops)
            self.events.emit("ipvs-error", message=str(exc), ops=len(ops))
            return []
        failed = {id(e.op) for e in errors}
        for op in ops:
            if id(op) not in failed:
                _patch(self.table, op)
        self.counters.write_errors += len(errors)
        return errors

    def report(self, errors: Iterable[OpError]) -> None:
        errors = list(errors)
        if not errors:
            return
        for e in errors[:20]:
            self.events.emit("ipvs-error", message=str(e))
        if len(errors) > 20:
            log.error("... and %d more IPVS write errors", len(errors) - 20)
        # The view is wrong somewhere: read the kernel again soon.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(0.5, lambda: loop.create_task(self.reconcile()))

    async def reconcile_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed")

    async def reconcile(self, pools: Iterable[str] | None = None) -> list[Op]:
        """Read the kernel table and restore whatever differs from what the daemon wants.

        In slices of loop time (40,000 reals took 0.4 s in one go, every ``reconcile``
        seconds); the view is held meanwhile (writes that results ask for wait and go out
        right after), and a large table is read from a thread.
        """
        await self.settle()
        if self.held or self.session.locked():
            return []  # an install (or another reconcile) is writing: the next round looks
        from lvscheck.daemon.slices import Slicer

        async with self.session:
            self.held = True
            try:
                return await self._reconcile(pools, Slicer())
            finally:
                self.held = False
                self.mark(())  # what results marked meanwhile goes out now

    async def _reconcile(self, pools: Iterable[str] | None, slicer: Slicer) -> list[Op]:
        try:
            if len(self.table) >= THREAD_WRITES:
                self.table = await asyncio.to_thread(self.backend.dump)
                slicer.restart()
            else:
                self.read()
        except Exception as exc:
            self.events.emit("ipvs-error", message=f"reading the IPVS table: {exc}")
            return []
        keys = list(pools) if pools is not None else list(self.pool_keys())
        ops = await self._diff_sliced(keys, slicer)
        if pools is None:  # the private (via=vip) services, and the stale ones of our marks
            stale = [k for k in self.table.services if self._stale(k)]
            ops = plan(self._private_table(), self.table, remove=stale) + ops
        if ops:
            self.counters.restored += len(ops)
            for op in ops[:20]:
                self.events.emit(
                    "restore",
                    message=f"the kernel table differs from the config: {op}",
                    virtual=str(op.service.key),
                    real=str(op.dest) if op.dest else "",
                )
            for e in await self._apply_sliced(ops, slicer):
                self.events.emit("ipvs-error", message=str(e))
        await self._placed_sliced(keys, slicer)
        return ops


def _accepts_local(conf: str) -> bool:
    """Whether ``accept_local`` is 1 for ``all`` or any interface (the kernel ORs the two)."""
    import glob

    for path in glob.glob(f"{conf}/*/accept_local"):
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return True
        except OSError:
            continue
    return False


def _patch(table: Table, op: Op) -> None:
    key = op.service.key
    if op.kind is OpKind.ADD_SERVICE or op.kind is OpKind.SET_SERVICE:
        table.services[key] = op.service
        table.dests.setdefault(key, {})
    elif op.kind is OpKind.DEL_SERVICE:
        table.services.pop(key, None)
        table.dests.pop(key, None)
    elif op.dest is not None:
        bucket = table.dests.setdefault(key, {})
        if op.kind is OpKind.DEL_DEST:
            bucket.pop(op.dest.key, None)
        else:
            bucket[op.dest.key] = op.dest
