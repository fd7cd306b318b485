"""The worker channel's pieces without processes: frames round-trip, combined checks alternate."""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

from lvscheck.checktype import Check
from lvscheck.daemon.workers.child import WorkerJob
from lvscheck.daemon.workers.wire import encode, read_frame
from lvscheck.model import CheckSpec, Target


def _roundtrip(batch: list[Any]) -> list[Any] | None:
    async def go() -> list[Any] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(encode(batch))
        reader.feed_eof()
        first = await read_frame(reader)
        assert await read_frame(reader) is None  # the end of the stream: the other side is gone
        return first

    return asyncio.run(go())


def test_a_check_spec_crosses_with_its_read_only_options() -> None:
    spec = CheckSpec("http", Target("127.0.0.2", 80), MappingProxyType({"request": "/test.html"}))
    op = ("start", 7, spec, None, 0, 2.0, 0.5, 0.1, False, 1.0)
    (back,) = _roundtrip([op]) or [None]
    assert back == op
    assert isinstance(back[2].options, MappingProxyType)
    assert back[2].target == Target("127.0.0.2", 80)


def test_a_frame_cut_short_reads_as_the_end() -> None:
    async def go() -> list[Any] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(encode([("stop", 1)])[:-2])
        reader.feed_eof()
        return await read_frame(reader)

    assert asyncio.run(go()) is None


class _Named(Check):
    def __init__(self, name: str) -> None:  # no prepare: pick() only hands the object back
        self.label = name


def test_combined_checks_alternate_in_the_worker() -> None:
    full, connect = _Named("full"), _Named("connect")
    job = WorkerJob(1, full, connect, 2, False)
    picked = []
    for _ in range(6):
        chosen = job.pick()
        picked.append((getattr(chosen, "label", "?"), job.used_connect))
    assert picked == [
        ("full", False),
        ("connect", True),
        ("connect", True),
        ("full", False),
        ("connect", True),
        ("connect", True),
    ]
