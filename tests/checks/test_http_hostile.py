"""The http check against hostile servers: each must give *down* within its deadline.

These servers are hand-written on purpose (fault injection; no real web server
stalls, resets or babbles on demand): accept and stall, reset, garbage instead of
HTTP, an endless body, endless headers, headers a byte a second, accept then
close, a body cut short, a TLS port that never finishes its handshake.  Each runs
in the same event loop as the check.  No file descriptor may leak.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import time

import pytest
from tests.peers.hostile import Handler, serve
from tests.timing import assert_at_deadline, assert_by_deadline

import lvscheck
from lvscheck import CheckSpec, Result, State, Target

SEED = {"request": "/test.html", "receive": "Still alive"}
OK_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"


def against(handler: Handler, kind: str = "http", **options: str) -> tuple[Result, float]:
    with serve(handler) as port:
        t0 = time.monotonic()
        [result] = lvscheck.run_checks([CheckSpec(kind, Target("127.0.0.1", port), options)])
        return result, time.monotonic() - t0


# -- the hostile servers --------------------------------------------------------------------------


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reset_at_once(reader, writer)


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"\x00\xff\xfe garbage, not HTTP\r\nmore garbage\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # an SSH server behind the wrong port: one line, then it waits for us
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def endless_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(b"z" * 4096)  # no newline, ever
        await writer.drain()


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(OK_HEADERS)
    n = 0
    while True:
        n += 1
        writer.write(b"X-Filler-%d: %s\r\n" % (n, b"v" * 100))
        await writer.drain()


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK_HEADERS + b"\r\n")  # no length: the body runs until close, which never comes
    while True:
        writer.write(b"la " * 4096)
        await writer.drain()


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK_HEADERS + b"Transfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"1000\r\n" + b"c" * 0x1000 + b"\r\n")
        await writer.drain()


async def slow_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    for byte in OK_HEADERS + b"Content-Length: 12\r\n\r\nStill alive\n":
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1)


async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK_HEADERS + b"Content-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b".")
        await writer.drain()
        await asyncio.sleep(1)


async def body_cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(OK_HEADERS + b"Content-Length: 100\r\n\r\nStill")
    await writer.drain()
    writer.close()


async def headers_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
    await writer.drain()
    writer.close()


async def http09(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # LWP (ldirectord) accepts a reply without a status line; we do not
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"Still alive\n")
    await writer.drain()
    writer.close()


# -- the verdicts ---------------------------------------------------------------------------------

# (handler, options, expected reason (exact, or a prefix ending in "..."), deadline)
CASES: dict[str, tuple[Handler, dict[str, str], str, float]] = {
    "accept and stall": (stall, {}, "timed out after 1 s waiting for the response headers", 1.0),
    "reset after accept": (reset_at_once, {}, "connection reset by the server ...", 2.0),
    "reset after the request": (
        reset_after_request,
        {},
        "connection reset by the server waiting for the response headers",
        2.0,
    ),
    "accept then close": (
        close_at_once,
        {},
        "re:connection (closed|reset) by the server waiting for the response headers",
        2.0,
    ),
    "garbage instead of HTTP": (
        garbage,
        {},
        "not a valid HTTP response (no HTTP status line: "
        "'\\x00\\xff\\xfe garbage, not HTTP\\r\\nmore garbage\\r\\n\\r\\n') waiting for the response headers",
        2.0,
    ),
    "a banner, then silence": (
        banner,
        {},
        "not a valid HTTP response (no HTTP status line: 'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n')"
        " waiting for the response headers",
        1.0,
    ),
    "endless garbage without a newline": (endless_garbage, {}, "not a valid HTTP response (...", 2.0),
    "endless headers": (
        endless_headers,
        {},
        "not a valid HTTP response (status line and headers larger than 32 KiB)"
        " waiting for the response headers",
        2.0,
    ),
    "endless body": (
        endless_body,
        {},
        "HTTP 200 OK, but 'Still alive' not found in the first 64 KiB of the body",
        2.0,
    ),
    "endless chunked body": (
        endless_chunked,
        {},
        "HTTP 200 OK, but 'Still alive' not found in the first 64 KiB of the body",
        2.0,
    ),
    "slow headers (a byte a second)": (
        slow_headers,
        {},
        "timed out after 1.5 s waiting for the response headers",
        1.5,
    ),
    "slow body": (slow_body, {}, "timed out after 1.5 s waiting for the response body", 1.5),
    "body cut short": (
        body_cut_short,
        {},
        "connection closed by the server waiting for the response body...",
        2.0,
    ),
    "headers cut short": (
        headers_then_close,
        {},
        "connection closed by the server waiting for the response headers (after 27 bytes that are"
        " not a complete HTTP response head: 'HTTP/1.1 200 OK\\r\\nContent-Le')",
        2.0,
    ),
    "HTTP/0.9 reply": (
        http09,
        {},
        "not a valid HTTP response (no HTTP status line: 'Still alive\\n') waiting for the response headers",
        2.0,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_server_is_down_within_the_deadline(name: str) -> None:
    handler, options, expected, deadline = CASES[name]
    result, elapsed = against(handler, **SEED, **options, negotiatetimeout=f"{deadline:g}")
    assert result.state is State.DOWN
    assert result.weight == 0
    if expected.startswith("re:"):
        assert re.fullmatch(expected[3:], result.reason), result.reason
    elif expected.endswith("..."):
        assert result.reason.startswith(expected[:-3]), result.reason
    else:
        assert result.reason == expected
    assert_by_deadline(elapsed, deadline, name)
    assert_by_deadline(result.latency, deadline, name)


def test_endless_body_is_read_only_up_to_maxbody() -> None:
    # a found marker ends the read too: the check does not wait for the end of an endless body
    result, elapsed = against(endless_body, request="/", receive="la la", negotiatetimeout="2")
    assert result.state is State.UP, result.reason
    assert elapsed < 1.0
    result, elapsed = against(
        endless_body, request="/", receive="Still alive", maxbody="1m", negotiatetimeout="2"
    )
    assert result.state is State.DOWN
    assert result.reason.endswith("not found in the first 1024 KiB of the body")
    assert_by_deadline(elapsed, 2)


def test_tls_handshake_that_never_completes() -> None:
    result, elapsed = against(stall, "https", **SEED, negotiatetimeout="1")
    assert result.reason == "timed out after 1 s in the TLS handshake"
    assert_at_deadline(elapsed, 1)


def test_garbage_on_a_tls_port() -> None:
    result, elapsed = against(garbage_at_once, "https", **SEED, negotiatetimeout="1")
    assert result.state is State.DOWN
    assert result.reason.startswith("TLS error in the TLS handshake"), result.reason
    assert_by_deadline(elapsed, 1)


async def garbage_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nplain text on a TLS port\n")
    await writer.drain()
    await asyncio.sleep(3600)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_across_many_hostile_runs() -> None:
    handlers = (stall, reset_at_once, close_at_once, garbage, endless_body, endless_headers, body_cut_short)

    def rounds() -> None:
        for handler in handlers:
            with serve(handler) as port:
                spec = CheckSpec("http", Target("127.0.0.1", port), {**SEED, "negotiatetimeout": "0.3"})
                results = lvscheck.run_checks([spec] * 40, per_host=40)
                assert all(r.state is State.DOWN for r in results), {r.reason for r in results}
        with serve(stall) as port:
            spec = CheckSpec("https", Target("127.0.0.1", port), {**SEED, "negotiatetimeout": "0.3"})
            lvscheck.run_checks([spec] * 20, per_host=20)

    rounds()  # warm-up: imports, the TLS context, anything opened lazily once
    before = _open_fds()
    rounds()
    rounds()
    assert _open_fds() == before


# -- unusual but valid replies (no nginx location produces these on demand) -------------------------


async def early_hints_then_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
    writer.write(OK_HEADERS + b"Transfer-Encoding: chunked\r\nX-LVS-Weight: 3\r\n\r\n")
    for part in (b"Still ", b"al", b"ive weight=4\n"):
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(3600)  # keeps the connection open: the end of the chunked body ends the read


async def http10_until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 200\r\n\r\nStill alive\n")  # no reason phrase, no length: body until close
    await writer.drain()
    writer.close()


def test_interim_response_and_chunked_body() -> None:
    result, elapsed = against(
        early_hints_then_chunked,
        request="/",
        receive=r"Still alive weight=(?P<w>\d)",
        weightfrom="group:w",
        negotiatetimeout="2",
    )
    assert result.state is State.UP, result.reason
    assert result.reason.endswith("found, weight 1 from group w (asked 4, clamped to 0..1)")
    assert elapsed < 1.0
    result, _ = against(early_hints_then_chunked, request="/", weightfrom="header:X-LVS-Weight")
    assert result.weight == 1  # asked 3, clamped to the configured 1


def test_http10_body_until_close() -> None:
    result, _ = against(http10_until_close, **SEED)
    assert result.state is State.UP, result.reason
    assert result.reason == "HTTP 200, 'Still alive' found"


async def rude_redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    location = b"/" + b"x" * 5000
    writer.write(b"HTTP/1.1 302 Go \x1b[31maway\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


def test_server_text_in_the_reason_is_cut_and_cleaned() -> None:
    result, _ = against(rude_redirect, **SEED)
    assert result.state is State.DOWN
    assert "\x1b" not in result.reason
    assert result.reason.startswith("HTTP 302 Go ?[31maway (redirect to /xxx")
    assert len(result.reason) < 400
