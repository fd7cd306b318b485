"""One HTTP/2 request on a fresh connection: the smallest client a health check needs.

A health check opens a connection, sends one request on stream 1 and reads until
that stream ends, so most of HTTP/2 never happens: no second stream, no priority,
no push (refused in our SETTINGS), no flow control on our side (the reply is capped
below the 65,535-byte initial window, so no WINDOW_UPDATE is ever owed).  What is
left is framing (RFC 9113 section 4), the SETTINGS and PING acknowledgements the
peer may wait for, RST_STREAM and GOAWAY, and header blocks, which are HPACK
(RFC 7541): decoded by the hpack library (the one h2 uses), encoded here as
literals without indexing, which every decoder accepts and which need no table.

The fixed part of the header block is encoded once per prepared check; a per-check
header (``grpc-timeout``) is appended at run time (:func:`request`).  Everything read
is bounded by ``limit``.  Errors end the check through :class:`CheckFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lvscheck.errors import CheckFailed
from lvscheck.plugin.probe import Probe

__all__ = ["PREFACE", "Reply", "header_block", "raw", "read_reply", "request"]

#: The client connection preface, then our SETTINGS: ENABLE_PUSH (0x2) = 0.
PREFACE = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + b"\x00\x00\x06\x04\x00\x00\x00\x00\x00"
    + b"\x00\x02\x00\x00\x00\x00"
)

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
#: SETTINGS_MAX_FRAME_SIZE we announce (the default): a larger frame is a protocol error.
MAX_FRAME = 16384
_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"

#: RFC 9113 section 7 error codes, for reasons.
ERROR_CODES = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix (the prefix's other bits are 0)."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes((value,))
    out = bytearray((top,))
    value -= top
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Headers as HPACK literals without indexing, new names, no Huffman (RFC 7541 6.2.2)."""
    out = bytearray()
    for name, value in headers:
        out += b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value
    return bytes(out)


def request(block: bytes, body: bytes) -> bytes:
    """Everything the client sends, in one buffer: the preface, our SETTINGS, stream 1's
    HEADERS frame (``block``, END_HEADERS) and its DATA frame (``body``, END_STREAM)."""
    if len(block) > MAX_FRAME:
        raise CheckFailed(f"request headers larger than {MAX_FRAME} bytes")
    return PREFACE + _frame(HEADERS, END_HEADERS, 1, block) + _frame(DATA, END_STREAM, 1, body)


class Reply:
    """What came back on stream 1: headers then trailers (merged), and the DATA bytes."""

    __slots__ = ("data", "headers")

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()


def _unpad(payload: bytes, flags: int) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise CheckFailed("not a valid HTTP/2 reply (padding longer than its frame)")
    return payload[1 : len(payload) - payload[0]]


def _error_name(code: int) -> str:
    return ERROR_CODES[code] if code < len(ERROR_CODES) else f"error {code}"


def raw(data: bytes) -> str:
    """The first bytes the server sent, for a reason: ``'HTTP/1.1 400 Bad Request\\r\\n...'``."""
    return repr(data[:40])[1:]


async def read_reply(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, probe: Probe, limit: int
) -> Reply:
    """Read frames until stream 1 ends; answer SETTINGS and PING; at most ``limit`` bytes in all."""
    import hpack

    decoder = hpack.Decoder()
    reply = Reply()
    buffer = bytearray()
    block = bytearray()  # a header block spread over HEADERS + CONTINUATION
    in_block = block_ends_stream = False
    total = 0
    first: bytes | None = None
    while True:
        data = await reader.read(65536)
        if not data:
            if total == 0:  # a server without HTTP/2 closes on our preface
                raise CheckFailed("connection closed by the server without a reply (no HTTP/2 here?)")
            raise CheckFailed(f"connection closed by the server {probe.phase}")
        total += len(data)
        if total > limit:
            raise CheckFailed(f"reply larger than {limit // 1024} KiB {probe.phase}")
        buffer += data
        owed = bytearray()  # SETTINGS and PING acknowledgements, written once per read
        while len(buffer) >= 9:
            if first is None:
                first = bytes(buffer[:40])
                # RFC 9113 3.4: the server's preface is a SETTINGS frame
                if buffer[3] != SETTINGS:
                    raise CheckFailed(f"not an HTTP/2 reply (no SETTINGS frame first): {raw(first)}")
            length = int.from_bytes(buffer[:3], "big")
            kind, flags = buffer[3], buffer[4]
            stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            if length > MAX_FRAME:
                raise CheckFailed(f"not a valid HTTP/2 reply (a frame of {length} bytes, above {MAX_FRAME})")
            if len(buffer) < 9 + length:
                break
            payload = bytes(buffer[9 : 9 + length])
            del buffer[: 9 + length]
            if in_block != (kind == CONTINUATION):
                what = (
                    "a header block without its CONTINUATION" if in_block else "CONTINUATION without HEADERS"
                )
                raise CheckFailed(f"not a valid HTTP/2 reply ({what})")
            if kind == SETTINGS:
                if not flags & ACK:
                    owed += _SETTINGS_ACK
            elif kind == PING:
                if not flags & ACK:
                    owed += _frame(PING, ACK, 0, payload)
            elif kind == GOAWAY:
                last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF if len(payload) >= 8 else 0
                code = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else 1
                if code != 0 or last < 1:
                    raise CheckFailed(f"the server ended the HTTP/2 connection (GOAWAY {_error_name(code)})")
            elif stream != 1:
                continue  # WINDOW_UPDATE, PRIORITY, unknown types; nothing else is for us
            elif kind == RST_STREAM:
                code = int.from_bytes(payload[:4], "big")
                raise CheckFailed(f"the server reset the stream (HTTP/2 {_error_name(code)})")
            elif kind == DATA:
                reply.data += _unpad(payload, flags)
                if flags & END_STREAM:
                    return reply
            elif kind in (HEADERS, CONTINUATION):
                if kind == HEADERS:
                    payload = _unpad(payload, flags)
                    if flags & PRIORITY_FLAG:
                        payload = payload[5:]
                    block_ends_stream = bool(flags & END_STREAM)
                block += payload
                in_block = not flags & END_HEADERS
                if in_block:
                    continue
                try:
                    for name, value in decoder.decode(bytes(block), raw=True):
                        reply.headers[bytes(name)] = bytes(value)
                except hpack.HPACKError as exc:
                    raise CheckFailed(f"not a valid HTTP/2 header block ({exc})") from None
                block.clear()
                if block_ends_stream:
                    return reply
            elif kind == PUSH_PROMISE:
                raise CheckFailed("not a valid HTTP/2 reply (PUSH_PROMISE after we refused push)")
        if owed:
            writer.write(owed)
