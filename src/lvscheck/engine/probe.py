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
from typing import Any

from lvscheck.errors import CheckFailed

__all__ = ["Probe"]


class Probe:
    """One run of one check against one real server."""

    __slots__ = ("_closeables", "_loop", "connect_timeout", "deadline", "host", "phase", "port", "timeout")

    def __init__(self, host: str, port: int, timeout: float, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._loop = asyncio.get_running_loop()
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
        try:
            async with asyncio.timeout(min(self.connect_timeout, self.remaining())):
                reader, writer = await asyncio.open_connection(host, port, limit=limit)
        except TimeoutError:
            if self.remaining() <= 0:
                raise
            raise CheckFailed(
                f"connect to {_hostport(host, port)} timed out after {self.connect_timeout:g} s"
            ) from None
        self._closeables.append(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.phase = "in the TLS handshake"
            await writer.start_tls(tls, server_hostname=server_hostname or host)
        return reader, writer

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


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
