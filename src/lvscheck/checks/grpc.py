"""``grpc``: the standard gRPC health check, ``grpc.health.v1.Health/Check``, over HTTP/2.

The dialogue, on one new connection per check: TCP (TLS with ALPN ``h2`` when
``tls=yes``, verified like https), the HTTP/2 preface and SETTINGS, then one
stream: HEADERS (``POST /grpc.health.v1.Health/Check``, ``content-type:
application/grpc``, ``te: trailers``, ``grpc-timeout`` = what is left of the
deadline) and one DATA frame holding the gRPC message ``HealthCheckRequest{service}``.
The reply is read until the stream ends (at most :data:`MAX_REPLY` bytes in all):
response headers, one ``HealthCheckResponse{status}`` message, trailers with
``grpc-status``.  Then GOAWAY, and the connection is closed.

``SERVING`` is up; ``NOT_SERVING``, ``UNKNOWN`` and ``SERVICE_UNKNOWN`` are down
with the status in the reason, and so is any gRPC error status (``NOT_FOUND`` for a
service the server does not know, ``UNIMPLEMENTED`` for a server without the
health service).

The client is h2 (the pure-Python HTTP/2 state machine; HPACK and framing come
from it) with the two protobuf messages encoded by hand: each has one field (a
string, an enum).  grpcio was measured against it (docs/checks/grpc.md,
bench/grpc_cpu.py) and costs more CPU per check and several times the import;
h2 is imported only when a grpc check is prepared.
"""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING, Any

from lvscheck._version import __version__
from lvscheck.checks._lines import quote_shown
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.checktype import Check, parse_bool
from lvscheck.engine.probe import Probe
from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugins import CheckRegistry

if TYPE_CHECKING:
    from h2.config import H2Configuration

__all__ = ["MAX_REPLY", "GrpcCheck", "decode_status", "encode_request"]

#: Most bytes read from the server for one check (frames, headers, message, trailers).
MAX_REPLY = 64 * 1024
_PATH = b"/grpc.health.v1.Health/Check"
#: grpc.health.v1.HealthCheckResponse.ServingStatus
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
#: gRPC status codes (grpc/status.h)
GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


# -- the two protobuf messages, by hand ---------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | 0x80 if n else low)
        if not n:
            return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def encode_request(service: str) -> bytes:
    """A length-prefixed gRPC message ``HealthCheckRequest{service = 1 (string)}``."""
    raw = service.encode("utf-8")
    body = b"\x0a" + _varint(len(raw)) + raw if raw else b""  # proto3: an empty string is not sent
    return b"\x00" + len(body).to_bytes(4, "big") + body


def decode_status(body: bytes) -> int:
    """``HealthCheckResponse.status`` (field 1, varint); 0 (UNKNOWN) when absent; other fields skipped."""
    status = 0
    i = 0
    while i < len(body):
        key, i = _read_varint(body, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(body, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _read_varint(body, i)
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not valid here")
        if i > len(body):
            raise ValueError("truncated protobuf field")
    return status


@functools.cache
def _h2_config() -> H2Configuration:
    from h2.config import H2Configuration

    return H2Configuration(client_side=True, header_encoding=None)


class GrpcCheck(Check):
    name = "grpc"
    summary = "gRPC health: grpc.health.v1.Health/Check over HTTP/2 (TLS optional); SERVING is up"
    options = (
        Option("service", "service name to ask about (default: the server as a whole)", ""),
        Option("tls", "use TLS (verified like https, ALPN h2): yes or no", "no", parse_bool),
        Option("virtualhost", "the :authority and TLS server name (default: the real's address)"),
        *TLS_OPTIONS,
    )
    requires = ("h2",)

    def setup(self) -> None:
        opts = self.opts
        self.service: str = opts["service"]
        self.use_tls: bool = opts["tls"]
        self.tls_context: ssl.SSLContext | None = (
            context_from_options(opts, ("h2",)) if self.use_tls else None
        )
        host = self.spec.target.host
        self.server_name: str = opts["virtualhost"] or host
        shown_host = f"[{host}]" if ":" in host else host
        authority = opts["virtualhost"] or f"{shown_host}:{self.port}"
        self.request = encode_request(self.service)
        self.headers: tuple[tuple[bytes, bytes], ...] = (
            (b":method", b"POST"),
            (b":scheme", b"https" if self.use_tls else b"http"),
            (b":path", _PATH),
            (b":authority", authority.encode("idna") if not authority.isascii() else authority.encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", f"lvscheck/{__version__}".encode()),
        )
        self.what = f"service {self.service!r}" if self.service else "server"

    def describe(self) -> str:
        return f"grpc {self.what} {self.spec.target.host}:{self.port}{' tls' if self.use_tls else ''}"

    async def probe(self, probe: Probe) -> Outcome:
        import h2.connection
        import h2.events
        import h2.exceptions

        reader, writer = await probe.connect(tls=self.tls_context, server_hostname=self.server_name)
        if self.tls_context is not None:
            tls = writer.get_extra_info("ssl_object")
            if tls is None or tls.selected_alpn_protocol() != "h2":
                raise CheckFailed("the server did not agree to HTTP/2 in the TLS handshake (ALPN h2)")
        conn = h2.connection.H2Connection(config=_h2_config())
        conn.initiate_connection()
        timeout = f"{max(1, int(probe.remaining() * 1000))}m".encode()
        conn.send_headers(1, [*self.headers, (b"grpc-timeout", timeout)])
        conn.send_data(1, self.request, end_stream=True)
        writer.write(conn.data_to_send())
        probe.phase = "waiting for the gRPC reply"
        headers: dict[bytes, bytes] = {}
        message = bytearray()
        first = b""  # the first bytes, shown when they are not HTTP/2
        ended = False
        while not ended:
            data = await reader.read(65536)
            if not data:
                if not first:  # a server without HTTP/2 closes on the HTTP/2 preface
                    raise CheckFailed("connection closed by the server without a reply (no HTTP/2 here?)")
                raise CheckFailed(f"connection closed by the server {probe.phase}")
            if len(first) < 40:
                seen = len(first)
                first = (first + data)[:40]
                # RFC 9113 3.4: the server's preface is a SETTINGS frame (type 4 in byte 3).
                # h2 itself would wait for a "frame" as long as 'HTT' says (4.7 MB).
                if seen < 9 <= len(first) and first[3] != 4:
                    raise CheckFailed(
                        f"not an HTTP/2 reply (no SETTINGS frame first): {_raw(first)}"
                    )
            if len(message) + len(data) > MAX_REPLY:
                raise CheckFailed(f"gRPC reply larger than {MAX_REPLY // 1024} KiB")
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                raise CheckFailed(
                    f"not an HTTP/2 reply ({exc or type(exc).__name__}): {_raw(first)}"
                ) from None
            for event in events:
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    headers.update((bytes(k), bytes(v)) for k, v in event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    message += event.data
                    if len(message) > MAX_REPLY:
                        raise CheckFailed(f"gRPC reply larger than {MAX_REPLY // 1024} KiB")
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                elif isinstance(event, h2.events.StreamReset):
                    raise CheckFailed(
                        f"the server reset the gRPC stream (HTTP/2 {_h2_error(event.error_code)})"
                    )
                elif isinstance(event, h2.events.ConnectionTerminated) and not ended:
                    raise CheckFailed(
                        f"the server ended the HTTP/2 connection (GOAWAY {_h2_error(event.error_code)}) "
                        f"{probe.phase}"
                    )
            pending = conn.data_to_send()
            if pending:
                writer.write(pending)
        conn.close_connection()
        writer.write(conn.data_to_send())
        return self.judge(headers, bytes(message))

    def judge(self, headers: dict[bytes, bytes], message: bytes) -> Outcome:
        """The verdict on a finished stream: its headers and trailers, and its DATA."""
        status = headers.get(b":status", b"?").decode("latin-1")
        if status != "200":
            return Outcome.down(f"HTTP/2 status {status}: not a gRPC reply")
        ctype = headers.get(b"content-type", b"")
        if not ctype.startswith(b"application/grpc"):
            return Outcome.down(f"content-type {quote_shown(ctype, 60)}: not a gRPC reply")
        code_text = headers.get(b"grpc-status")
        if code_text is None or not code_text.isdigit():
            return Outcome.down("gRPC reply without a grpc-status")
        code = int(code_text)
        if code != 0:
            name = GRPC_CODES[code] if code < len(GRPC_CODES) else str(code)
            said = headers.get(b"grpc-message")
            if said:
                from urllib.parse import unquote_to_bytes  # grpc-message is percent-encoded

                said = unquote_to_bytes(said)
            detail = f": {quote_shown(said, 120)}" if said else ""
            if code == 5:
                return Outcome.down(f"{self.what} unknown to the server (gRPC NOT_FOUND){detail}", grpc=name)
            if code == 12:
                return Outcome.down(
                    f"no grpc.health.v1.Health service (gRPC UNIMPLEMENTED){detail}", grpc=name
                )
            return Outcome.down(f"gRPC status {name}{detail}", grpc=name)
        if len(message) < 5:
            return Outcome.down("gRPC status OK but no HealthCheckResponse message")
        if message[0] != 0:
            return Outcome.down("compressed gRPC message (lvscheck asks for none)")
        length = int.from_bytes(message[1:5], "big")
        if len(message) < 5 + length:
            return Outcome.down(f"truncated gRPC message ({len(message) - 5} of {length} bytes)")
        try:
            serving = decode_status(message[5 : 5 + length])
        except ValueError as exc:
            return Outcome.down(f"not a HealthCheckResponse: {exc}")
        name = SERVING_STATUS.get(serving, f"status {serving}")
        if serving == 1:
            return Outcome.up(f"{self.what} SERVING", status=name)
        return Outcome.down(f"{self.what} {name}", status=name)


def _raw(data: bytes) -> str:
    """The first bytes the server sent, for a reason: ``'HTTP/1.1 400 Bad Request\\r\\n...'``."""
    return repr(data[:40])[1:]


def _h2_error(code: Any) -> str:
    return str(getattr(code, "name", code))


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(GrpcCheck)
