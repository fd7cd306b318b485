"""The HTTP listener of ``lvscheck daemon --metrics [HOST:]PORT`` (127.0.0.1 unless told).

=================  =========================================================
``GET /``          the status page (``static/index.html``, CSS and JS beside it)
``GET /metrics``   Prometheus text format
``GET /status.json`` what ``lvscheck status --json`` prints
``GET /events``    server-sent events for the page (:mod:`lvscheck.web.live`)
``POST /action``   drain/undrain/maintenance, only with ``--http-tokens`` and
                   ``Authorization: Bearer TOKEN``; read-only otherwise (403)
=================  =========================================================

Stdlib asyncio, one request per connection (``Connection: close``) except the
event stream, which stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.operate import ActionError, perform
from lvscheck.daemon.statusrows import rows_of
from lvscheck.web.live import Live
from lvscheck.web.tokens import Tokens

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["HttpListener", "serve_http"]

log = logging.getLogger("lvscheck.daemon")

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_SECURITY = (
    "X-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\n"
    "Referrer-Policy: no-referrer\r\n"
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


def _asset(name: str) -> bytes:
    return resources.files("lvscheck.web").joinpath("static", name).read_bytes()


class _Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = headers.get("content-length", "0")
    if parts[0] == "POST":
        if not length.isdigit() or int(length) > 4096:
            return _Request("POST", "/too-large", headers, b"")
        body = await asyncio.wait_for(reader.readexactly(int(length)), 10)
    return _Request(parts[0], parts[1].split("?", 1)[0], headers, body)


def _header(status: int, length: int, ctype: str, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\nCache-Control: no-cache\r\n"
        f"{_SECURITY}{extra}\r\n"
    ).encode()


def _response(
    status: int, body: bytes, ctype: str, *, head: bool = False, extra: str = "", gz: bool = False
) -> bytes:
    if gz and len(body) > 4096:
        body = gzip.compress(body, 5)
        extra += "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
    return _header(status, len(body), ctype, extra) + (b"" if head else body)


#: Bodies from this size on are gzipped in a thread (zlib lets go of the GIL): not on the loop.
GZIP_IN_THREAD = 256 << 10


async def _send_large(
    writer: asyncio.StreamWriter, parts: list[bytes], ctype: str, *, head: bool, gz: bool
) -> None:
    """A 200 with a body of megabytes in ``parts`` (status document, metrics), written part by
    part as the client reads; gzipped in a thread when large."""
    extra = ""
    length = sum(map(len, parts))
    if gz and length > 4096:
        parts = [await asyncio.to_thread(_gzip, parts) if length >= GZIP_IN_THREAD else _gzip(parts)]
        length = len(parts[0])
        extra = "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
    writer.write(_header(200, length, ctype, extra))
    if head:
        return
    for part in parts:
        writer.write(part)
        await writer.drain()


def _gzip(parts: list[bytes]) -> bytes:
    return gzip.compress(b"".join(parts), 5)


class _Site:
    def __init__(self, director: Director, tokens: Tokens) -> None:
        self.director = director
        self.tokens = tokens
        self.live = Live(director, actions=bool(tokens))
        self.rows = rows_of(director)
        self.rows.metrics = True  # /metrics finds its rows kept, too
        self.assets = {path: (_asset(name), ctype) for path, (name, ctype) in _STATIC.items()}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        keep = False
        try:
            request = await _read_request(reader)
            if request is None:
                writer.write(_response(400, b"bad request\n", "text/plain"))
            else:
                keep = await self.answer(request, writer)
            await writer.drain()
            if keep:  # the event stream: it ends when the page goes away (EOF)
                while await reader.read(4096):
                    pass
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if keep:
                self.live.remove(writer)
            else:
                writer.close()

    async def answer(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; True when the connection stays open (the event stream)."""
        head = req.method == "HEAD"
        gz = "gzip" in req.headers.get("accept-encoding", "")
        if req.method == "POST":
            writer.write(self.action(req, writer))
            return False
        if req.method not in ("GET", "HEAD"):
            writer.write(
                _response(
                    405, b"GET, HEAD or POST /action\n", "text/plain", extra="Allow: GET, HEAD, POST\r\n"
                )
            )
            return False
        if req.path == "/metrics":
            parts = await self.rows.exposition_parts()
            await _send_large(writer, parts, "text/plain; version=0.0.4; charset=utf-8", head=head, gz=gz)
        elif req.path == "/status.json":
            parts = await self.rows.document_parts({"actions": bool(self.tokens), "page": self.live.stats()})
            await _send_large(writer, parts, "application/json", head=head, gz=gz)
        elif req.path == "/events" and not head:
            if self.live.full():
                writer.write(_response(503, b"too many open status pages\n", "text/plain"))
                return False
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                + _SECURITY.encode()
                + (b"Content-Encoding: gzip\r\n" if gz else b"")
                + b"Connection: keep-alive\r\n\r\n"
            )
            await self.live.add(writer, gzip=gz)
            return True
        elif req.path in self.assets:
            body, ctype = self.assets[req.path]
            writer.write(_response(200, body, ctype, head=head, gz=gz))
        else:
            writer.write(_response(404, b"not found: try / /metrics /status.json\n", "text/plain", head=head))
        return False

    def action(self, req: _Request, writer: asyncio.StreamWriter) -> bytes:
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        if req.path == "/too-large":
            return _response(413, b"request body too large\n", "text/plain")
        if req.path != "/action":
            return _response(405, b"only POST /action\n", "text/plain")
        if not self.tokens:
            return _response(403, b"read-only: the daemon has no --http-tokens\n", "text/plain")
        auth = req.headers.get("authorization", "")
        who = self.tokens.who(auth[7:]) if auth.lower().startswith("bearer ") else None
        if who is None:
            log.warning("HTTP action refused from %s: no valid token", where)
            return _response(
                401,
                b"a valid 'Authorization: Bearer TOKEN' is needed\n",
                "text/plain",
                extra='WWW-Authenticate: Bearer realm="lvscheck"\r\n',
            )
        try:
            request: Any = json.loads(req.body or b"{}")
            if not isinstance(request, dict):
                raise ActionError('the body is a JSON object: {"action": ..., "virtual": ..., "real": ...}')
            answer = perform(self.director, request, f"http:{who}@{where}")
            self.rows.look_everywhere()  # (maintenance of a real already down)
        except (ActionError, ValueError) as exc:
            body = json.dumps({"ok": False, "error": str(exc)}).encode()
            return _response(409 if isinstance(exc, ActionError) else 400, body, "application/json")
        return _response(200, json.dumps(answer).encode(), "application/json")

    def close(self) -> None:
        self.live.close()


class HttpListener:
    """The listening server and its live streams: :meth:`close` ends both.

    (A wrapper, not a patched ``Server.close``: uvloop's Server does not allow that.)
    """

    def __init__(self, server: asyncio.Server, site: _Site) -> None:
        self.server = server
        self.site = site

    @property
    def sockets(self) -> Any:
        return self.server.sockets

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.site.close()
        self.server.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


async def serve_http(director: Director, host: str, port: int, tokens: Tokens | None = None) -> HttpListener:
    """Listen on ``host:port``; closing the returned listener closes the live streams too."""
    site = _Site(director, tokens or Tokens())
    server = await asyncio.start_server(site.handle, host, port, reuse_address=True, limit=1 << 16)
    return HttpListener(server, site)
