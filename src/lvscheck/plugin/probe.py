"""What a check's ``probe`` coroutine gets: its target, its deadline and its connections.

Every connection a probe opens through :meth:`Probe.connect` is closed by the
engine when the check ends, whatever way it ends (verdict, timeout, crash), so a
check cannot leak a socket.  ``phase`` says what the check is waiting for; the
engine puts it in the reason when the deadline hits ("timed out after 3 s
waiting for the response body").
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, cast

from lvscheck.errors import CheckFailed

__all__ = ["Datagrams", "Probe", "source_towards"]


class Probe:
    """One run of one check against one real server."""

    __slots__ = (
        "_closeables",
        "_loop",
        "connect_timeout",
        "deadline",
        "host",
        "mark",
        "phase",
        "port",
        "real",
        "timeout",
    )

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        connect_timeout: float,
        *,
        mark: int = 0,
        real: str = "",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``mark`` (with ``host`` the VIP and ``real`` the real's address): every socket
        to ``host`` or ``real`` goes to ``host`` with ``SO_MARK`` = ``mark`` (docs/via-vip.md).

        ``loop``: the running loop, when the caller has it at hand (each
        ``asyncio.get_running_loop()`` is a ``getpid`` syscall on CPython 3.11)."""
        self.host = host
        self.port = port
        self.mark = mark
        self.real = real
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._loop = loop or asyncio.get_running_loop()
        self.deadline = self._loop.time() + timeout
        self.phase = "starting"
        self._closeables: list[Any] = []

    def remaining(self) -> float:
        """Seconds left before the check's deadline (never negative)."""
        return max(0.0, self.deadline - self._loop.time())

    async def connect(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        limit: int = 65536,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a TCP (and optionally TLS) stream; the engine closes it at the end."""
        host = host or self.host
        port = port or self.port
        self.phase = f"connecting to {_hostport(host, port)}"
        named = host  # TLS names the host the check asked for, not the VIP it goes through
        if self.mark and host in (self.host, self.real):
            host = self.host
            self.phase = f"connecting to {_hostport(host, port)} (through the VIP to {self.real})"
            opened = self._marked_connection(port, limit)
        else:
            opened = self._open_stream(limit, host, port)
        if self.connect_timeout >= self.timeout or self.connect_timeout >= self.remaining():
            # the check's own deadline comes first: a second timer would cost CPU on every check
            # (and ``timeout`` first: reading the clock is a syscall where there is no vDSO)
            reader, writer = await opened
        else:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await opened
            except TimeoutError:
                if self.remaining() <= 0:
                    raise
                raise CheckFailed(
                    f"connect to {_hostport(host, port)} timed out after {self.connect_timeout:g} s"
                ) from None
        self._closeables.append(writer)  # (asyncio's TCP transports already set TCP_NODELAY)
        if tls is not None:
            self.phase = "in the TLS handshake"
            await writer.start_tls(tls, server_hostname=server_hostname or named)
        return reader, writer

    async def datagram(self, host: str | None = None, port: int | None = None) -> Datagrams:
        """Open a connected UDP endpoint to the target; the engine closes it at the end.

        Connected, so the kernel drops datagrams from other peers and an ICMP port
        unreachable surfaces as ``ConnectionRefusedError`` from :meth:`Datagrams.recv`.
        """
        host = host or self.host
        port = port or self.port
        self.phase = f"opening UDP to {_hostport(host, port)}"
        if self.mark and host in (self.host, self.real):
            host = self.host
            sock = self._marked_socket(socket.SOCK_DGRAM)
            try:
                sock.connect((host, port))  # UDP: no packet is sent
            except BaseException:
                sock.close()
                raise
            _, endpoint = await self._loop.create_datagram_endpoint(Datagrams, sock=sock)
        else:
            _, endpoint = await self._loop.create_datagram_endpoint(Datagrams, remote_addr=(host, port))
        self._closeables.append(endpoint)
        self.phase = f"waiting for a UDP reply from {_hostport(host, port)}"
        return endpoint

    async def _marked_connection(
        self, port: int, limit: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = self._marked_socket(socket.SOCK_STREAM)
        try:
            await self._loop.sock_connect(sock, (self.host, port))
        except BaseException:
            sock.close()
            raise
        return await self._open_stream(limit, sock=sock)

    async def _open_stream(
        self, limit: int, host: str = "", port: int = 0, *, sock: socket.socket | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection`` on the loop at hand (it would look the loop up again)."""
        loop = self._loop
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        if sock is None:
            transport, _ = await loop.create_connection(lambda: protocol, host, port)
        else:
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        if hasattr(transport, "max_size"):
            # asyncio's selector transport receives into a new 256 KiB bytes object: above glibc's
            # mmap threshold, so every response cost mmap, mremap and munmap (3 syscalls a check);
            # at ``limit`` (64 KiB) it comes from the heap.  (uvloop reads into its own buffer.)
            transport.max_size = min(transport.max_size, limit)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _marked_socket(self, kind: int) -> socket.socket:
        """A non-blocking socket with ``SO_MARK`` = :attr:`mark`, bound to the director's address
        towards the real: the real answers that address, not the VIP it holds itself."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            sock.bind((source_towards(self.real, family), 0))
        except BaseException:
            sock.close()
            raise
        return sock

    def track(self, closeable: Any) -> None:
        """Have the engine close ``closeable`` (anything with ``close()``) when the check ends."""
        self._closeables.append(closeable)

    def close(self) -> None:
        for item in reversed(self._closeables):
            transport = getattr(item, "transport", None)
            try:
                if transport is not None:
                    transport.abort()  # no lingering close handshake: the verdict is in
                else:
                    item.close()
            except Exception:  # noqa: S110 - closing a dead socket may fail; nothing to do
                pass
        self._closeables.clear()


class Datagrams(asyncio.DatagramProtocol):
    """A connected UDP endpoint from :meth:`Probe.datagram`: ``send(data)``, ``await recv()``.

    At most :attr:`QUEUE` unread datagrams are kept (later ones are dropped), so a
    flooding server costs bounded memory; each datagram is at most 64 KiB by nature.
    """

    QUEUE = 16

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(self.QUEUE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self._queue.full():
            self._queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if not self._queue.full():  # ICMP errors: port unreachable -> ConnectionRefusedError
            self._queue.put_nowait(exc)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def recv(self) -> bytes:
        """The next datagram from the peer; raises the ICMP error (``OSError``) the kernel reported."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def source_towards(real: str, family: int) -> str:
    """The address the kernel would send from to reach ``real`` (a route lookup; nothing is sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((real, 9))
        source: str = sock.getsockname()[0]
    return source


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
