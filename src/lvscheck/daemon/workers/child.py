"""A check worker: ``python -m lvscheck.daemon.workers.child FD MAX_IN_FLIGHT PER_HOST LOOP``.

It runs the reals the main process gives it on its own event loop and engine
(the same :class:`~lvscheck.daemon.scheduler.Scheduler` the in-process daemon
uses) and sends every result back, batched (see :class:`Outbox`).  It keeps no health
state: rise/fall, weights and the IPVS table belong to the main process, so a
restarted worker only resumes scheduling.  It exits when the main process closes
the socket (or dies), so no worker outlives its daemon.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from typing import Any

from lvscheck.checktype import Check
from lvscheck.daemon.scheduler import Job, Scheduler
from lvscheck.daemon.workers.wire import encode, open_channel
from lvscheck.engine import Engine
from lvscheck.model import CheckSpec, Result, State

__all__ = ["SEND_EVERY", "Outbox", "WorkerJob", "main"]

log = logging.getLogger("lvscheck.daemon")

#: A result that does not change its real's last state waits at most this long (s) to travel with
#: others.  Every frame costs the main process a wake-up and a read: 50-100 us of its CPU, against
#: 0.2 us to unpickle a record (wire.py); at 5 ms a worker doing 1,000 checks/s sent 200 frames a
#: second, at 50 ms it sends 20.  Rise and fall count results, not milliseconds.
SEND_EVERY = 0.05


class WorkerJob:
    """One scheduled check in a worker: what to run, and which of its checks ran last."""

    __slots__ = (
        "check",
        "combined",
        "combined_left",
        "connect",
        "fast",
        "handle",
        "last_state",
        "used_connect",
    )

    def __init__(self, handle: int, check: Check, connect: Check | None, combined: int, fast: bool) -> None:
        self.handle = handle
        self.check = check
        self.connect = connect
        self.combined = combined
        self.combined_left = 0
        self.fast = fast
        self.used_connect = False
        self.last_state: State | None = None  # of its last result: a different one travels at once

    def pick(self) -> Check:
        """Combined checktypes: ``combined`` connect checks between two full checks."""
        if self.connect is not None and self.combined_left > 0:
            self.combined_left -= 1
            self.used_connect = True
            return self.connect
        self.combined_left = self.combined
        self.used_connect = False
        return self.check

    def changing(self) -> bool:
        return self.fast


class Outbox:
    """Results on their way to the main process: one frame per batch, not one per result.

    A result whose state differs from its real's last one (the first result of a real, an
    up real failing, a down one answering) goes at the end of this loop tick, with whatever
    else that tick produced; the others wait up to :data:`SEND_EVERY` seconds for company.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.WriteTransport | None,
        every: float = SEND_EVERY,
    ) -> None:
        self.loop = loop
        self.transport = transport  # None until the channel is open: records wait
        self.every = every
        self.records: list[tuple[Any, ...]] = []
        self.frames = 0
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False

    def add(self, record: tuple[Any, ...], changed: bool) -> None:
        self.records.append(record)
        if changed:
            if not self._soon:
                self._soon = True
                self.loop.call_soon(self.send)
        elif self._timer is None and not self._soon:
            self._timer = self.loop.call_later(self.every, self.send)

    def send(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is None or not self.records:
            return
        batch, self.records = self.records, []
        if not self.transport.is_closing():
            self.transport.write(encode(batch))
            self.frames += 1


class Worker:
    """The worker side of one socket: apply ops, run checks, hand results to the :class:`Outbox`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport | None, engine: Engine
    ) -> None:
        self.outbox = Outbox(loop, transport)
        self.plugins = engine.plugins
        self.scheduler = Scheduler(engine, self._on_result)
        self.jobs: dict[int, WorkerJob] = {}

    def prepare(self, spec: CheckSpec) -> Check:
        """The check ``spec`` names, prepared by its check type (the options were checked already)."""
        return self.plugins.prepare(spec)

    def _on_result(self, job: Job, result: Result, lag: float) -> None:
        wj = self.jobs.get(int(job.id))
        if wj is None:
            return
        state = result.state
        changed = state is not wj.last_state
        wj.last_state = state
        self.outbox.add(
            (
                wj.handle,
                wj.used_connect,
                state.value,
                result.weight,
                result.reason,
                result.latency,
                dict(result.details) or None,
                lag,
            ),
            changed,
        )

    def apply(self, ops: list[Any]) -> None:
        started = 0
        for op in ops:
            kind, handle = op[0], op[1]
            if kind == "start":
                _, _, spec, connect_spec, combined, interval, fast_iv, jitter, fast, within = op
                try:
                    check = self.prepare(spec)
                    connect = None if connect_spec is None else self.prepare(connect_spec)
                except Exception:
                    log.exception(
                        "check worker %d: cannot prepare %s; that real is not checked", os.getpid(), spec
                    )
                    continue
                wj = self.jobs[handle] = WorkerJob(handle, check, connect, combined, fast)
                job = Job(str(handle), wj.pick, interval, fast_iv, jitter, wj.changing)
                self.scheduler.start(job, first_within=within)
                started += 1
            elif kind == "stop":
                self.jobs.pop(handle, None)
                self.scheduler.stop(str(handle))
            elif kind == "fast":
                known = self.jobs.get(handle)
                if known is not None:
                    known.fast = op[2]
        if started:
            # long-lived objects (checks, jobs, their coroutines) out of the collector's way, as the
            # main process does after a reload (reload.freeze_heap): a full collection only for a
            # big batch, else the youngest generation (bounded by its threshold: a few ms)
            gc.collect() if started > 1000 else gc.collect(0)
            gc.freeze()


async def serve(fd: int, max_in_flight: int, per_host: int, cpu_budget: float | None = None) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    ended: list[BaseException | None] = []
    worker = Worker(loop, None, Engine(max_in_flight=max_in_flight, per_host=per_host, cpu_budget=cpu_budget))

    def on_end(exc: BaseException | None) -> None:
        ended.append(exc)  # the main process closed the socket or died, or a batch failed: stop
        stopping.set()

    transport = await open_channel(socket.socket(fileno=fd), worker.apply, on_end)
    worker.outbox.transport = transport
    worker.outbox.send()  # anything that finished before the channel was open
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    if ended and ended[0] is not None and not isinstance(ended[0], ConnectionError):
        log.error("check worker %d: stopping on an error", os.getpid(), exc_info=ended[0])
    await worker.scheduler.close()
    transport.close()


def main(argv: list[str]) -> int:
    fd, max_in_flight, per_host, loop_name = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    cpu_budget = float(argv[4]) if len(argv) > 4 else 0.0  # lvscheck.engine.cpumeter; 0: off
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the daemon's terminal: the main process decides
    gc.set_threshold(50_000, 20, 1000)  # see lvscheck.daemon.reload.freeze_heap
    runner: Any = asyncio.run
    if loop_name == "uvloop":
        import uvloop

        runner = uvloop.run
    runner(serve(fd, max_in_flight, per_host, cpu_budget or None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
