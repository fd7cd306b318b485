"""Slow start: the ramp itself (pure), then the director with real nginx reals and an in-memory IPVS table.

The kernel-side test (the guest's real IPVS table, step by step) is in
tests/daemon/test_ipvs_slowstart.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.daemon.running import VIP, run_with, until, virtual, weight
from tests.peers import free_port
from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.table import MemoryIPVS
from lvscheck.cli.status_view import render
from lvscheck.config.model import Config, LvscheckSettings
from lvscheck.daemon import slowstart
from lvscheck.daemon.director import Director

# -- the ramp, pure ------------------------------------------------------------------------------


def test_steps_are_at_most_one_a_second_and_at_most_ten() -> None:
    assert [slowstart.steps_for(s) for s in (0.5, 1, 3, 10, 30, 300)] == [1, 1, 3, 10, 10, 10]


def test_ramp_climbs_in_steps_then_ends() -> None:
    ramp = slowstart.start(100.0, 3.0)
    assert ramp is not None
    weights = []
    for now in (100.0, 100.5, 101.0, 101.9, 102.0, 102.99):
        assert slowstart.advance(ramp, now) is not None
        weights.append(slowstart.cap(ramp, 10))
    assert weights == [2, 2, 5, 5, 7, 7]  # 10*k//4 for steps k = 1, 2, 3 of 3
    assert slowstart.advance(ramp, 103.0) is None  # over: the caller drops the ramp
    assert ramp.ends_in(103.5) == 0.0


def test_small_weights_never_reach_zero_and_off_means_no_ramp() -> None:
    ramp = slowstart.start(0.0, 10.0)
    assert ramp is not None
    assert slowstart.cap(ramp, 5) == 1  # 5*1//11 = 0: at least 1, so the real is not quiescent
    assert slowstart.cap(ramp, 1) == 1
    assert slowstart.cap(None, 7) == 7
    assert slowstart.start(0.0, 0.0) is None


def test_advance_reports_only_changes() -> None:
    ramp = slowstart.start(0.0, 10.0)
    assert ramp is not None
    assert slowstart.advance(ramp, 0.5) is False
    assert slowstart.advance(ramp, 1.0) is True
    assert slowstart.advance(ramp, 1.5) is False


def test_parsed_from_lvscheck_lines() -> None:
    from lvscheck.config import parse_text
    from lvscheck.errors import ConfigError

    text = "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 4\n\tservice=http\n\t#lvscheck: slowstart={}\n"
    assert parse_text(text.format("30")).virtuals[0].lvscheck.slowstart == 30.0
    assert parse_text(text.format("0")).virtuals[0].lvscheck.slowstart == 0.0
    with pytest.raises(ConfigError, match=r"slowstart.*expected seconds 0\.\.3600"):
        parse_text(text.format("soon"))


# -- the director: real nginx reals, weights in an in-memory table --------------------------------


@pytest.fixture(scope="module")
def reals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RealNginx]]:
    d = tmp_path_factory.mktemp("slowstart")
    out = [RealNginx(f"ss{i}", "127.0.0.1", free_port(), d) for i in range(2)]
    for r in out:
        r.start()
    yield out
    for r in out:
        r.stop()


def test_recovered_real_climbs_cold_start_does_not(reals: list[RealNginx], tmp_path: Path) -> None:
    ports = [r.port for r in reals]
    settings = LvscheckSettings(rise=1, interval=0.2, fastinterval=0.1, jitter=0.0, slowstart=3.0)
    cfg = Config("test.cf", virtuals=(virtual("10.9.0.1", [(p, 10) for p in ports], lvscheck=settings),))
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)
    seen: list[int | None] = []
    statuses: list[dict[str, object]] = []
    texts: list[str] = []  # what `lvscheck status` prints

    async def watch(port: int, stop_at: int, timeout: float) -> float:
        """Record the weights ``port`` has until it reaches ``stop_at``; return how long that took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            w = weight(ipvs, VIP, port)
            if not seen or seen[-1] != w:
                seen.append(w)
                texts.append(render(director.status()))
                real = next(
                    r for r in director.status()["virtuals"][0]["reals"] if r["real"].endswith(f":{port}")
                )
                statuses.append(real)
            if w == stop_at:
                return time.monotonic() - t0
            await asyncio.sleep(0.02)
        raise AssertionError(f"weight of {port} never reached {stop_at}: {seen}")

    async def body() -> None:
        # cold start: nothing else is up, so both go straight to their weight, no ramp
        await until(lambda: all(weight(ipvs, VIP, p) == 10 for p in ports), 5, "both up at 10")
        assert not director.ramping
        reals[1].stop()
        try:
            await until(lambda: weight(ipvs, VIP, ports[1]) == 0, 5, "stopped real at 0")
        finally:
            reals[1].start()
        seen.clear()
        batches = ipvs.batches
        took = await watch(ports[1], 10, 10)
        assert [w for w in seen if w] == [2, 5, 7, 10], seen  # three steps of one second, then all
        assert 2.8 < took < 4.5, took
        assert ipvs.batches - batches <= 5  # one batched write per step (and the up)
        ramping = [s["slowstart"] for s in statuses if s["slowstart"] is not None]
        assert ramping, statuses
        first = ramping[0]
        assert isinstance(first, dict)
        assert (first["weight"], first["target"], first["steps"]) == (2, 10, 3)
        assert statuses[-1]["slowstart"] is None  # over
        assert any(f":{ports[1]}" in t and "SLOW START 2/10 (step 1/3, " in t for t in texts), texts
        assert weight(ipvs, VIP, ports[0]) == 10  # the other real was never touched

        # a flap during the climb: down, then the climb starts again from the first step
        reals[1].stop()
        try:
            await until(lambda: weight(ipvs, VIP, ports[1]) == 0, 5, "stopped again")
        finally:
            reals[1].start()
        seen.clear()
        await until(lambda: weight(ipvs, VIP, ports[1]) == 5, 5, "climbing again")
        reals[1].stop()
        try:
            await until(lambda: weight(ipvs, VIP, ports[1]) == 0, 5, "flapped down mid-climb")
            assert ports[1] not in [int(s.split(":")[-1]) for s in director.ramping]
        finally:
            reals[1].start()
        seen.clear()
        await watch(ports[1], 10, 10)
        assert [w for w in seen if w] == [2, 5, 7, 10], seen

    run_with(director, body)
