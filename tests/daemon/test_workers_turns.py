"""The main process's side of the workers never holds its loop for a whole backlog (issue 18 part 4).

No worker process here: the test plays the worker's end of the socketpair (results written
to it, schedule changes read from it), so what is measured is the main side alone.  A loop
turn is counted by a task that does nothing but ``await asyncio.sleep(0)``: it runs once per
turn of the loop, so the results handed on between two of its steps were handled in one turn.

* 10,000 results waiting in the socket (20 frames of 500, as after a start's first checks
  or a main loop that was starved) reach ``on_result`` at most 256 per turn, in order, and
  the channels are paused while the intake is full;
* 10,000 ``start`` ops (a reload, or a worker restarted with its reals) go out in frames of
  at most 64 ops over many turns, in order, and not as one frame encoded in one go.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from types import SimpleNamespace
from typing import Any

from tests.daemon.running import until

from lvscheck.daemon.scheduler import Job
from lvscheck.daemon.workers import pool as pool_module
from lvscheck.daemon.workers.pool import WorkerPool, _Entry
from lvscheck.daemon.workers.wire import encode
from lvscheck.model import CheckSpec, Target

#: what a loop turn may hand to on_result (pool.RESULTS_PER_TURN; a frame of the test holds 500)
PER_TURN = 256
#: ops in one frame to a worker at most (pool.OPS_PER_FRAME)
PER_FRAME = 64


class _Turns:
    """Counts the loop's turns."""

    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


def _spec(i: int) -> CheckSpec:
    target = Target(f"127.0.{i // 250 + 1}.{i % 250 + 1}", 8080, 1, "10.200.0.1:80", "masq")
    return CheckSpec("http", target, {"request": "/test.html", "receive": "Still alive"})


def _pool_with_entries(n: int, on_result: Any) -> WorkerPool:
    """A pool whose worker 0 owns ``n`` jobs (handles 1..n), without starting any process."""
    pool = WorkerPool(2, on_result)
    for handle in range(1, n + 1):
        spec = _spec(handle)
        check = SimpleNamespace(name="http", spec=spec)  # what a result is built from
        job = Job(str(handle), lambda c=check: c, 5.0, 5.0, 0.0, lambda: False)
        entry = _Entry(job, handle, 0, check, None, 0, False)  # type: ignore[arg-type]
        pool._jobs[job.id] = entry
        pool._by_handle[handle] = entry
    return pool


def test_results_are_handed_on_a_few_hundred_per_loop_turn() -> None:
    frames, per_frame = 20, 500
    total = frames * per_frame

    async def main() -> None:
        seen: list[tuple[int, int]] = []  # (turn, handle)
        waiting: list[int] = []
        turns = _Turns()
        pool: WorkerPool

        def on_result(job: Job, _result: Any, _lag: float) -> None:
            seen.append((turns.count, int(job.id)))
            waiting.append(len(pool._inbox))

        pool = _pool_with_entries(total, on_result)
        mine, theirs = socket.socketpair()
        theirs.setblocking(False)
        data = b"".join(
            encode(
                [
                    (f * per_frame + i + 1, False, "up", 1, "HTTP 200", 0.001, None, 0.0)
                    for i in range(per_frame)
                ]
            )
            for f in range(frames)
        )
        loop = asyncio.get_running_loop()
        sending = loop.create_task(loop.sock_sendall(theirs, data))
        await asyncio.sleep(0.2)  # the first frames wait in the socket before the channel is read
        serving = loop.create_task(pool._serve(pool._workers[0], mine))
        try:
            await until(lambda: len(seen) >= total, 60, "every result handed on")
            await sending
        finally:
            pool._closing = True
            serving.cancel()
            turns.task.cancel()
            theirs.close()
            await pool.close()
        assert [h for _, h in seen] == list(range(1, total + 1))  # all, in order
        per_turn: dict[int, int] = {}
        for turn, _ in seen:
            per_turn[turn] = per_turn.get(turn, 0) + 1
        assert max(per_turn.values()) <= PER_TURN, max(per_turn.values())
        assert len(per_turn) >= total // PER_TURN
        # the channels are not read while the intake is full (then read again: all arrived)
        assert pool.pauses >= 1
        assert max(waiting) >= pool_module.RESULTS_WAITING - PER_TURN, max(waiting)
        assert pool.checks == total

    asyncio.run(main())


def test_schedule_changes_go_out_in_small_frames_over_several_turns() -> None:
    n = 10_000

    async def main() -> None:
        pool = _pool_with_entries(n, lambda *_: None)
        mine, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=mine)
        worker = pool._workers[0]
        worker.writer = writer
        worker.proc = SimpleNamespace(poll=lambda: None)  # type: ignore[assignment]
        turns = _Turns()
        start = turns.count
        for handle in range(1, n + 1):
            entry = pool._by_handle[handle]
            pool._queue(worker, pool._start_op(entry, 5.0))
        sent_in: list[int] = []  # the turn each op's frame was written in

        pending = bytearray()  # what the socket held past the last whole frame
        theirs.setblocking(False)

        def frames() -> list[list[Any]]:
            """The whole frames written so far."""
            while True:
                try:
                    chunk = theirs.recv(1 << 20)
                except BlockingIOError:
                    break
                pending.extend(chunk)
            out: list[list[Any]] = []
            while len(pending) >= 4:
                (size,) = struct.unpack("!I", pending[:4])
                if len(pending) < 4 + size:
                    break
                out.append(pickle.loads(bytes(pending[4 : 4 + size])))
                del pending[: 4 + size]
            return out

        got: list[list[Any]] = []
        try:
            while sum(len(f) for f in got) < n:
                await asyncio.sleep(0)
                batch = frames()
                sent_in += [turns.count] * len(batch)
                got += batch
                assert turns.count - start < 10_000, "the ops never all went out"
        finally:
            turns.task.cancel()
            writer.close()
            theirs.close()
            del reader
        assert [op[1] for f in got for op in f] == list(range(1, n + 1))  # all, in order
        assert max(len(f) for f in got) <= PER_FRAME
        # 10,000 specs take 50-300 ms to encode: a 4 ms budget per turn spreads them (one turn before)
        assert len(set(sent_in)) >= 3, sorted(set(sent_in))
        assert not worker.outbox

    asyncio.run(main())
