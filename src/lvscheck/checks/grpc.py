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

The client is the smallest HTTP/2 a single request needs (:mod:`._h2`: framing by
hand, HPACK decoding by the hpack library) and the two protobuf messages are
encoded by hand (one field each: a string, an enum).  Chosen by measurement
(bench/grpc_agent_cpu.py, docs/checks/grpc.md): the full h2 state machine cost
about 3x the CPU of an HTTP check, grpcio's client more CPU than this and ~20x the
import; hpack is imported only when a grpc check runs.
"""

from __future__ import annotations

import ssl

from lvscheck._version import __version__
from lvscheck.checks import _h2
from lvscheck.checks._lines import quote_shown
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_bool
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["MAX_REPLY", "GrpcCheck", "decode_status", "encode_request"]

#: Most bytes read from the server for one check (frames, headers, message, trailers).
MAX_REPLY = 64 * 1024
_PATH = b"/grpc.health.v1.Health/Check"
#: GOAWAY, last stream 1, NO_ERROR: we are done with this connection.
_GOAWAY = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x01\x00\x00\x00\x00"
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


class GrpcCheck(Check):
    name = "grpc"
    summary = "gRPC health: grpc.health.v1.Health/Check over HTTP/2 (TLS optional); SERVING is up"
    options = (
        Option("service", "service name to ask about (default: the server as a whole)", ""),
        Option("tls", "use TLS (verified like https, ALPN h2): yes or no", "no", parse_bool),
        Option("virtualhost", "the :authority and TLS server name (default: the real's address)"),
        *TLS_OPTIONS,
    )
    requires = ("hpack",)

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
        self.block = _h2.header_block(self.headers)
        self.what = f"service {self.service!r}" if self.service else "server"

    def describe(self) -> str:
        return f"grpc {self.what} {self.spec.target.host}:{self.port}{' tls' if self.use_tls else ''}"

    async def probe(self, probe: Probe) -> Outcome:
        try:
            reader, writer = await probe.connect(tls=self.tls_context, server_hostname=self.server_name)
        except ssl.SSLError as exc:
            if "no application protocol" not in str(exc).lower():  # the TLS alert (RFC 7301)
                raise
            raise CheckFailed(
                "the server refused HTTP/2 in the TLS handshake (ALPN h2: no application protocol)"
            ) from None
        if self.tls_context is not None:
            tls = writer.get_extra_info("ssl_object")
            if tls is None or tls.selected_alpn_protocol() != "h2":
                raise CheckFailed("the server did not agree to HTTP/2 in the TLS handshake (ALPN h2)")
        timeout = f"{max(1, int(probe.remaining() * 1000))}m".encode()  # the server may give up too
        writer.write(_h2.request(self.block + _h2.header_block(((b"grpc-timeout", timeout),)), self.request))
        probe.phase = "waiting for the gRPC reply"
        reply = await _h2.read_reply(reader, writer, probe, MAX_REPLY)
        writer.write(_GOAWAY)  # a polite end: the engine closes the connection next
        return self.judge(reply.headers, bytes(reply.data))

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


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(GrpcCheck)
