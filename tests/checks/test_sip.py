"""The sip check against real SIPp (Debian sip-tester) over UDP and TCP, and hostile servers.

SIPp is the UAS: its built-in ``uas`` scenario with ``-aa`` answers OPTIONS
with 200 OK; an XML scenario answers 486 Busy Here (for ``status=``).  The
hostile servers are hand-written: silence, garbage, a response to another
Call-ID, a provisional response only, an endless header over TCP.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import Server, free_port
from tests.peers.hostile import open_fds, serve, udp_server
from tests.peers.sipp import start_sipp
from tests.runcheck import Checks
from tests.timing import assert_by_deadline

import lvscheck
from lvscheck import CheckSpec, State, Target
from lvscheck.errors import OptionError

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def sipp_udp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_sipp(tmp_path_factory.mktemp("sipp-udp"), "udp") as server:
        yield server


@pytest.fixture(scope="module")
def sipp_tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_sipp(tmp_path_factory.mktemp("sipp-tcp"), "tcp") as server:
        yield server


@pytest.fixture(scope="module")
def sipp_busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_sipp(tmp_path_factory.mktemp("sipp-486"), "udp", status_line="486 Busy Here") as server:
        yield server


def test_options_over_udp(sipp_udp: Server, check: Checks) -> None:
    r = check("sip", sipp_udp.port)
    assert r.state is State.UP, r.reason
    assert r.reason == "SIP/2.0 200 OK to OPTIONS over UDP"
    assert r.details["status"] == 200


def test_options_over_tcp(sipp_tcp: Server, check: Checks) -> None:
    r = check("sip", sipp_tcp.port, protocol="tcp", status="200")
    assert r.state is State.UP, r.reason
    assert r.reason == "SIP/2.0 200 OK to OPTIONS over TCP"


def test_any_final_status_is_alive_by_default(sipp_busy: Server, check: Checks) -> None:
    r = check("sip", sipp_busy.port)
    assert r.state is State.UP, r.reason
    assert "486 Busy Here" in r.reason


def test_status_200_demands_200(sipp_busy: Server, check: Checks) -> None:
    r = check("sip", sipp_busy.port, status="200")
    assert r.state is State.DOWN
    assert r.reason == "SIP/2.0 486 Busy Here to OPTIONS over UDP; accepted: 200"


def test_request_as_sipp_received_it(tmp_path: Path, check: Checks) -> None:
    """SIPp's own message trace shows our OPTIONS, parsed and answered (UDP)."""
    trace = tmp_path / "messages.log"
    with start_sipp(tmp_path, "udp", extra=["-trace_msg", "-message_file", str(trace)]) as server:
        r = check("sip", server.port, login="alice")
        assert r.state is State.UP, r.reason
    text = trace.read_text(errors="replace")
    m = re.search(r"OPTIONS sip:alice@127\.0\.0\.1:\d+ SIP/2\.0\r?\n(.*?)\r?\n\r?\n", text, re.S)
    assert m is not None, text[-2000:]
    headers = m[1]
    for needed in ("Via: SIP/2.0/UDP 127.0.0.1:", ";branch=z9hG4bK", "CSeq: 1 OPTIONS", "Max-Forwards: 70"):
        assert needed in headers
    assert "SIP/2.0 200 OK" in text


def test_bad_options(check: Checks) -> None:
    for options in ({"protocol": "sctp"}, {"status": "1xx"}, {"status": "299-200"}, {"login": "a b"}):
        with pytest.raises(OptionError):
            check("sip", 5060, **options)


def test_udp_port_unreachable_is_down_promptly(check: Checks) -> None:
    r = check("sip", free_port(socket.SOCK_DGRAM), negotiatetimeout="3")
    assert r.state is State.DOWN
    assert "ICMP port unreachable" in r.reason
    assert r.latency < 0.5


def test_tcp_refused(check: Checks) -> None:
    r = check("sip", free_port(), protocol="tcp")
    assert r.state is State.DOWN
    assert r.reason == "connection refused"


def _answer(status: str, *, call_id: str | None = None, cseq: str = "1 OPTIONS") -> bytes:
    return (
        f"SIP/2.0 {status}\r\nVia: SIP/2.0/UDP x\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _call_id(request: bytes) -> str:
    m = re.search(rb"Call-ID: (\S+)", request)
    assert m is not None
    return m[1].decode()


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (lambda q: [b"\x00garbage\r\n\r\n"], "not a SIP response"),
        (lambda q: [b"HTTP/1.1 200 OK\r\n\r\n"], "not a SIP response"),
        (lambda q: [_answer("200 OK", call_id="someone-else")], "does not answer our OPTIONS"),
        (lambda q: [_answer("200 OK", call_id=_call_id(q), cseq="1 INVITE")], "does not answer our OPTIONS"),
        (lambda q: [q], "not a SIP response"),  # an echo of our request
        (lambda q: [b"SIP/2.0 200"], "not a SIP response"),  # cut short
    ],
    ids=["garbage", "http", "other-call", "other-cseq", "echo", "cut-short"],
)
def test_garbage_or_wrong_udp_reply_is_down(server: object, reason: str, check: Checks) -> None:
    with udp_server(server) as port:  # type: ignore[arg-type]
        r = check("sip", port)
    assert r.state is State.DOWN
    assert reason in r.reason


def test_provisional_only_waits_for_a_final_response(check: Checks) -> None:
    with udp_server(lambda q: [_answer("100 Trying", call_id=_call_id(q))]) as port:
        r = check("sip", port, negotiatetimeout="1")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1 s waiting for a final SIP response after 100 Trying")
    with udp_server(
        lambda q: [_answer("100 Trying", call_id=_call_id(q)), _answer("200 OK", call_id=_call_id(q))]
    ) as port:
        r = check("sip", port)
    assert r.state is State.UP, r.reason


def test_udp_silence_is_down_at_the_deadline(check: Checks) -> None:
    seen: list[bytes] = []
    with udp_server(lambda q: seen.append(q) or []) as port:
        t0 = time.monotonic()
        r = check("sip", port, negotiatetimeout="1.5")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1.5 s waiting for the SIP response over UDP")
    assert_by_deadline(time.monotonic() - t0, 1.5)
    assert len(seen) == 2


def test_tcp_stall_endless_and_garbage(check: Checks) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(2000)
        writer.write(b"SIP/2.0 200 OK\r\nX-Filler: ")
        while True:
            writer.write(b"x" * 65536)
            await writer.drain()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(2000)
        writer.write(b"\x16\x03\x01 not sip at all\r\n\r\n")
        await writer.drain()

    before = open_fds()
    with serve(stall) as port:
        r = check("sip", port, protocol="tcp", negotiatetimeout="1")
        assert r.state is State.DOWN
        assert r.reason.startswith("timed out after 1 s waiting for the SIP response over TCP")
    with serve(endless) as port:
        r = check("sip", port, protocol="tcp", negotiatetimeout="3")
        assert r.state is State.DOWN
        assert "SIP response head longer than" in r.reason
        assert r.latency < 1
    with serve(garbage) as port:
        r = check("sip", port, protocol="tcp")
        assert r.state is State.DOWN
        assert "not a SIP response" in r.reason
    assert open_fds() <= before


def test_no_socket_leak(sipp_udp: Server, sipp_tcp: Server) -> None:
    before = open_fds()
    specs = [CheckSpec("sip", Target("127.0.0.1", sipp_udp.port), {}) for _ in range(10)]
    specs += [CheckSpec("sip", Target("127.0.0.1", sipp_tcp.port), {"protocol": "tcp"}) for _ in range(10)]
    results = lvscheck.run_checks(specs)
    assert all(r.state is State.UP for r in results), [r.reason for r in results]
    assert open_fds() <= before
