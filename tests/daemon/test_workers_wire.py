"""The worker channel without processes: frames round-trip, results batch, combined checks alternate."""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

from lvscheck.checktype import Check
from lvscheck.daemon.scheduler import Job
from lvscheck.daemon.workers.child import SEND_EVERY, Outbox, Worker, WorkerJob
from lvscheck.daemon.workers.wire import FrameReader, encode
from lvscheck.engine import Engine
from lvscheck.model import CheckSpec, Result, State, Target


class _Ends:
    """What a :class:`FrameReader` handed on: the batches, and how the channel ended."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.ended: list[BaseException | None] = []

    def reader(self) -> FrameReader:
        return FrameReader(self.batches.append, self.ended.append)


def _feed(data: bytes, chunk: int) -> _Ends:
    ends = _Ends()
    reader = ends.reader()
    for i in range(0, len(data), chunk):
        reader.data_received(data[i : i + chunk])
    reader.eof_received()
    return ends


def _roundtrip(batch: list[Any]) -> list[Any] | None:
    ends = _feed(encode(batch), 1 << 20)
    assert ends.ended == [None]  # the end of the stream: the other side is gone
    return ends.batches[0] if ends.batches else None


def test_frames_come_out_whole_however_the_stream_is_cut() -> None:
    frames = [[("stop", i)] * (i + 1) for i in range(5)]
    data = b"".join(encode(f) for f in frames)
    for chunk in (1, 3, 7, len(data)):
        ends = _feed(data, chunk)
        assert ends.batches == frames, chunk
        assert ends.ended == [None]


def test_a_batch_that_fails_ends_the_channel_with_its_error() -> None:
    ended: list[BaseException | None] = []

    def refuse(batch: list[Any]) -> None:
        raise ValueError("a bug in the owner")

    reader = FrameReader(refuse, ended.append)
    reader.data_received(encode([("stop", 1)]) + encode([("stop", 2)]))
    reader.connection_lost(None)  # ends once only
    assert len(ended) == 1
    assert isinstance(ended[0], ValueError)


def test_a_check_spec_crosses_with_its_read_only_options() -> None:
    spec = CheckSpec("http", Target("127.0.0.2", 80), MappingProxyType({"request": "/test.html"}))
    op = ("start", 7, spec, None, 0, 2.0, 0.5, 0.1, False, 1.0)
    (back,) = _roundtrip([op]) or [None]
    assert back == op
    assert isinstance(back[2].options, MappingProxyType)
    assert back[2].target == Target("127.0.0.2", 80)


def test_a_frame_cut_short_reads_as_the_end() -> None:
    ends = _feed(encode([("stop", 1)])[:-2], 4)
    assert ends.batches == []
    assert ends.ended == [None]


class _Transport(asyncio.WriteTransport):
    """Records what the outbox writes (the socket to the main process, without one)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, list[Any]]] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        ends = _feed(bytes(data), 1 << 20)
        (batch,) = ends.batches
        self.frames.append((asyncio.get_running_loop().time(), batch))

    def is_closing(self) -> bool:
        return False


def test_steady_results_travel_together_and_a_change_goes_at_once() -> None:
    async def go() -> tuple[list[tuple[float, list[Any]]], float]:
        loop = asyncio.get_running_loop()
        sent = _Transport()
        box = Outbox(loop, sent)
        t0 = loop.time()
        for i in range(100):  # steady results over 100 loop ticks: one frame, at the end of the window
            box.add((i, "up"), changed=False)
            await asyncio.sleep(0)
        await asyncio.sleep(SEND_EVERY * 1.5)
        box.add((100, "up"), changed=False)
        box.add((101, "down"), changed=True)  # a real that failed: this tick, with the one before it
        box.add((102, "down"), changed=True)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return sent.frames, t0

    frames, t0 = asyncio.run(go())
    assert [len(batch) for _, batch in frames] == [100, 3]
    assert frames[0][0] - t0 >= SEND_EVERY * 0.9  # it waited for company
    assert [r[0] for r in frames[1][1]] == [100, 101, 102]


def test_the_worker_sends_a_real_s_first_result_and_its_changes_at_once() -> None:
    async def go() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        sent = _Transport()
        worker = Worker(loop, sent, Engine())
        wj = worker.jobs[1] = WorkerJob(1, _Named("full"), None, 0, False)
        job = Job("1", wj.pick, 2.0, 0.5, 0.0, wj.changing)
        target = Target("127.0.0.2", 80)
        frames: list[list[str]] = []
        for state in (State.UP, State.UP, State.DOWN, State.DOWN, State.UP):
            worker._on_result(job, Result("http", target, state, 1, "", 0.001), 0.0)
            await asyncio.sleep(0)
            frames.append([r[2] for _, batch in sent.frames for r in batch])
        await asyncio.sleep(SEND_EVERY * 1.5)
        frames.append([r[2] for _, batch in sent.frames for r in batch])
        return frames

    frames = asyncio.run(go())
    assert frames == [
        ["up"],  # the first result: at once
        ["up"],  # the same state again: waits
        ["up", "up", "down"],  # a change: at once, with the one that waited
        ["up", "up", "down"],
        ["up", "up", "down", "down", "up"],
        ["up", "up", "down", "down", "up"],
    ]


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


def test_a_worker_freezes_the_reals_it_was_given_out_of_the_collector_s_way() -> None:
    import gc

    async def go() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        worker = Worker(loop, _Transport(), Engine())
        spec = CheckSpec("http", Target("127.0.0.2", 80), MappingProxyType({"request": "/test.html"}))
        gc.unfreeze()
        before = gc.get_freeze_count()
        worker.apply([("start", i, spec, None, 0, 2.0, 0.5, 0.1, False, 3600.0) for i in range(1, 4)])
        after = gc.get_freeze_count()
        started = len(worker.scheduler)
        await worker.scheduler.close()
        return before, after, started

    try:
        before, after, started = asyncio.run(go())
    finally:
        gc.unfreeze()
    assert started == 3
    assert before == 0
    assert after > 0  # a reload of three reals too, not only a batch of over 1,000
