"""``http`` and ``https``: ldirectord's negotiate check for web servers, done strictly.

The dialogue: connect to the real server (TLS with SNI for https), send one
HTTP/1.1 request ``<httpmethod> <request>`` with ``Host: <virtualhost>`` and
``Connection: close``, read the status line and headers, then at most
``maxbody`` bytes of body, and search ``receive`` in them.  Redirects are
*not* followed: a 3xx is judged like any other status.

HTTP is parsed by h11 on asyncio streams.  httpx would be the friendlier
client, but measured on the director's hot path it cost 6.8x the CPU of a bare
asyncio-streams exchange against h11's 1.1x (see ``bench/README.md`` and
``docs/checks/http.md``); h11 is the well-kept protocol library underneath
httpx, so nothing here parses HTTP by hand.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from urllib.parse import urlsplit

import h11

from lvscheck import __version__
from lvscheck.checks.tls import TLS_OPTIONS, client_context
from lvscheck.checktype import Check, parse_bool, parse_regex, parse_weight
from lvscheck.engine.probe import Probe
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.hookspecs import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugins import CheckRegistry

__all__ = ["HttpCheck", "HttpsCheck"]

_USER_AGENT = f"lvscheck/{__version__}".encode()
#: h11 shows raw bytes as bytearray(b'...'); an operator needs only the b'...'.
_BYTEARRAY = re.compile(r"bytearray\((b'[^']*'|b\"[^\"]*\")\)")


def _parse_method(text: str) -> str:
    method = text.strip().upper()
    if method not in ("GET", "HEAD"):
        raise ValueError("expected GET or HEAD")
    return method


def _parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``200``, ``200,204``, ``200-399`` or ``2xx``: a tuple of inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip().lower()
        if re.fullmatch(r"[1-5]xx", part):
            low = int(part[0]) * 100
            ranges.append((low, low + 99))
        elif m := re.fullmatch(r"(\d{3})(?:-(\d{3}))?", part):
            low = int(m[1])
            high = int(m[2] or m[1])
            if low > high:
                raise ValueError(f"range {part} runs backwards")
            if low < 100 or high > 599:
                raise ValueError(f"{part} is not an HTTP status; expected codes in 100..599")
            ranges.append((low, high))
        else:
            raise ValueError("expected status codes such as 200, 200,204, 200-399 or 2xx")
    return tuple(ranges)


def _parse_weightfrom(text: str) -> tuple[str, str]:
    kind, _, name = text.partition(":")
    if kind not in ("header", "group") or not name:
        raise ValueError("expected header:NAME (e.g. header:X-LVS-Weight) or group:NAME")
    return kind, name


def _parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    digits = text[:-1] if factor > 1 else text
    if not digits.isdigit() or not 0 < int(digits) * factor <= 64 * 1024 * 1024:
        raise ValueError("expected a size in bytes such as 65536, 64k or 1m (at most 64m)")
    return int(digits) * factor


def _size_text(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


class HttpCheck(Check):
    name = "http"
    summary = "HTTP request; status and a regular expression on the body decide (ldirectord negotiate)"
    default_port = 80
    tls = False
    options = (
        Option("request", "path or full URL to request (ldirectord request=)", "/"),
        Option("receive", "regular expression searched in the body (unanchored)", None, parse_regex),
        Option("virtualhost", "Host header and TLS server name (default: the real's address)"),
        Option("httpmethod", "GET or HEAD", "GET", _parse_method),
        Option("status", "accepted status codes: 200, 200,204, 200-399 or 2xx", "2xx", _parse_statuses),
        Option("maxbody", "read at most this much body to search receive in", "64k", _parse_size),
        Option(
            "weightfrom",
            "take the weight from the reply: header:X-LVS-Weight or group:NAME of receive",
            None,
            _parse_weightfrom,
        ),
        Option("minweight", "lowest weight taken from the reply", "0", parse_weight),
        Option(
            "maxweight",
            "highest weight taken from the reply (default: the configured weight)",
            None,
            parse_weight,
        ),
        *TLS_OPTIONS,
    )

    def setup(self) -> None:
        opts = self.opts
        request: str = opts["request"]
        self.use_tls = self.tls
        self.connect_host = self.spec.target.host
        if "://" in request:
            url = urlsplit(request)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise OptionError(f"request={request!r}: a full URL must be http:// or https:// with a host")
            self.use_tls = url.scheme == "https"
            self.connect_host = url.hostname
            self.port = url.port or (443 if self.use_tls else 80)
            path = url.path or "/"
            self.target_path = path + (f"?{url.query}" if url.query else "")
            url_host = url.hostname
        else:
            self.target_path = request if request.startswith("/") else "/" + request
            url_host = None
        vhost: str | None = opts["virtualhost"] or url_host
        self.server_name = vhost or self.connect_host
        default_port = 443 if self.use_tls else 80
        host_header = self.server_name if ":" not in self.server_name else f"[{self.server_name}]"
        if vhost is None and self.port != default_port:
            host_header = f"{host_header}:{self.port}"
        self.method: str = opts["httpmethod"]
        self.receive: re.Pattern[bytes] | None = opts["receive"]
        if self.method == "HEAD" and self.receive is not None:
            raise OptionError("httpmethod=HEAD gets no body, so receive= can never match; drop one")
        weightfrom: tuple[str, str] | None = opts["weightfrom"]
        if (
            weightfrom
            and weightfrom[0] == "group"
            and (self.receive is None or weightfrom[1] not in self.receive.groupindex)
        ):
            raise OptionError(
                f"weightfrom=group:{weightfrom[1]} needs receive= with a named group (?P<{weightfrom[1]}>...)"
            )
        self.weightfrom = weightfrom
        self.minweight: int = opts["minweight"]
        self.maxweight: int = opts["maxweight"] if opts["maxweight"] is not None else self.spec.target.weight
        self.statuses: tuple[tuple[int, int], ...] = opts["status"]
        self.maxbody: int = opts["maxbody"]
        self.request = self._build_request(host_header)
        self.tls_context: ssl.SSLContext | None = None
        if self.use_tls:
            for name in ("cafile", "certfile", "keyfile"):
                path = opts[name]
                try:
                    if path:
                        with open(path, "rb"):  # a missing file named here, not by ssl
                            pass
                except OSError as exc:
                    raise OptionError(f"{name}={path!r}: cannot read it: {exc.strerror or exc}") from None
            try:
                self.tls_context = client_context(
                    parse_bool(opts["tlsverify"]), opts["cafile"], opts["certfile"], opts["keyfile"]
                )
            except ValueError as exc:
                raise OptionError(f"tlsverify={opts['tlsverify']!r}: {exc}") from None
            except (OSError, ssl.SSLError) as exc:
                raise OptionError(f"cannot load the TLS files (cafile/certfile/keyfile): {exc}") from None

    def _build_request(self, host_header: str) -> h11.Request:
        headers = [
            (b"Host", host_header.encode("idna")),
            (b"User-Agent", _USER_AGENT),
            (b"Accept", b"*/*"),
            (b"Connection", b"close"),
        ]
        try:
            request = h11.Request(method=self.method, target=self.target_path, headers=headers)
            h11.Connection(h11.CLIENT).send(request)  # validates it once, here
        except (h11.LocalProtocolError, UnicodeError) as exc:
            raise OptionError(f"request={self.opts['request']!r} cannot be sent: {exc}") from None
        return request

    def describe(self) -> str:
        return f"{self.name} {self.method} {self.target_path} {self.connect_host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect(
            self.connect_host, self.port, tls=self.tls_context, server_hostname=self.server_name
        )
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=32 * 1024)
        writer.write(conn.send(self.request) or b"")
        conn.send(h11.EndOfMessage())
        probe.phase = "waiting for the response headers"
        response = await _next_event(conn, reader, probe)
        if not isinstance(response, h11.Response):
            raise CheckFailed(f"no HTTP response {probe.phase}")
        status = response.status_code
        status_text = f"HTTP {status} {response.reason.decode('latin-1')}".rstrip()
        if not any(low <= status <= high for low, high in self.statuses):
            extra = ""
            if 300 <= status < 400:
                location = _header(response, b"location")
                shown = location.decode("latin-1") if location else "?"
                extra = f" (redirect to {shown}, not followed)"
            return Outcome.down(f"{status_text}{extra}; accepted: {self._status_text()}", status=status)
        body = b""
        if self.receive is not None or (self.weightfrom and self.weightfrom[0] == "group"):
            probe.phase = "waiting for the response body"
            body = await self._read_body(conn, reader, probe)
        reasons = [status_text]
        match = None
        if self.receive is not None:
            match = self.receive.search(body)
            if match is None:
                shown = self.receive.pattern.decode("utf-8", "replace")
                where = (
                    f"the first {_size_text(self.maxbody)} of the body"
                    if len(body) >= self.maxbody
                    else f"the body ({len(body)} bytes)"
                )
                return Outcome.down(f"{status_text}, but {shown!r} not found in {where}", status=status)
            reasons.append(f"{self.receive.pattern.decode('utf-8', 'replace')!r} found")
        if self.weightfrom is None:
            return Outcome.up(", ".join(reasons), status=status)
        return self._weight_outcome(response, match, reasons, status)

    def _weight_outcome(
        self, response: h11.Response, match: re.Match[bytes] | None, reasons: list[str], status: int
    ) -> Outcome:
        assert self.weightfrom is not None
        kind, name = self.weightfrom
        raw: bytes | None
        if kind == "header":
            raw = _header(response, name.lower().encode())
            source = f"header {name}"
        else:
            raw = match.group(name) if match is not None else None
            source = f"group {name}"
        configured = self.spec.target.weight
        text = raw.decode("latin-1").strip() if raw is not None else ""
        if not text.isdigit():
            why = "missing" if raw is None else f"not a number ({text[:40]!r})"
            reasons.append(f"{source} {why}, keeping weight {configured}")
            return Outcome.degraded(", ".join(reasons), None, status=status)
        asked = int(text)
        weight = max(self.minweight, min(self.maxweight, asked))
        clamp = f" (asked {asked}, clamped to {self.minweight}..{self.maxweight})" if weight != asked else ""
        reasons.append(f"weight {weight} from {source}{clamp}")
        reason = ", ".join(reasons)
        if weight < configured:
            return Outcome.degraded(reason, weight, status=status)
        return Outcome.up(reason, weight, status=status)

    def _status_text(self) -> str:
        return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.statuses)

    async def _read_body(self, conn: h11.Connection, reader: asyncio.StreamReader, probe: Probe) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while size < self.maxbody:
            event = await _next_event(conn, reader, probe)
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                size += len(event.data)
            else:  # EndOfMessage or ConnectionClosed: the whole body is in
                break
        return b"".join(chunks)[: self.maxbody]


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader, probe: Probe) -> object:
    """The next response event, reading from the server as h11 needs; errors become reasons."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            text = str(exc)
            if "peer unexpectedly closed" in text:
                # closed in the middle of the status line/headers, or without any HTTP at all
                raise CheckFailed(f"connection closed by the server {probe.phase}{_unparsed(conn)}") from None
            if "closed connection without sending complete message body" in text:
                detail = text.partition("message body")[2].strip(" :()")
                raise CheckFailed(f"connection closed by the server {probe.phase} ({detail})") from None
            text = _BYTEARRAY.sub(r"\1", text)
            raise CheckFailed(f"not a valid HTTP response ({text}) {probe.phase}") from None
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.ConnectionClosed):
            raise CheckFailed(f"connection closed by the server {probe.phase}")
        elif not isinstance(event, h11.InformationalResponse):
            return event


def _unparsed(conn: h11.Connection) -> str:
    """What the server sent that was not a complete response head, for the reason."""
    data = bytes(conn.trailing_data[0])
    if not data:
        return ""
    shown = data[:40].decode("latin-1")
    return f" (after {len(data)} bytes that are not a complete HTTP response head: {shown!r})"


def _header(response: h11.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name:
            return bytes(value)
    return None


class HttpsCheck(HttpCheck):
    name = "https"
    summary = "HTTPS request with verified TLS and SNI; status and body decide"
    default_port = 443
    tls = True


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(HttpCheck)
    register.add(HttpsCheck)
