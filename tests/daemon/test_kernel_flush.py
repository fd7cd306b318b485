"""A flush of many dirty pools is diffed in slices and still written as one batch (issue 18 part 4).

The first results of a 40,000-real start mark hundreds of pools at once; diffing them all
in the flush's one callback held the daemon's loop for 0.1-0.5 s of CPU (seen in
``bench/reload_40k.py``).  Here 400 pools of 100 reals, an in-memory IPVS table (no kernel
needed: the point is the loop, not the writes), and a task that counts the loop's turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tests.daemon.running import until

from lvscheck.adapters.ipvs.table import Dest, MemoryIPVS, Service, ServiceKey
from lvscheck.daemon.events import EventSink
from lvscheck.daemon.kernel import KernelView
from lvscheck.daemon.status import Counters

POOLS = 400
REALS = 100


def _view(weight: dict[str, int]) -> tuple[KernelView, MemoryIPVS]:
    services = {f"p{p}": Service(ServiceKey.tcp(f"10.9.{p // 200}.{p % 200 + 1}", 80)) for p in range(POOLS)}

    def desired(key: str) -> tuple[Service, Iterable[Dest]]:
        w = weight.get(key, 1)
        return services[key], [Dest(f"127.1.{r // 250}.{r % 250 + 1}", 80, "masq", w) for r in range(REALS)]

    ipvs = MemoryIPVS()
    return KernelView(ipvs, Counters(), EventSink(), desired, lambda: services, 0.0), ipvs


class _Turns:
    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


def test_a_flush_of_many_pools_runs_in_slices_and_writes_one_batch() -> None:
    async def main() -> None:
        flushed: list[set[str]] = []
        view, ipvs = _view({})
        view.on_flushed = flushed.append
        turns = _Turns()
        diffed_in: dict[int, int] = {}  # loop turn -> pools diffed in it
        wanted = view.desired

        def desired(key: str) -> tuple[Service, Iterable[Dest]] | None:
            diffed_in[turns.count] = diffed_in.get(turns.count, 0) + 1
            return wanted(key)

        view.desired = desired
        view.mark([f"p{p}" for p in range(POOLS)])
        await until(lambda: len(view.table) == POOLS * REALS, 60, "every pool written")
        await until(lambda: len(set().union(*flushed)) == POOLS, 10, "each pool told it was placed")
        turns.task.cancel()
        # 40,000 reals took about 0.2 s of CPU to diff in one go: now the loop turns in between
        assert sum(diffed_in.values()) == POOLS
        assert len(diffed_in) >= 5, diffed_in
        assert max(diffed_in.values()) < POOLS // 2, diffed_in
        assert ipvs.batches == 1
        assert ipvs.writes == POOLS * (1 + REALS)

    asyncio.run(main())


def test_an_install_that_holds_the_view_takes_over_a_flush_under_way() -> None:
    async def main() -> None:
        weight: dict[str, int] = {}
        view, ipvs = _view(weight)
        view.mark([f"p{p}" for p in range(POOLS)])
        await until(lambda: len(view.table) == POOLS * REALS, 60, "every pool written")
        await until(lambda: view.flushing is None, 10, "the first flush ended")
        batches = ipvs.batches
        weight.update({f"p{p}": 2 for p in range(POOLS)})
        view.mark(weight)
        await until(lambda: view.flushing is not None, 10, "a flush in slices")
        view.held = True  # an install (or reconcile) starts: the flush under way stops, writes nothing
        await until(lambda: view.flushing is None, 10, "the flush stepped aside")
        assert ipvs.batches == batches
        assert view.dirty == set(weight)  # the install's own batch covers them
        view.held = False
        view.mark(())
        await until(lambda: ipvs.batches == batches + 1 and view.flushing is None, 60, "written after")
        assert all(d.weight == 2 for dests in ipvs.table.dests.values() for d in dests.values())

        view.mark(weight | {"p0": 3})
        weight["p0"] = 3
        await until(lambda: view.flushing is not None, 10, "another flush in slices")
        view.close()  # shutdown: the flush under way is dropped, nothing more is written
        await asyncio.sleep(0.1)
        assert view.flushing is None
        assert ipvs.batches == batches + 1

    asyncio.run(main())
