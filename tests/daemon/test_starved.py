"""A failure while the event loop was blocked is not held against the real.

The engine marks such a result ``details["starved"]`` (tests/test_hostile_engine.py
shows the marking); here the director is fed marked results by hand, as in
test_director.py's pool-guard test, with real nginx reals behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.daemon.running import VIP, run_with, until, virtual, weight
from tests.peers import free_port
from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.table import MemoryIPVS
from lvscheck.config.model import Config
from lvscheck.daemon.director import Director
from lvscheck.model import Result, State, Target


@pytest.fixture(scope="module")
def reals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RealNginx]]:
    d = tmp_path_factory.mktemp("reals")
    out = [RealNginx(f"rs{i}", "127.0.0.1", free_port(), d) for i in range(2)]
    for r in out:
        r.start()
    yield out
    for r in out:
        r.stop()


def test_failures_during_a_blocked_loop_are_held(reals: list[RealNginx]) -> None:
    ports = [r.port for r in reals]
    cfg = Config("test.cf", virtuals=(virtual("10.9.0.1", [(p, 2) for p in ports]),))
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)
    timeout = "timed out after 1 s waiting for the response headers"

    async def body() -> None:
        await until(lambda: all(weight(ipvs, VIP, p) == 2 for p in ports), 5, "all up")
        for rs in director.reals.values():
            director.scheduler.stop(rs.slot.id)  # feed results by hand from here on
        first = next(iter(director.reals.values()))
        assert first.job is not None
        for _ in range(5):  # one real, far past fall=2, each failure during a blocked loop
            res = Result("http", Target("127.0.0.1", 1), State.DOWN, 0, timeout, 1.0, {"starved": 1.4})
            director.on_result(first.job, res, 0.0)
        await asyncio.sleep(0.1)
        assert all(weight(ipvs, VIP, p) == 2 for p in ports)  # (before: the real went down)
        assert director.counters.held >= 5
        for _ in range(2):  # the same failures on a calm loop count
            res = Result("http", Target("127.0.0.1", 1), State.DOWN, 0, timeout, 1.0)
            director.on_result(first.job, res, 0.0)
        await until(lambda: weight(ipvs, VIP, first.slot.dest.port) == 0, 2, "calm failures count")

    run_with(director, body)
