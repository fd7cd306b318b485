"""The main process's side of the check workers: a drop-in for :class:`~lvscheck.daemon.scheduler.Scheduler`.

:class:`WorkerPool` has the scheduler's interface (``start``, ``stop``, ``close``,
``lag``, ``watch``, ``checks``, ``in``, ``len``), so the director, reload and shared probes
use it unchanged.  Each job goes to one worker, chosen by the real's host (so
the per-host cap on checks in flight still holds: all checks of one host run in
one worker).  Schedule changes are queued and sent once per loop tick, one
frame per worker, so a reload sends each worker only its part of the diff.
Results come back batched and go to ``on_result`` as if the check had run here.

Neither direction holds the main loop long (issue 18: no block over 50 ms), whatever
piles up (the 40,000 first results of a start, a worker restarted with 20,000 reals):

* results go through an intake that hands at most :data:`RESULTS_PER_TURN` of them to
  ``on_result`` per loop turn, for :data:`INTAKE_BUDGET` s at most; a worker's channel is
  read one frame per turn and not read at all while :data:`RESULTS_WAITING` results wait
  (the worker's frames wait in the socket: its own loop is not held by that);
* schedule changes are encoded :data:`OPS_PER_FRAME` at a time, for at most
  :data:`ENCODE_BUDGET` seconds per loop turn; the rest goes in the next turns.

A worker that dies is started again and given its jobs back, each due within
its interval: the reals' rise/fall state lives here, so nothing drains or flaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lvscheck.checktype import Check
from lvscheck.daemon.pools import RealState
from lvscheck.daemon.scheduler import Job, LagStats
from lvscheck.daemon.workers.wire import encode, open_channel
from lvscheck.engine import LoopWatch
from lvscheck.model import Result, State

__all__ = [
    "ENCODE_BUDGET",
    "INTAKE_BUDGET",
    "OPS_PER_FRAME",
    "RESULTS_PER_TURN",
    "RESULTS_WAITING",
    "WorkerPool",
    "default_count",
]

log = logging.getLogger("lvscheck.daemon")

#: Results handed to ``on_result`` per loop turn at most.  A result costs the main process
#: 10-30 us (rise/fall, the pool, an event when a real changes state; more on a loaded
#: machine): 256 of them stay within a few ms, and 40,000 results/s still go through.
RESULTS_PER_TURN = 256
#: Seconds of result handling per loop turn at most (checked every 32 results).
INTAKE_BUDGET = 0.004
#: While this many results wait, the workers' channels are not read (their frames wait in the socket).
RESULTS_WAITING = 4 * RESULTS_PER_TURN
#: Schedule changes per frame to a worker (a ``start`` takes about 35 us to encode: a check spec).
OPS_PER_FRAME = 64
#: Seconds of encoding per loop turn at most; what is left goes in the next turn.
ENCODE_BUDGET = 0.004


def default_count() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(slots=True)
class _Entry:
    job: Job
    handle: int
    worker: int
    check: Check
    connect: Check | None
    combined: int
    fast: bool


@dataclass(slots=True)
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    writer: asyncio.WriteTransport | None = None
    channel: asyncio.Transport | None = None  # the same transport, for pausing its reading
    reader_task: asyncio.Task[None] | None = None
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    handles: set[int] = field(default_factory=set)
    restarts: int = 0
    started_at: float = 0.0


class WorkerPool:
    """Runs :class:`Job` objects in ``count`` worker processes; ``on_result`` sees every result here."""

    def __init__(
        self,
        count: int,
        on_result: Callable[[Job, Result, float], None],
        *,
        max_in_flight: int = 512,
        per_host: int = 8,
        loop: str = "asyncio",
        cpu_budget: float | None = None,
    ) -> None:
        self.count = max(1, count)
        self.on_result = on_result
        self.max_in_flight = max(1, max_in_flight // self.count)
        self.per_host = per_host
        self.loop_name = loop
        self.cpu_budget = cpu_budget  # each worker's engine's (lvscheck.engine.cpumeter; None: off)
        self.lag = LagStats()
        self.watch = LoopWatch()  # this process's loop (results, reloads); each worker watches its own
        self.checks = 0
        self.restarts = 0
        self._jobs: dict[str, _Entry] = {}
        self._by_handle: dict[int, _Entry] = {}
        self._handles = itertools.count(1)
        self._workers = [_Worker(i) for i in range(self.count)]
        self._flush_pending = False
        self._closing = False
        #: results read from the workers, not handed to ``on_result`` yet (the intake)
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._intake_pending = False
        self.pauses = 0  # times the channels were paused (tests)
        self._paused = False  # the workers' channels are not read (RESULTS_WAITING results wait)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def pids(self) -> list[int]:
        """The workers' process ids (status, tests)."""
        return [w.proc.pid for w in self._workers if w.proc is not None and w.proc.poll() is None]

    # -- the scheduler's interface -------------------------------------------------------------

    def start(self, job: Job, first_within: float | None = None) -> None:
        """Run ``job`` in its worker; its first check comes within ``first_within`` s."""
        self.stop(job.id)
        self.watch.start()
        check, connect, combined = _checks_of(job)
        worker = self._worker_for(check)
        entry = _Entry(job, next(self._handles), worker.index, check, connect, combined, job.changing())
        self._jobs[job.id] = entry
        self._by_handle[entry.handle] = entry
        worker.handles.add(entry.handle)
        within = job.interval if first_within is None else first_within
        self._queue(worker, self._start_op(entry, within))

    def stop(self, job_id: str) -> None:
        entry = self._jobs.pop(job_id, None)
        if entry is None:
            return
        del self._by_handle[entry.handle]
        worker = self._workers[entry.worker]
        worker.handles.discard(entry.handle)
        self._queue(worker, ("stop", entry.handle))

    async def close(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after 5 s) and wait for them."""
        self._closing = True
        self.watch.stop()
        self._jobs.clear()
        self._by_handle.clear()
        self._inbox.clear()
        for w in self._workers:
            if w.reader_task is not None:
                w.reader_task.cancel()
            if w.writer is not None:
                w.writer.close()
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for w in self._workers:
            if w.proc is None:
                continue
            while w.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()

    # -- workers -------------------------------------------------------------------------------

    def _worker_for(self, check: Check) -> _Worker:
        host = check.spec.target.host
        return self._workers[zlib.crc32(str(host).encode()) % self.count]

    @staticmethod
    def _start_op(entry: _Entry, within: float) -> tuple[Any, ...]:
        job = entry.job
        return (
            "start",
            entry.handle,
            entry.check.spec,
            None if entry.connect is None else entry.connect.spec,
            entry.combined,
            job.interval,
            job.fastinterval,
            job.jitter,
            entry.fast,
            min(within, job.interval),
        )

    def _queue(self, worker: _Worker, op: tuple[Any, ...]) -> None:
        worker.outbox.append(op)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send the queued ops, :data:`OPS_PER_FRAME` to a frame, for :data:`ENCODE_BUDGET` s at most."""
        self._flush_pending = False
        if self._closing:
            return
        deadline = time.perf_counter() + ENCODE_BUDGET
        more = False
        for worker in self._workers:
            if not worker.outbox:
                continue
            if worker.proc is None:
                self._spawn(worker)  # it takes its whole job list; the queued ops are in it
                continue
            if worker.writer is None:
                continue  # starting or restarting: it gets its whole job list when it is up
            while worker.outbox and time.perf_counter() < deadline:
                batch = worker.outbox[:OPS_PER_FRAME]
                del worker.outbox[:OPS_PER_FRAME]
                worker.writer.write(encode(batch))
            more |= bool(worker.outbox)
        if more:  # the rest in the next loop turn (a frame never splits an op; the order holds)
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _spawn(self, worker: _Worker) -> None:
        """Start ``worker``'s process and hand it every job it owns."""
        mine, theirs = socket.socketpair()
        try:
            worker.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lvscheck.daemon.workers.child",
                    str(theirs.fileno()),
                    str(self.max_in_flight),
                    str(self.per_host),
                    self.loop_name,
                    repr(self.cpu_budget or 0.0),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        worker.started_at = time.monotonic()
        worker.outbox = [
            self._start_op(self._by_handle[h], self._by_handle[h].job.interval) for h in worker.handles
        ]
        loop = asyncio.get_running_loop()
        worker.reader_task = loop.create_task(self._serve(worker, mine), name=f"worker {worker.index}")

    async def _serve(self, worker: _Worker, sock: socket.socket) -> None:
        ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        def on_end(exc: BaseException | None) -> None:
            if not ended.done():
                ended.set_result(exc)

        channel = await open_channel(sock, self.take, on_end)
        worker.writer = worker.channel = channel
        if self._paused:
            channel.pause_reading()
        if not self._flush_pending:  # its job list, a few frames per loop turn (_flush)
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)
        failure = await ended
        worker.channel = None
        if failure is not None and not isinstance(failure, ConnectionError):
            # a bug here must not leave the worker's reals unchecked for good: restart it
            log.error("check worker %d: the channel failed", worker.index, exc_info=failure)
        if self._closing:
            return
        await self._restart(worker)

    async def _restart(self, worker: _Worker) -> None:
        proc = worker.proc
        code = None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            while (code := proc.poll()) is None:
                await asyncio.sleep(0.01)
        if worker.writer is not None:
            worker.writer.close()
        worker.writer = None
        worker.restarts += 1
        self.restarts += 1
        log.error(
            "check worker %d (pid %s) ended (exit %s); starting it again with its %d reals "
            "(their states are kept)",
            worker.index,
            proc.pid if proc is not None else "?",
            code,
            len(worker.handles),
        )
        if time.monotonic() - worker.started_at < 1.0:
            await asyncio.sleep(1.0)  # one that dies at once must not spin
        if not self._closing:
            self._spawn(worker)

    def take(self, records: list[tuple[Any, ...]]) -> None:
        """Queue results read from a worker; :meth:`_intake` hands them on, a few hundred per loop turn."""
        self._inbox.extend(records)
        if len(self._inbox) >= RESULTS_WAITING and not self._paused:
            self._reading(False)
        if not self._intake_pending and self._inbox:
            self._intake_pending = True
            asyncio.get_running_loop().call_soon(self._intake)

    def _intake(self) -> None:
        """Hand at most :data:`RESULTS_PER_TURN` waiting results to ``on_result``; the rest next turn."""
        self._intake_pending = False
        inbox = self._inbox
        deadline = time.perf_counter() + INTAKE_BUDGET
        for _ in range(0, RESULTS_PER_TURN, 32):  # a state change costs more (events, mail, log)
            if not inbox or time.perf_counter() >= deadline:
                break
            self._results([inbox.popleft() for _ in range(min(32, len(inbox)))])
        if len(inbox) < RESULTS_WAITING and self._paused:
            self._reading(True)
        if inbox and not self._closing:
            self._intake_pending = True
            asyncio.get_running_loop().call_soon(self._intake)

    def _reading(self, on: bool) -> None:
        """Read the workers' channels again, or not (their frames wait in the sockets meanwhile)."""
        self._paused = not on
        self.pauses += not on
        for worker in self._workers:
            if worker.channel is not None and not worker.channel.is_closing():
                worker.channel.resume_reading() if on else worker.channel.pause_reading()

    def _results(self, records: list[tuple[Any, ...]]) -> None:
        fast_changes: dict[int, list[tuple[Any, ...]]] = {}
        for handle, used_connect, state, weight, reason, latency, details, lag in records:
            entry = self._by_handle.get(handle)
            if entry is None:
                continue  # stopped while its check ran
            check = entry.connect if used_connect and entry.connect is not None else entry.check
            result = Result(check.name, check.spec.target, State(state), weight, reason, latency, details)
            self.checks += 1
            self.lag.add(lag)
            try:
                self.on_result(entry.job, result, lag)
            except Exception:
                log.exception("%s: handling a check result failed", entry.job.id)
            fast = entry.job.changing()
            if fast != entry.fast:
                entry.fast = fast
                fast_changes.setdefault(entry.worker, []).append(("fast", handle, fast))
        for index, ops in fast_changes.items():
            for op in ops:
                self._queue(self._workers[index], op)


def _checks_of(job: Job) -> tuple[Check, Check | None, int]:
    """The checks behind ``job``: its ``pick`` is a real's :meth:`RealState.pick`."""
    owner = getattr(job.pick, "__self__", None)
    if not isinstance(owner, RealState) or owner.check is None:
        raise TypeError(f"{job.id}: a worker runs a real's own checks (RealState.pick), not {job.pick!r}")
    return owner.check, owner.connect, owner.slot.plan.combined
