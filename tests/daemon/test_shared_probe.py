"""One probe per real: one real behind three virtuals gets one check per interval, not three.

The connections are counted at the server, so the server is a small hand-written
HTTP responder (tests/peers/hostile.py) that counts what it accepts and answers
"Still alive"; the director is the real one, with an in-memory IPVS table.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from tests.daemon.running import run_with, until, virtual
from tests.peers.hostile import serve

from lvscheck.adapters.ipvs.table import MemoryIPVS, ServiceKey
from lvscheck.cli.status_view import render
from lvscheck.config.model import Config, LvscheckSettings
from lvscheck.daemon.director import Director

VIPS = ("10.9.1.1", "10.9.1.2", "10.9.1.3")


class CountingServer:
    def __init__(self) -> None:
        self.connections = 0
        self.up = True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.up:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nStill alive\n")
        else:
            writer.write(b"HTTP/1.1 503 Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()


@pytest.fixture
def server() -> Iterator[tuple[CountingServer, int]]:
    counting = CountingServer()
    with serve(counting.handle) as port:
        yield counting, port


def config(port: int, intervals: tuple[float, ...] = (0.5, 0.5, 0.5), share: bool = True) -> Config:
    virtuals = tuple(
        virtual(
            vip,
            [(port, 5)],
            line=10 * i + 1,
            lvscheck=LvscheckSettings(rise=1, interval=iv, fastinterval=0.2, jitter=0.0, shareprobe=share),
        )
        for i, (vip, iv) in enumerate(zip(VIPS, intervals, strict=True))
    )
    return Config("test.cf", virtuals=virtuals)


def weights(ipvs: MemoryIPVS, port: int) -> list[int | None]:
    out = []
    for vip in VIPS:
        d = ipvs.table.dest(ServiceKey.tcp(vip, 80), "127.0.0.1", port)
        out.append(None if d is None else d.weight)
    return out


def connections_in(cfg: Config, srv: CountingServer, port: int, seconds: float) -> tuple[int, Director]:
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)
    counted: list[int] = []

    async def body() -> None:
        await until(lambda: weights(ipvs, port) == [5, 5, 5], 5, "the real up in all three virtuals")
        start = srv.connections
        await asyncio.sleep(seconds)
        counted.append(srv.connections - start)

    run_with(director, body)
    return counted[0], director


def test_one_connection_per_interval_not_three(server: tuple[CountingServer, int]) -> None:
    srv, port = server
    shared, director = connections_in(config(port), srv, port, 3.0)
    assert 4 <= shared <= 8, shared  # 3 s at 0.5 s: about 6 checks, once each
    assert len(director.probes) == 1
    srv.connections = 0
    separate, _ = connections_in(config(port, share=False), srv, port, 3.0)
    assert 14 <= separate <= 22, separate  # three loops: about 18
    assert separate >= 2.5 * shared


def test_shortest_interval_wins_and_status_names_the_sharers(server: tuple[CountingServer, int]) -> None:
    srv, port = server
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: config(port, intervals=(2.0, 0.5, 1.0)))
    seen: dict[str, object] = {}

    async def body() -> None:
        await until(lambda: weights(ipvs, port) == [5, 5, 5], 5, "up everywhere")
        [probe] = director.probes.values()
        assert probe.schedule[0] == 0.5
        start = srv.connections
        await asyncio.sleep(2.0)
        seen["count"] = srv.connections - start
        doc = director.status()
        seen["shared"] = doc["virtuals"][0]["reals"][0]["shared_probe"]
        seen["text"] = render(doc)
        # rise/fall stay per pool, and all three pools see the real go down
        srv.up = False
        await until(lambda: weights(ipvs, port) == [0, 0, 0], 5, "down in all three")
        srv.up = True
        await until(lambda: weights(ipvs, port) == [5, 5, 5], 5, "back in all three")

    run_with(director, body)
    assert 2 <= int(seen["count"]) <= 6  # type: ignore[call-overload]
    shared = seen["shared"]
    assert isinstance(shared, dict)
    assert shared["with"] == ["10.9.1.2:80", "10.9.1.3:80"]
    assert shared["probe"].startswith(f"probe http 127.0.0.1:{port} ")
    assert "(probe shared with 10.9.1.2:80, 10.9.1.3:80) HTTP 200 OK" in str(seen["text"])  # lvscheck status


def test_different_options_are_not_shared(server: tuple[CountingServer, int]) -> None:
    _srv, port = server
    cfg = config(port)
    other = dataclasses.replace(cfg.virtuals[2], options={"request": "/other.html", "receive": "Still alive"})
    cfg = Config("test.cf", virtuals=(cfg.virtuals[0], cfg.virtuals[1], other))
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg)

    async def body() -> None:
        await until(lambda: weights(ipvs, port) == [5, 5, 5], 5, "up everywhere")
        [probe] = director.probes.values()
        assert len(probe.members) == 2
        assert director.status()["virtuals"][2]["reals"][0]["shared_probe"] is None

    run_with(director, body)


def test_reload_regroups(server: tuple[CountingServer, int]) -> None:
    _srv, port = server
    current = [config(port)]
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: current[0])

    async def body() -> None:
        await until(lambda: weights(ipvs, port) == [5, 5, 5], 5, "up everywhere")
        [probe] = director.probes.values()
        assert len(probe.members) == 3
        alone = current[0].virtuals[2]
        settings = dataclasses.replace(alone.lvscheck, shareprobe=False)
        current[0] = Config(
            "test.cf", virtuals=(*current[0].virtuals[:2], dataclasses.replace(alone, lvscheck=settings))
        )
        assert await director.reload("test")
        [probe] = director.probes.values()
        assert len(probe.members) == 2
        sid = director.layout.pools[alone.key].slots[0]
        assert sid in director.scheduler  # its own check loop again
        assert director.reals[sid].job is not probe.job
        assert weights(ipvs, port) == [5, 5, 5]  # nothing went down on the way
        # and back: one probe for all three, the lone loop stopped
        current[0] = config(port)
        assert await director.reload("test")
        [probe] = director.probes.values()
        assert len(probe.members) == 3
        assert sid not in director.scheduler

    run_with(director, body)
