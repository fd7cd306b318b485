"""A big reload runs in slices, keeps every untouched real as it was, and writes the kernel once.

3,000 reals (30 virtuals of the same 100 TCP listeners, ``shareprobe=no`` so each is its own
check), connect checks, an in-memory IPVS table.  The listeners are plain asyncio servers
in the test's loop that accept and close (a connect check needs nothing more).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable

import pytest
from tests.daemon.running import run_with, until, virtual

from lvscheck.adapters.ipvs.table import MemoryIPVS
from lvscheck.config.model import Config, LvscheckSettings, VirtualService
from lvscheck.daemon import reload as reload_module
from lvscheck.daemon import slices
from lvscheck.daemon.director import Director
from lvscheck.daemon.state import Phase

VIRTUALS = 30
PER_VIRTUAL = 100


def _virtuals(ports: list[int], weight: Callable[[int, int], int]) -> list[VirtualService]:
    settings = LvscheckSettings(rise=1, interval=600, fastinterval=600, jitter=0.0, shareprobe=False)
    return [
        virtual(
            f"10.9.1.{v + 1}",
            [(p, weight(v, i)) for i, p in enumerate(ports)],
            line=1 + v * (PER_VIRTUAL + 2),
            service=None,
            checktype="connect",
            options={},
            lvscheck=settings,
        )
        for v in range(VIRTUALS)
    ]


async def _listeners(n: int) -> list[asyncio.Server]:
    async def close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    return [await asyncio.start_server(close, "127.0.0.1", 0, backlog=512) for _ in range(n)]


def _changed(first: list[VirtualService]) -> list[VirtualService]:
    """300 weights changed (virtuals 1-3), 50 reals of virtual 0 removed, one virtual of 100 added."""
    out = [dataclasses.replace(first[0], reals=first[0].reals[50:])]
    for v in first[1:4]:
        out.append(dataclasses.replace(v, reals=tuple(dataclasses.replace(r, weight=7) for r in v.reals)))
    out += first[4:]
    extra = dataclasses.replace(first[-1], address="10.9.2.1", line=first[-1].line + 1000)
    return [*out, extra]


def test_a_big_reload_runs_in_slices_and_writes_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    ipvs = MemoryIPVS()
    configs: list[Config] = []
    director = Director("test.cf", ipvs, loader=lambda _p: configs[-1])

    async def body() -> None:
        await until(lambda: len(director.reals) == VIRTUALS * PER_VIRTUAL, 20, "first install done")
        await until(lambda: director.table_ready.is_set(), 60, "every real checked once")
        assert all(rs.track.phase is Phase.UP for rs in director.reals.values())
        before = {sid: (rs, rs.job, rs.checks) for sid, rs in director.reals.items()}
        batches, writes = ipvs.batches, ipvs.writes
        configs.append(Config("test.cf", virtuals=tuple(_changed(list(configs[0].virtuals)))))
        ticks = 0
        consistent = True

        async def watch() -> None:  # the loop runs between slices, and status is whole each time
            nonlocal ticks, consistent
            while True:
                await asyncio.sleep(0)
                ticks += 1
                doc = director.status()
                consistent &= sum(len(v["reals"]) for v in doc["virtuals"]) == len(director.reals)

        watcher = asyncio.create_task(watch())
        assert await director.reload("test")
        watcher.cancel()
        report = director.counters.last_reload
        assert report is not None
        assert report["slices"] >= 5, report
        # 5 ms slices; all 3,000 reals in one go took about 300 ms of CPU (a generous bound: the
        # clock is the thread's CPU time, which another process on the core does not stretch)
        assert report["longest_slice_cpu_ms"] < 100, report
        assert ticks >= 5, ticks
        assert consistent
        # one batch: 50 reals deleted, 300 weights set, 1 service and its 100 reals added
        assert ipvs.batches - batches == 1
        assert ipvs.writes - writes == 50 + 300 + 1 + 100
        assert report["ipvs_writes"] == 451
        assert (report["kept"], report["added"], report["removed"]) == (2950, 100, 50)
        # the kept reals are the same objects with their state and counts; those untouched by
        # the change go on on the same check loop (a new weight is a new check spec: a new loop)
        reweighted = {f"tcp:10.9.1.{v + 1}:80" for v in (1, 2, 3)}
        for sid, rs in director.reals.items():
            if sid in before:
                was, job, checks = before[sid]
                assert rs is was, sid
                assert rs.checks >= checks, sid
                assert rs.job is job or rs.slot.pool in reweighted, sid
                assert rs.track.phase is Phase.UP
        assert director.counters.transitions == VIRTUALS * PER_VIRTUAL  # only the first ups

        # the added virtual's reals come up within first_round (1 s); once their writes are out,
        # reconcile below has only the hand-made change to restore (a write still waiting for
        # its flush would count as one too)
        view = director.view
        await until(
            lambda: (
                all(rs.track.phase is Phase.UP for rs in director.reals.values())
                and not view.dirty
                and view.flushing is None
            ),
            30,
            "the added reals up and written",
        )

        # reconcile runs in slices too, and restores what was changed behind the daemon's back
        key = next(iter(director.layout.pools.values())).service.key
        dest = next(iter(ipvs.table.dests[key].values()))
        ipvs.table.dests[key].pop(dest.key)
        # slices of 0.2 ms, and a watcher that only counts: how often the loop ran does not
        # depend on the machine's speed (3,000 reals are many such slices anywhere; in one
        # go, only the wait for the table's read in a thread would let the loop run)
        monkeypatch.setattr(slices, "Slicer", functools.partial(slices.Slicer, 0.0002))
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        watcher = asyncio.create_task(count())
        restored = await director.reconcile()
        watcher.cancel()
        assert [str(op) for op in restored] == [f"add real {dest} weight {dest.weight} ({key})"]
        assert turns >= 10, turns

    async def main() -> None:
        servers = await _listeners(PER_VIRTUAL)
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        configs.append(Config("test.cf", virtuals=tuple(_virtuals(ports, lambda _v, _i: 3))))
        task = asyncio.create_task(director.run())
        try:
            await body()
        finally:
            director.stop()
            await task
            for s in servers:
                s.close()

    asyncio.run(main())


def test_a_reload_that_fails_while_planned_leaves_the_old_config_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ipvs = MemoryIPVS()
    cfg = Config("test.cf", virtuals=tuple(_virtuals([1, 2, 3], lambda _v, _i: 3)[:2]))
    configs = [cfg]
    director = Director("test.cf", ipvs, loader=lambda _p: configs[-1])

    async def body() -> None:
        await until(lambda: len(director.reals) == 6, 10, "installed")
        layout, reals, table = director.layout, dict(director.reals), ipvs.table.copy()
        jobs = {sid: rs.job for sid, rs in reals.items()}
        configs.append(Config("test.cf", virtuals=tuple(_changed(list(cfg.virtuals)))))
        calls = 0

        def failing(weight: int | None) -> object:
            nonlocal calls
            calls += 1
            raise RuntimeError("a bug while planning")

        monkeypatch.setattr(reload_module, "initial_track", failing)
        assert not await director.reload("test")
        assert calls == 1
        assert director.layout is layout
        assert director.reals == reals
        assert {sid: rs.job for sid, rs in director.reals.items()} == jobs
        assert all(sid in director.scheduler for sid in jobs)
        assert ipvs.table == table
        last = director.counters.last_reload
        assert last is not None
        assert not last["ok"]
        assert "RuntimeError: a bug while planning" in last["problems"][0]
        assert not director.view.held

    run_with(director, body)
