"""Hand-written TCP servers for fault injection (stall, reset, garbage, counting connections).

Not a stand-in for a real server: the http checks are tested against real nginx
(tests/peers/nginx.py).  These exist for behaviour no real server shows on demand.
Each server runs in its own thread and event loop, so a server spinning in a write
loop cannot starve the check's event loop (a remote server could not either).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence

__all__ = ["Handler", "serve", "serve_many"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.contextmanager
def serve_many(handler: Handler, hosts: Sequence[str]) -> Iterator[list[int]]:
    """One listener per address in ``hosts`` (port chosen by the kernel), one thread for all.

    Yields the ports, in the order of ``hosts``.  At exit every connection is
    aborted and the thread stopped.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="fault-server")
    thread.start()
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
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def serve(handler: Handler, host: str = "127.0.0.1") -> Iterator[int]:
    """A TCP server on ``host`` running ``handler`` per connection; yields its port."""
    with serve_many(handler, [host]) as ports:
        yield ports[0]
