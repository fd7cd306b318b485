"""A check worker: ``python -m lvscheck.daemon.workers.child FD MAX_IN_FLIGHT PER_HOST LOOP``.

It runs the reals the main process gives it on its own event loop and engine
(the same :class:`~lvscheck.daemon.scheduler.Scheduler` the in-process daemon
uses) and sends every result back, batched (a frame every :data:`SEND_EVERY` s at most).  It keeps no health
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
from lvscheck.daemon.workers.wire import encode, read_frame
from lvscheck.engine import Engine
from lvscheck.model import CheckSpec, Result

__all__ = ["WorkerJob", "main"]

log = logging.getLogger("lvscheck.daemon")

#: Results wait at most this long (s) to travel together: at 1,000 checks/s per worker a frame
#: per result cost the main process one read and one wake-up per check (strace -c); rise and
#: fall do not notice 5 ms.
SEND_EVERY = 0.005


class WorkerJob:
    """One scheduled check in a worker: what to run, and which of its checks ran last."""

    __slots__ = ("check", "combined", "combined_left", "connect", "fast", "handle", "used_connect")

    def __init__(self, handle: int, check: Check, connect: Check | None, combined: int, fast: bool) -> None:
        self.handle = handle
        self.check = check
        self.connect = connect
        self.combined = combined
        self.combined_left = 0
        self.fast = fast
        self.used_connect = False

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


class Worker:
    """The worker side of one socket: apply ops, send results once per loop tick."""

    def __init__(self, writer: asyncio.StreamWriter, engine: Engine) -> None:
        self.writer = writer
        self.plugins = engine.plugins
        self.scheduler = Scheduler(engine, self._on_result)
        self.jobs: dict[int, WorkerJob] = {}
        self.outbox: list[tuple[Any, ...]] = []

    def prepare(self, spec: CheckSpec) -> Check:
        """The check ``spec`` names, prepared by its check type (the options were checked already)."""
        return self.plugins.prepare(spec)

    def _on_result(self, job: Job, result: Result, lag: float) -> None:
        wj = self.jobs.get(int(job.id))
        if wj is None:
            return
        if not self.outbox:
            asyncio.get_running_loop().call_later(SEND_EVERY, self._send)
        self.outbox.append(
            (
                wj.handle,
                wj.used_connect,
                result.state.value,
                result.weight,
                result.reason,
                result.latency,
                dict(result.details) or None,
                lag,
            )
        )

    def _send(self) -> None:
        batch, self.outbox = self.outbox, []
        if batch and not self.writer.is_closing():
            self.writer.write(encode(batch))

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
        if started > 1000:  # a big batch of long-lived objects: out of the collector's way
            gc.collect()
            gc.freeze()


async def serve(fd: int, max_in_flight: int, per_host: int, cpu_budget: float | None = None) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    worker = Worker(writer, Engine(max_in_flight=max_in_flight, per_host=per_host, cpu_budget=cpu_budget))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    reading = loop.create_task(_read(reader, worker))
    done = loop.create_task(stopping.wait())
    await asyncio.wait((reading, done), return_when=asyncio.FIRST_COMPLETED)
    if reading.done() and not reading.cancelled() and reading.exception() is not None:
        log.error("check worker %d: stopping on an error", os.getpid(), exc_info=reading.exception())
    reading.cancel()
    await worker.scheduler.close()
    writer.close()


async def _read(reader: asyncio.StreamReader, worker: Worker) -> None:
    while True:
        ops = await read_frame(reader)
        if ops is None:
            return  # the main process closed the socket or died: stop
        worker.apply(ops)


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
