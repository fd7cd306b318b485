"""Hand-written misbehaving servers (TCP and UDP), process pausing, and an fd-leak count.

Not stand-ins for real servers: every check is tested against a real one (the
other modules of this package).  These exist for behaviour no real server shows
on demand: stalling after accept, babbling an endless line, answering garbage,
closing at a chosen step, counting connections.  ``paused`` SIGSTOPs a *real*
server and its children, the honest way to make a real one stall.

Each server runs in its own thread and event loop, so a server spinning in a
write loop cannot starve the check's event loop (a remote server could not
either); everything it opened is closed when the ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "Handler",
    "UdpHandler",
    "endless_line",
    "endless_lines",
    "open_fds",
    "paused",
    "process_tree",
    "script",
    "serve",
    "serve_many",
    "stall",
    "udp_server",
]

#: Called with each accepted TCP connection.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: Called with each datagram; returns the datagrams to send back (an empty list: stay silent).
UdpHandler = Callable[[bytes], list[bytes]]


# -- servers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _thread_loop(name: str) -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own daemon thread; stopped and closed at exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name=name)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def serve_many(handler: Handler, hosts: Sequence[str]) -> Iterator[list[int]]:
    """One TCP listener per address in ``hosts`` (port chosen by the kernel), one thread for all.

    Yields the ports, in the order of ``hosts``.  At exit every connection is
    aborted and the thread stopped.
    """
    with _thread_loop("hostile-tcp") as loop:
        tasks: set[asyncio.Task[None]] = set()

        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.CancelledError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()
                tasks.discard(task)  # type: ignore[arg-type]

        async def start() -> list[asyncio.Server]:
            return [await asyncio.start_server(wrapped, host, 0, backlog=1024) for host in hosts]

        async def stop(servers: list[asyncio.Server]) -> None:
            for server in servers:
                server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in servers:
                await server.wait_closed()

        servers = asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            yield [s.sockets[0].getsockname()[1] for s in servers]
        finally:
            asyncio.run_coroutine_threadsafe(stop(servers), loop).result(10)


@contextlib.contextmanager
def serve(handler: Handler, host: str = "127.0.0.1") -> Iterator[int]:
    """A TCP server on ``host`` running ``handler`` per connection; yields its port."""
    with serve_many(handler, [host]) as ports:
        yield ports[0]


@contextlib.contextmanager
def udp_server(handler: UdpHandler) -> Iterator[int]:
    """A UDP server on 127.0.0.1 answering each datagram with ``handler(data)``; yields its port."""
    with _thread_loop("hostile-udp") as loop:

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                for reply in handler(data):
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        async def start() -> asyncio.BaseTransport:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                Proto, local_addr=("127.0.0.1", 0)
            )
            return transport

        transport = asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            yield transport.get_extra_info("sockname")[1]
        finally:
            loop.call_soon_threadsafe(transport.close)
            time.sleep(0.01)


# -- line-protocol behaviours (handlers for serve) ------------------------------------------------------


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then say nothing."""
    await asyncio.sleep(3600)


def script(*steps: bytes | None, then: str = "stall") -> Handler:
    """Send ``steps[0]``, then for each following step read one line and send it.

    A ``None`` step reads a line and sends nothing.  After the last step the server
    stalls (``then="stall"``) or closes (``then="close"``).
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, *rest = steps
        if first:
            writer.write(first)
            await writer.drain()
        for step in rest:
            await reader.readline()
            if step:
                writer.write(step)
                await writer.drain()
        if then == "close":
            # A clean FIN, and keep reading: closing with unread input would make the
            # kernel send a RST instead (and the framework aborts with one at the end).
            writer.write_eof()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    while await reader.read(65536):
                        pass
            return
        await asyncio.sleep(3600)

    return handler


async def _answer_lines(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, after: Sequence[bytes]
) -> None:
    """Send ``after[0]``, then one item per line read; then read one more line."""
    for i, item in enumerate(after):
        if i:
            await reader.readline()
        writer.write(item)
    if after:
        await reader.readline()


def endless_line(prefix: bytes = b"", after: Sequence[bytes] = ()) -> Handler:
    """Send ``prefix`` (after answering one line per ``after`` item), then bytes without a newline forever."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer_lines(reader, writer, after)
        writer.write(prefix)
        while True:
            writer.write(b"z" * 4096)
            await writer.drain()

    return handler


def endless_lines(line: bytes, first: bytes = b"", after: Sequence[bytes] = ()) -> Handler:
    """Like :func:`endless_line`, but well-formed lines (``line``) forever, never the last one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer_lines(reader, writer, after)
        writer.write(first)
        while True:
            writer.write(line * 64)
            await writer.drain()

    return handler


# -- real servers made to stall, and leak counting ------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    found = [pid]
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
            found += kids
            todo += kids
    return found


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` and its descendants for the block (the kernel still completes TCP handshakes)."""
    pids = process_tree(pid)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def open_fds() -> int:
    """File descriptors this process has open right now (for leak checks)."""
    return len(os.listdir("/proc/self/fd"))


def tiny_chunks() -> Handler:
    """An HTTP 200 whose chunked body comes in one-byte chunks for ever: cheap to send, dear to parse.

    Each chunk (``1\\r\\nx\\r\\n``) is a parser callback in the check; a 1 MiB ``maxbody`` is a
    million of them, far more loop time than a check should take, all within the byte limits.
    """
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    burst = b"1\r\nx\r\n" * 10_000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        while True:
            writer.write(burst)
            await writer.drain()

    return handler
