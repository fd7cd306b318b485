"""The dns check against a real unbound (UDP and TCP), and against hostile servers.

Hostile servers are hand-written (a UDP port that never answers, garbage,
a reply to another query id, a truncated message; TCP: stall, endless stream).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import Server, free_port
from tests.peers.hostile import open_fds, serve, udp_server
from tests.peers.unbound import BIG_TXT_STRINGS, start_unbound
from tests.runcheck import Checks
from tests.timing import assert_at_deadline

import lvscheck
from lvscheck import CheckSpec, State, Target
from lvscheck.errors import OptionError

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def unbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_unbound(tmp_path_factory.mktemp("unbound")) as server:
        yield server


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_record_up(unbound: Server, protocol: str, check: Checks) -> None:
    r = check("dns", unbound.port, request="www.example.test A", receive=r"^127\.0\.0\.9$", protocol=protocol)
    assert r.state is State.UP, r.reason
    assert "127.0.0.9" in r.reason
    assert protocol.upper() in r.reason
    assert r.details["rcode"] == "NOERROR"


def test_default_type_is_a_and_txt_receive(unbound: Server, check: Checks) -> None:
    assert check("dns", unbound.port, request="www.example.test").state is State.UP
    r = check("dns", unbound.port, request="www.example.test TXT", receive="hello lvscheck")
    assert r.state is State.UP, r.reason


def test_ip_request_asks_ptr_as_ldirectord(unbound: Server, check: Checks) -> None:
    r = check("dns", unbound.port, request="127.0.0.9", receive="www.example.test")
    assert r.state is State.UP, r.reason
    assert "PTR" in r.reason


def test_receive_not_found_is_down(unbound: Server, check: Checks) -> None:
    r = check("dns", unbound.port, request="www.example.test A", receive="10.1.2.3")
    assert r.state is State.DOWN
    assert "'10.1.2.3' not found" in r.reason
    assert "127.0.0.9" in r.reason


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_nxdomain_is_down_with_rcode(unbound: Server, protocol: str, check: Checks) -> None:
    r = check("dns", unbound.port, request="nope.example.test A", protocol=protocol)
    assert r.state is State.DOWN
    assert r.reason.startswith("NXDOMAIN for nope.example.test.")
    assert r.details["rcode"] == "NXDOMAIN"


def test_no_answer_is_down(unbound: Server, check: Checks) -> None:
    r = check("dns", unbound.port, request="www.example.test AAAA")
    assert r.state is State.DOWN
    assert "NOERROR but no answer records" in r.reason


def test_truncated_udp_answer_is_asked_again_over_tcp(unbound: Server, check: Checks) -> None:
    r = check("dns", unbound.port, request="big.example.test TXT", receive=f"{BIG_TXT_STRINGS - 1:03d}x")
    assert r.state is State.UP, r.reason
    assert "asked again over TCP" in r.reason


def test_bad_options() -> None:
    for options in (
        {"request": ""},
        {"request": "a b c"},
        {"request": "www.example.test NOSUCHTYPE"},
        {"protocol": "sctp"},
    ):
        with pytest.raises(OptionError):
            lvscheck.run_checks([CheckSpec("dns", Target("127.0.0.1", 53), {"request": "x", **options})])


def test_udp_port_unreachable_is_down_promptly(check: Checks) -> None:
    port = free_port(socket.SOCK_DGRAM)
    r = check("dns", port, request="www.example.test", checktimeout="3")
    assert r.state is State.DOWN
    assert "ICMP port unreachable" in r.reason
    assert r.latency < 0.5


def test_tcp_refused_is_down(check: Checks) -> None:
    r = check("dns", free_port(), request="www.example.test", protocol="tcp")
    assert r.state is State.DOWN
    assert r.reason == "connection refused"


def test_udp_silence_is_down_at_the_deadline_after_retransmits(check: Checks) -> None:
    seen: list[bytes] = []

    def silent(data: bytes) -> list[bytes]:
        seen.append(data)
        return []

    with udp_server(silent) as port:
        t0 = time.monotonic()
        r = check("dns", port, request="www.example.test", negotiatetimeout="2.5")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 2.5 s waiting for the answer to www.example.test. A over UDP")
    assert_at_deadline(time.monotonic() - t0, 2.5)
    assert len(seen) == 3
    assert len(set(seen)) == 1


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda q: [b"\x00\x01garbage"], "garbled DNS reply"),
        (lambda q: [q[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:] + b"\xc0"], "garbled"),
        (lambda q: [bytes([q[0] ^ 0xFF]) + q[1:2] + b"\x81\x80" + q[4:]], "does not answer the query"),
    ],
    ids=["garbage", "cut-short", "wrong-id"],
)
def test_garbage_or_truncated_udp_reply_is_down(reply: object, reason: str, check: Checks) -> None:
    with udp_server(reply) as port:  # type: ignore[arg-type]
        r = check("dns", port, request="www.example.test")
    assert r.state is State.DOWN
    assert reason in r.reason


def test_tcp_stall_endless_and_cut_short_are_down(check: Checks) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(struct.pack("!H", 65535))
        while True:
            writer.write(b"\xff" * 65536)
            await writer.drain()

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(struct.pack("!H", 200) + b"\x00" * 20)
        await writer.drain()

    before = open_fds()
    with serve(stall) as port:
        r = check("dns", port, request="www.example.test", protocol="tcp", negotiatetimeout="1")
        assert r.state is State.DOWN
        assert r.reason.startswith("timed out after 1 s waiting for the answer")
    with serve(endless) as port:
        r = check("dns", port, request="www.example.test", protocol="tcp", negotiatetimeout="3")
        assert r.state is State.DOWN
        assert "garbled DNS reply" in r.reason, r.reason
        assert r.latency < 1
    with serve(cut) as port:
        r = check("dns", port, request="www.example.test", protocol="tcp")
        assert r.state is State.DOWN
        assert "connection closed by the server" in r.reason
    assert open_fds() <= before


def test_no_socket_leak_against_unbound(unbound: Server, tmp_path: Path) -> None:
    before = open_fds()
    specs = [
        CheckSpec("dns", Target("127.0.0.1", unbound.port), {"request": "www.example.test", "protocol": p})
        for p in ("udp", "tcp")
        for _ in range(20)
    ]
    results = lvscheck.run_checks(specs)
    assert all(r.state is State.UP for r in results)
    assert open_fds() <= before


def test_cli(unbound: Server) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvscheck",
            "run",
            "dns",
            f"127.0.0.1:{unbound.port}",
            "request=www.example.test",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "127.0.0.9" in out.stdout
