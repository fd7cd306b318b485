"""The director on the host: real nginx reals, an in-memory IPVS table (the kernel tests are marked ipvs).

The config is built as the typed model directly (``loader=``), so these tests do
not depend on the ldirectord.cf parser; the guest tests use real files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest
from tests.daemon.running import VIP, VIP2, run_with, until, virtual, weight
from tests.peers import free_port
from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.table import Dest, MemoryIPVS
from lvscheck.config.model import Config
from lvscheck.daemon.director import Director, DirectorOptions
from lvscheck.daemon.events import EventSink
from lvscheck.errors import ConfigError


@pytest.fixture(scope="module")
def reals(tmp_path_factory: pytest.TempPathFactory) -> list[RealNginx]:
    d = tmp_path_factory.mktemp("reals")
    out = [RealNginx(f"rs{i}", "127.0.0.1", free_port(), d) for i in range(3)]
    for r in out:
        r.start()
    yield out
    for r in out:
        r.stop()


def test_down_up_restart_without_drain(reals: list[RealNginx], tmp_path: Path) -> None:
    ports = [r.port for r in reals]
    cfg = Config("test.cf", virtuals=(virtual("10.9.0.1", [(p, 5) for p in ports], cleanstop=False),))
    ipvs = MemoryIPVS()
    events = tmp_path / "events.jsonl"
    director = Director("test.cf", ipvs, loader=lambda _p: cfg, events=EventSink(str(events)))

    async def body() -> None:
        await until(lambda: all(weight(ipvs, VIP, p) == 5 for p in ports), 5, "all reals up at weight 5")
        reals[1].stop()
        try:
            took = await until(lambda: weight(ipvs, VIP, ports[1]) == 0, 5, "stopped real at weight 0")
            # one check deadline (1 s) plus fall=2 checks at the fast interval, with slack
            assert took < 1.0 + 2 * 0.4 + 1.0
            assert weight(ipvs, VIP, ports[0]) == 5
        finally:
            reals[1].start()
        await until(lambda: weight(ipvs, VIP, ports[1]) == 5, 5, "restarted real back at weight 5")

    run_with(director, body)
    lines = events.read_text().splitlines()
    assert any('"event":"down"' in line and str(ports[1]) in line for line in lines)
    assert any('"event":"up"' in line and str(ports[1]) in line for line in lines)
    # cleanstop=no: the table is left as it was
    assert all(weight(ipvs, VIP, p) == 5 for p in ports)

    # A new daemon on the same kernel table: no healthy real ever drops to 0.
    seen: list[int | None] = []
    director2 = Director("test.cf", ipvs, loader=lambda _p: cfg)

    async def body2() -> None:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            seen.extend(weight(ipvs, VIP, p) for p in ports)
            await asyncio.sleep(0.005)

    run_with(director2, body2)
    assert seen
    assert set(seen) == {5}


def test_reload_touches_only_the_changed_virtual(
    reals: list[RealNginx], caplog: pytest.LogCaptureFixture
) -> None:
    ports = [r.port for r in reals]
    v1 = virtual("10.9.0.1", [(ports[0], 3), (ports[1], 3)])
    v2 = virtual("10.9.0.2", [(ports[2], 4)], line=10)
    configs: list[Config | Exception] = [Config("test.cf", virtuals=(v1, v2))]

    def loader(_path: str) -> Config:
        c = configs[-1]
        if isinstance(c, Exception):
            raise c
        return c

    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=loader, options=DirectorOptions(reconcile=0.3))

    async def body() -> None:
        await until(
            lambda: weight(ipvs, VIP, ports[0]) == 3 and weight(ipvs, VIP2, ports[2]) == 4,
            5,
            "both virtuals up",
        )
        checks_before = director.reals[f"tcp:10.9.0.2:80 127.0.0.1:{ports[2]}"].checks
        # change one weight of virtual 2 only
        v2b = dataclasses.replace(v2, reals=(dataclasses.replace(v2.reals[0], weight=9),))
        configs.append(Config("test.cf", virtuals=(v1, v2b)))
        writes = []
        real_apply = ipvs.apply

        def spy(ops):  # type: ignore[no-untyped-def]
            writes.extend(ops)
            return real_apply(ops)

        ipvs.apply = spy  # type: ignore[method-assign]
        assert await director.reload("test")
        assert writes
        assert all(op.service.key == VIP2 for op in writes), [str(o) for o in writes]
        assert weight(ipvs, VIP2, ports[2]) == 9
        # the check state of the real survived the reload
        assert director.reals[f"tcp:10.9.0.2:80 127.0.0.1:{ports[2]}"].checks >= checks_before

        # a bad config is refused, the old one keeps running and the error names file:line
        configs.append(ConfigError("test.cf:12: real=: bad", ("test.cf:12: real=: bad",)))
        with caplog.at_level(logging.ERROR, logger="lvscheck.daemon"):
            assert not await director.reload("test")
        assert "test.cf:12" in caplog.text
        n = director.scheduler.checks
        await asyncio.sleep(0.5)
        assert director.scheduler.checks > n
        assert weight(ipvs, VIP2, ports[2]) == 9

        # someone deletes a real and a whole virtual by hand: reconcile restores them
        del ipvs.table.dests[VIP][("127.0.0.1", ports[0])]
        del ipvs.table.services[VIP2]
        del ipvs.table.dests[VIP2]
        await until(
            lambda: weight(ipvs, VIP, ports[0]) == 3 and weight(ipvs, VIP2, ports[2]) == 9, 3, "restored"
        )

    run_with(director, body)
    assert VIP not in ipvs.table.services  # cleanstop=yes (the default)


def test_fallback_and_fallbackcommand_when_the_pool_is_down(tmp_path: Path) -> None:
    from lvscheck.config.model import Fallback

    out = tmp_path / "fallback.out"
    script = tmp_path / "fallback.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    dead = [free_port(), free_port()]
    cfg = Config(
        "test.cf",
        virtuals=(
            virtual(
                "10.9.0.1",
                [(p, 1) for p in dead],
                fallback=Fallback("127.0.0.9", 80, "masq"),
                quiescent=False,
                fallbackcommand=str(script),
            ),
        ),
    )
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)

    async def body() -> None:
        await until(lambda: ipvs.table.dest(VIP, "127.0.0.9", 80) is not None, 5, "fallback added")
        assert ipvs.table.dest(VIP, "127.0.0.9", 80) == Dest("127.0.0.9", 80, "masq", 1)
        assert all(weight(ipvs, VIP, p) is None for p in dead)  # quiescent=no: removed
        await until(lambda: out.exists() and out.read_text() != "", 5, "fallbackcommand ran")

    run_with(director, body)
    # and at shutdown its stop (ldirectord never runs it then: Debian bug 599918)
    assert out.read_text() == "start 10.9.0.1:80 tcp\nstop 10.9.0.1:80 tcp\n"


def test_maintenancedir_forces_a_real_down_and_it_rises_after(reals: list[RealNginx], tmp_path: Path) -> None:
    from lvscheck.config.model import Settings

    ports = [r.port for r in reals[:2]]
    mdir = tmp_path / "maint"
    mdir.mkdir()
    cfg = Config(
        "test.cf",
        settings=Settings(maintenancedir=str(mdir)),
        virtuals=(virtual("10.9.0.1", [(p, 5) for p in ports]),),
    )
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)

    async def body() -> None:
        await until(lambda: all(weight(ipvs, VIP, p) == 5 for p in ports), 5, "all up")
        (mdir / f"127.0.0.1:{ports[0]}").touch()
        await until(lambda: weight(ipvs, VIP, ports[0]) == 0, 3, "in maintenance: weight 0")
        await asyncio.sleep(0.5)  # good checks keep coming: it stays down
        assert weight(ipvs, VIP, ports[0]) == 0
        assert weight(ipvs, VIP, ports[1]) == 5
        (mdir / f"127.0.0.1:{ports[0]}").unlink()
        await until(lambda: weight(ipvs, VIP, ports[0]) == 5, 5, "out of maintenance: back after rise")

    run_with(director, body)
