"""The event stream without a browser: a snapshot, then deltas with only the reals that changed,
gzipped for a client that asks; and nothing runs while nobody watches."""

from __future__ import annotations

import json
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import Daemon, config, wait


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, RealNginx, int]]:
    real = RealNginx("live", "127.0.0.1", free_port(), tmp_path)
    real.start()
    dead = free_port()
    cf = tmp_path / "live.cf"
    cf.write_text(config([real.port, dead]))
    d = Daemon(tmp_path, cf).start()
    try:
        wait(lambda: d.real(real.port)["state"] == "up", 15, "up")
        yield d, real, dead
    finally:
        d.stop()
        real.stop()


def read_events(port: int, seconds: float, gzip: bool) -> tuple[bytes, list[tuple[str, dict[str, object]]]]:
    s = socket.create_connection(("127.0.0.1", port))
    head = b"GET /events HTTP/1.1\r\nHost: t\r\n" + (b"Accept-Encoding: gzip\r\n" if gzip else b"") + b"\r\n"
    s.sendall(head)
    s.settimeout(0.2)
    raw = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = s.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            break
        raw += chunk
    s.close()
    header, _, body = raw.partition(b"\r\n\r\n")
    if gzip:
        body = zlib.decompressobj(31).decompress(body)
    events = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"event: "):
            kind, _, data = block.partition(b"\ndata: ")
            events.append((kind[7:].decode(), json.loads(data)))
    return header, events


def _settled(d: Daemon, timeout: float = 15.0) -> None:
    """Until the healthy real is up with no change under way (and a moment more)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        first = d.status()["virtuals"][0]["reals"][0]
        if first["state"] == "up" and not first["streak"]:
            time.sleep(1.0)
            return
        time.sleep(0.1)
    raise AssertionError("the healthy real did not settle up")


@pytest.mark.parametrize("gzip", [False, True])
def test_snapshot_then_deltas_of_what_changed(daemon: tuple[Daemon, RealNginx, int], gzip: bool) -> None:
    d, real, dead = daemon
    _settled(d)  # the other gzip case stopped and restarted the real: let it rise again first
    assert d.status()["page"]["ticks"] == 0  # nobody watched yet: the delta loop never ran
    header, events = read_events(d.port, 3.5, gzip)
    assert (b"Content-Encoding: gzip" in header) is gzip
    kinds = [k for k, _ in events]
    assert kinds[0] == "snapshot"
    assert kinds.count("delta") >= 2
    snap = events[0][1]
    names = [r["real"] for r in snap["virtuals"][0]["reals"]]  # type: ignore[index]
    assert names == [f"127.0.0.1:{real.port}", f"127.0.0.1:{dead}"]
    rows = [row for k, e in events[1:] if k == "delta" for row in e["rows"]]  # type: ignore[attr-defined]
    assert rows, "the reals are checked every 0.3 s: each delta has rows"
    assert {row[0] for row in rows} == {0, 1}
    up = [row for row in rows if row[0] == 0]
    assert all(len(row) == 4 for row in up)  # a settled real: only new checks, short rows
    assert all(row[3] for row in up)  # the latencies of the new checks
    assert up[-1][1] > snap["virtuals"][0]["reals"][0]["seq"]  # type: ignore[index]
    assert [row[1] for row in up] == sorted(row[1] for row in up)
    health = events[-1][1]["health"]
    assert health["state"] == "running"  # type: ignore[index]
    page = d.status()["page"]
    assert page["ticks"] >= 2
    real.stop()
    _, events = read_events(d.port, 2.5, gzip)
    full = [row for k, e in events if k == "delta" for row in e["rows"] if row[0] == 0 and len(row) == 13]  # type: ignore[attr-defined]
    assert full, "the real went down: a full row"
    assert full[-1][1] == "down"
    assert full[-1][3] == 0  # kernel weight (quiescent)
    assert full[-1][12][-1][1:3] == ["up", "down"]  # the timeline's last transition
    real.start()
    page = d.status()["page"]
    time.sleep(2.5)
    assert d.status()["page"]["ticks"] == page["ticks"]  # the watcher left: no more ticks
