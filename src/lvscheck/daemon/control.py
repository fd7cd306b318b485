"""The running daemon's two small servers: the control socket and the metrics endpoint.

* Control: a unix stream socket (``--control``, mode 0600).  A client writes one
  line (``status`` or ``reload``) and reads one JSON document; ``lvscheck
  status`` is that client.
* Metrics: Prometheus text format over HTTP/1.0 on ``127.0.0.1:PORT``
  (``--metrics``), stdlib asyncio only.  Any path answers (``/metrics`` by
  convention).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.metrics import render_metrics

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["query", "serve_control", "serve_metrics"]

log = logging.getLogger("lvscheck.daemon")


async def serve_control(director: Director, path: str) -> asyncio.Server:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode(errors="replace").strip()
            answer: dict[str, Any]
            if line == "status":
                answer = director.status()
            elif line == "reload":
                ok = await director.reload("control socket")
                last = director.counters.last_reload or {}
                answer = {
                    "reloaded": ok,
                    "config": director.config_path,
                    "problems": last.get("problems", []),
                }
            else:
                answer = {"error": f"unknown request {line!r}: status or reload"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    old = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(handle, path, limit=1 << 16)
    finally:
        os.umask(old)
    return server


async def serve_metrics(director: Director, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method = request.split(b" ", 1)[0]
            if method not in (b"GET", b"HEAD"):
                writer.write(b"HTTP/1.0 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            else:
                body = render_metrics(director).encode()
                writer.write(
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + (body if method == b"GET" else b"")
                )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


def query(path: str, request: str = "status", timeout: float = 10.0) -> dict[str, Any]:
    """Ask the daemon on ``path``; raises OSError when nothing answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
    answer: dict[str, Any] = json.loads(b"".join(chunks))
    return answer
