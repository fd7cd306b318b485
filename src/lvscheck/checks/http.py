"""``http`` and ``https``: ldirectord's negotiate check for web servers, done strictly.

The dialogue: connect to the real server (TLS with SNI for https), send one
HTTP/1.1 request ``<httpmethod> <request>`` with ``Host: <virtualhost>`` and
``Connection: close``, read the status line and headers, then at most
``maxbody`` bytes of body, and search ``receive`` in them.  By default
redirects are *not* followed: a 3xx is judged like any other status;
``redirects=N`` follows up to N of them as ldirectord's LWP does, but only on
the real server (:mod:`lvscheck.checks._redirect`).  On an ldirectord.cf the
translation sets ldirectord's values (``redirects=7``, ``maxbody=1m``,
``tlsverify=chain`` without ``virtualhost``): :mod:`lvscheck.config.ldirectord_defaults`.

HTTP is parsed by httptools (llhttp, the parser of Node.js, in C) on asyncio
streams; the request is serialised once, when the check is prepared.  h11 was
the first choice (pure Python, underneath httpx) but measured here it cost
about 45 us of CPU per check (≈30 % over a bare asyncio-streams exchange, more
than the whole 1.3x budget) and 6-8 ms of start-up; httptools costs about 2 us
and 1 ms.  httpx with one shared client was 6.8x.  Figures: ``bench/README.md``
and ``docs/checks/http.md``.  Nothing here parses HTTP by hand.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from typing import Any

import httptools

from lvscheck._version import __version__
from lvscheck.checks._redirect import REDIRECT_CODES, Hop, next_hop
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_regex, parse_size, parse_weight, size_text
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["HttpCheck", "HttpsCheck"]

_USER_AGENT = f"lvscheck/{__version__}"
#: A response head (status line and headers) larger than this is refused.
MAX_HEAD = 32 * 1024
#: What may appear in a request target or a Host header: visible ASCII, no spaces.
_SENDABLE = re.compile(r"[\x21-\x7e]+")


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


def _parse_redirects(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 20:
        raise ValueError("expected a number of redirects 0..20 (ldirectord's LWP follows 7)")
    return int(text)


def _parse_weightfrom(text: str) -> tuple[str, str]:
    kind, _, name = text.partition(":")
    if kind not in ("header", "group") or not name:
        raise ValueError("expected header:NAME (e.g. header:X-LVS-Weight) or group:NAME")
    return kind, name


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
        Option("maxbody", "read at most this much body to search receive in", "64k", parse_size),
        Option(
            "redirects",
            "follow up to this many redirects (301/302/303/307/308) on the real server, as LWP; 0: none",
            "0",
            _parse_redirects,
        ),
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
            from urllib.parse import urlsplit  # only for full URLs: start-up time counts

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
        self._setup_reply()
        self.request = self._build_request(host_header, self.target_path)
        self.tls_context: ssl.SSLContext | None = None
        if self.use_tls:
            self.tls_context = context_from_options(opts)
        self.redirects: int = opts["redirects"]
        if self.redirects:
            scheme = "https" if self.use_tls else "http"
            self._base_url = f"{scheme}://{host_header}{self.target_path}"
            names = {self.connect_host, self.spec.target.host, self.server_name}
            self._real_names = frozenset(n.lower().strip("[]") for n in names)
            self._redirect_tls = self.tls_context or context_from_options(opts)

    def _setup_reply(self) -> None:
        """The method and how the reply is judged (status, receive, maxbody, weight): http and http_proxy."""
        opts = self.opts
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

    def _build_request(self, host_header: str, target: str) -> bytes:
        """The request exactly as sent, built and validated once (and once per followed redirect)."""
        if not target.isascii():
            from urllib.parse import quote

            target = quote(target, safe="/?#[]@!$&'()*+,;=:%~-._")
        if not _SENDABLE.fullmatch(target):
            raise OptionError(
                f"request={self.opts['request']!r} cannot be sent: spaces and control characters "
                "must be %-encoded (%20)"
            )
        if not host_header.isascii():
            try:
                host_header = host_header.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise OptionError(f"virtualhost={host_header!r} is not a valid host name: {exc}") from None
        if not _SENDABLE.fullmatch(host_header):
            raise OptionError(f"virtualhost={host_header!r} cannot be sent as a Host header")
        return (
            f"{self.method} {target} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            f"User-Agent: {_USER_AGENT}\r\n"
            "Accept: */*\r\n"
            "Connection: close\r\n"
            "\r\n"
        ).encode("ascii")

    def describe(self) -> str:
        return f"{self.name} {self.method} {self.target_path} {self.connect_host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect(
            self.connect_host, self.port, tls=self.tls_context, server_hostname=self.server_name
        )
        writer.write(self.request)
        response = await self._read_head(probe, reader)
        if self.redirects and response.status in REDIRECT_CODES:
            return await self._follow(probe, response)
        return await self._judge(probe, reader, response)

    async def _follow(self, probe: Probe, response: _Response) -> Outcome:
        """Follow redirects on the real server, one connection each, under the same deadline."""
        base = self._base_url
        followed = 0
        while response.status in REDIRECT_CODES:
            location = response.header(b"location")
            if location is None:
                break  # LWP: a 3xx without Location is the answer
            if followed == self.redirects:
                return Outcome.down(
                    f"HTTP {response.status} after {followed} redirects (the limit: redirects={followed})",
                    status=response.status,
                )
            hop = next_hop(location.decode("latin-1"), base, self._real_names)
            if isinstance(hop, Hop):
                try:
                    request = self._build_request(hop.host_header, hop.target)
                except OptionError:
                    hop = "the URL cannot be sent as a request"
            if not isinstance(hop, Hop):
                shown = _printable(location, 200)
                return Outcome.down(
                    f"HTTP {response.status} redirect to {shown} not followed: {hop}", status=response.status
                )
            followed += 1
            base = hop.url
            tls = self._redirect_tls if hop.tls else None
            reader, writer = await probe.connect(
                self.connect_host, hop.port, tls=tls, server_hostname=hop.host
            )
            writer.write(request)
            response = await self._read_head(probe, reader)
        outcome = await self._judge(probe, reader, response)
        where = _printable(base.encode("latin-1", "replace"), 200)
        suffix = f" (after {followed} redirect{'s' if followed != 1 else ''}, at {where})"
        return Outcome(outcome.state, outcome.reason + suffix, outcome.weight, outcome.details)

    async def _read_head(self, probe: Probe, reader: asyncio.StreamReader) -> _Response:
        probe.phase = "waiting for the response headers"
        response = _Response(self.maxbody if self._want_body else 0)
        parser = httptools.HttpResponseParser(response)
        response.parser = parser
        head_size = 0
        while not response.head_done:
            data = await reader.read(65536)
            if not data:
                raise CheckFailed(f"connection closed by the server {probe.phase}{response.unparsed()}")
            head_size += len(data)
            response.feed(data, probe.phase)
            if not response.head_done and head_size > MAX_HEAD:
                raise CheckFailed(
                    f"not a valid HTTP response (status line and headers larger than {MAX_HEAD // 1024} KiB)"
                    f" {probe.phase}"
                )
        return response

    async def _judge(self, probe: Probe, reader: Any, response: _Response) -> Outcome:
        want_body = self._want_body
        status = response.status
        status_text = f"HTTP {status} {_printable(response.reason, 80)}".rstrip()
        if status not in self._accepted:
            extra = ""
            if 300 <= status < 400:
                location = response.header(b"location")
                shown = _printable(location, 200) if location else "?"
                extra = f" (redirect to {shown}, not followed)"
            return Outcome.down(f"{status_text}{extra}; accepted: {self._status_text()}", status=status)
        body = b""
        if want_body:
            probe.phase = "waiting for the response body"
            while not response.complete and response.body_size < self.maxbody:
                data = await reader.read(65536)
                if not data:
                    response.eof(probe.phase)
                    break
                response.feed(data, probe.phase)
            body = b"".join(response.body)[: self.maxbody]
        reasons = [status_text]
        match = None
        if self.receive is not None:
            match = self.receive.search(body)
            if match is None:
                shown = self.receive.pattern.decode("utf-8", "replace")
                where = (
                    f"the first {size_text(self.maxbody)} of the body"
                    if len(body) >= self.maxbody
                    else f"the body ({len(body)} bytes)"
                )
                return Outcome.down(f"{status_text}, but {shown!r} not found in {where}", status=status)
            reasons.append(self._found)
        if self.weightfrom is None:
            return Outcome.up(", ".join(reasons), status=status)
        return self._weight_outcome(response, match, reasons, status)

    # Derived once per prepared check, on first use (subclasses such as http_proxy set the
    # options in their own setup): the hot path then does set lookups, not formatting.
    @functools.cached_property
    def _want_body(self) -> bool:
        return self.receive is not None or (self.weightfrom is not None and self.weightfrom[0] == "group")

    @functools.cached_property
    def _accepted(self) -> frozenset[int]:
        return _accepted_codes(self.statuses)

    @functools.cached_property
    def _found(self) -> str:
        assert self.receive is not None
        return f"{self.receive.pattern.decode('utf-8', 'replace')!r} found"

    def _weight_outcome(
        self, response: _Response, match: re.Match[bytes] | None, reasons: list[str], status: int
    ) -> Outcome:
        assert self.weightfrom is not None
        kind, name = self.weightfrom
        raw: bytes | None
        if kind == "header":
            raw = response.header(name.lower().encode())
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


class _Response:
    """The httptools callbacks for one response: status, headers, and at most ``limit`` bytes of body.

    1xx informational responses are skipped; the final response's head ends
    the header phase (``head_done``), its end ends the body (``complete``).
    """

    __slots__ = (
        "body",
        "body_size",
        "complete",
        "head_done",
        "headers",
        "limit",
        "parser",
        "reason",
        "received",
        "status",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser: Any = None
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.head_done = False
        self.complete = False
        self.received = b""  # the first bytes, to show when they are not HTTP

    # -- httptools callbacks --
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # informational: the real answer follows
            self.reason = b""
            self.headers.clear()
            return
        self.status = status
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if self.body_size < self.limit:
            self.body.append(body)
        self.body_size += len(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    # -- used by the check --
    def feed(self, data: bytes, phase: str) -> None:
        if not self.head_done and len(self.received) < 40:
            self.received += data[:40]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # 101 Switching Protocols: judged by its status like any other
        except httptools.HttpParserError as exc:
            if self.head_done:  # (the body may come in the same read as the head: say where it broke)
                raise CheckFailed(
                    f"not a valid HTTP response body ({exc}) after the headers of HTTP {self.status}"
                ) from None
            what = "no HTTP status line" if str(exc).startswith("Expected HTTP/") else str(exc)
            raise CheckFailed(
                f"not a valid HTTP response ({what}: {_shown(self.received)}) {phase}"
            ) from None

    def eof(self, phase: str) -> None:
        """The server closed: fine for a body that runs until close, an error for a framed one."""
        length = self.header(b"content-length")
        if length is not None and length.strip().isdigit():
            raise CheckFailed(
                f"connection closed by the server {phase} "
                f"(received {self.body_size} bytes, expected {int(length)})"
            )
        encoding = self.header(b"transfer-encoding")
        if encoding is not None and b"chunked" in encoding.lower():
            raise CheckFailed(f"connection closed by the server {phase} (in the middle of a chunked body)")
        self.complete = True

    def unparsed(self) -> str:
        if not self.received:
            return ""
        shown = _shown(self.received)
        return f" (after {len(self.received)} bytes that are not a complete HTTP response head: {shown})"

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _printable(text: bytes, limit: int) -> str:
    """A server-given string (reason phrase, Location) fit for a one-line reason: cut, no control chars."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit].decode("latin-1"))
    return shown + "..." if len(text) > limit else shown


@functools.lru_cache(maxsize=64)
def _accepted_codes(statuses: tuple[tuple[int, int], ...]) -> frozenset[int]:
    """The status codes ``statuses`` accepts, one set shared by every check with that setting.

    (One set per prepared check cost ~9.5 KB a real: 95 MB for 10,000 reals; bench/README.md.)
    """
    return frozenset(code for low, high in statuses for code in range(low, high + 1))


def _shown(data: bytes) -> str:
    """Raw bytes for a reason: ``'SSH-2.0-OpenSSH\\r\\n'``, non-ASCII as ``\\xff``."""
    return repr(data[:40])[1:]


class HttpsCheck(HttpCheck):
    name = "https"
    summary = "HTTPS request with verified TLS and SNI; status and body decide"
    default_port = 443
    tls = True


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(HttpCheck)
    register.add(HttpsCheck)
