"""The simpletcp check against real line servers and hostile ones.

Real peers: ``socat`` as an echo server (tests/peers/socat.py) and Debian
dovecot's POP3 port (tests/peers/dovecot.py), which answers a pipelined
``CAPA``/``QUIT`` sent with literal ``\\n`` the way ldirectord's config writes it.
simpletcp has no credentials, so there is no wrong-credentials case.  Hostile
behaviour comes from hand-written servers (tests/peers/hostile.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import Server, free_port
from tests.peers.dovecot import Dovecot, start_dovecot
from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, serve, stall
from tests.peers.socat import start_socat_echo
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

import lvscheck
from lvscheck import CheckSpec, OptionError, State, Target

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_socat_echo(tmp_path_factory.mktemp("socat")) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    with start_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


def test_echo_with_literal_newlines(echo: Server, check: Checks) -> None:
    r = check("simpletcp", echo.port, request="HELLO lvscheck\\nSECOND line\\n", receive="^SECOND")
    assert r.state is State.UP
    assert r.reason == "'^SECOND' found: 'SECOND line'"


def test_last_line_without_newline_is_searched(echo: Server, check: Checks) -> None:
    r = check("simpletcp", echo.port, request="one\\ntwo\\nthree", receive="^three$")
    assert r.state is State.UP


def test_lines_are_searched_one_at_a_time(echo: Server, check: Checks) -> None:
    # as ldirectord: a pattern spanning two lines never matches
    r = check("simpletcp", echo.port, request="one\\ntwo\\n", receive="one\\ntwo")
    assert r.state is State.DOWN
    assert r.reason == "'one\\\\ntwo' not found in the reply (8 bytes)"


def test_not_found_before_eof(echo: Server, check: Checks) -> None:
    r = check("simpletcp", echo.port, request="abc\\n", receive="xyz")
    assert r.state is State.DOWN
    assert r.reason == "'xyz' not found in the reply (4 bytes)"


def test_pipelined_pop3_dialogue(dovecot: Dovecot, check: Checks) -> None:
    r = check("simpletcp", dovecot.pop_port, request="CAPA\\nQUIT\\n", receive="^SASL ")
    assert r.state is State.UP
    assert r.reason.startswith("'^SASL ' found: 'SASL PLAIN LOGIN")
    r = check("simpletcp", dovecot.pop_port, receive="^\\+OK .*ready")  # no request: the banner alone
    assert r.state is State.UP


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="needs receive="):
        check("simpletcp", 7, request="x")
    with pytest.raises(OptionError, match="has no default port"):
        lvscheck.run_checks([CheckSpec("simpletcp", Target("127.0.0.1"), {"receive": "x"})])


def test_refused(check: Checks) -> None:
    assert check("simpletcp", free_port(), receive="x").reason == "connection refused"


def test_stalled_real_server(echo: Server, check: Checks) -> None:
    with paused(echo.pid):
        r, took = check.timed("simpletcp", echo.port, request="ping\\n", receive="ping", negotiatetimeout="1")
    assert r.reason == "timed out after 1 s waiting for the reply"
    assert_at_deadline(took, 1)


async def flood_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(b"nothing to see here\r\n" * 256)
        await writer.drain()


HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    ("stall", stall, {}, "timed out after 1 s waiting for the reply"),
    ("close-silent", script(None, None, then="close"), {}, "connection closed by the server without a reply"),
    ("garbage", script(None, b"\x00\xff\xfe\r\n", then="close"), {}, "'OK' not found in the reply (5 bytes)"),
    ("truncated", script(None, b"almost O", then="close"), {}, "'OK' not found in the reply (8 bytes)"),
    ("endless-line", endless_line(b""), {}, "'OK' not found in the first 64 KiB of the reply"),
    ("endless-lines", endless_lines(b"no match\r\n"), {}, "'OK' not found in the first 64 KiB of the reply"),
    ("flood-small-max", flood_lines, {"maxreply": "4k"}, "'OK' not found in the first 4 KiB of the reply"),
    ("match-then-stall", script(None, b"junk\r\nall OK\r\n"), {}, ""),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    with serve(handler) as port:
        r, took = check.timed(
            "simpletcp", port, request="status\\n", receive="OK", negotiatetimeout="1", **options
        )
    if reason:
        assert r.state is State.DOWN
        assert r.reason == reason
    else:
        assert r.state is State.UP  # the first matching line decides; the stall after it does not matter
        assert r.reason == "'OK' found: 'all OK'"
    assert_by_deadline(took, 1)


def test_no_socket_leak(echo: Server, check: Checks) -> None:
    check("simpletcp", echo.port, request="x\\n", receive="x")
    before = open_fds()
    for _ in range(3):
        check("simpletcp", echo.port, request="x\\n", receive="x")
        check("simpletcp", echo.port, request="x\\n", receive="y")
        check("simpletcp", free_port(), receive="x")
        for _, handler, options, _ in HOSTILE:
            with serve(handler) as port:
                check("simpletcp", port, request="s\\n", receive="OK", negotiatetimeout="0.3", **options)
    assert open_fds() <= before
