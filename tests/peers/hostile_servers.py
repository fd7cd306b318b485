"""Hand-written misbehaving servers (TCP and UDP) for fault injection, and an fd-leak guard.

No real server stalls, babbles or answers garbage on demand, so these small
asyncio servers do.  Each runs in its own thread and event loop (so a server
spinning in a write loop cannot starve the check's loop, as a remote one could
not) and everything it opened is closed when the ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

__all__ = ["TcpHandler", "UdpHandler", "open_fds", "tcp_server", "thread_loop", "udp_server"]

TcpHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: Called with each datagram; returns the datagrams to send back (an empty list: stay silent).
UdpHandler = Callable[[bytes], list[bytes]]


@contextlib.contextmanager
def thread_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def tcp_server(handler: TcpHandler) -> Iterator[int]:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; yields its port."""
    with thread_loop() as loop:
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

        async def start() -> asyncio.Server:
            return await asyncio.start_server(wrapped, "127.0.0.1", 0)

        async def stop(server: asyncio.Server) -> None:
            server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

        server = asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            asyncio.run_coroutine_threadsafe(stop(server), loop).result(10)


@contextlib.contextmanager
def udp_server(handler: UdpHandler) -> Iterator[int]:
    """A UDP server on 127.0.0.1 answering each datagram with ``handler(data)``; yields its port."""
    with thread_loop() as loop:

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


def open_fds() -> int:
    """File descriptors this process has open right now (for leak checks)."""
    return len(os.listdir("/proc/self/fd"))
