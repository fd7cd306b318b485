"""The nntp check against a real INN 2 reader server (tests/peers/inn.py) and hostile servers.

The real peer is Debian inn2's ``nnrpd`` running standalone (``-D -f``) on a
private news spool; ``innd`` (the feeder) is not needed for the greeting,
AUTHINFO and QUIT.  Hostile behaviour comes from hand-written servers
(tests/peers/hostile.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, serve, stall
from tests.peers.inn import PASSWORD, USER, Inn, start_inn
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

from lvscheck import OptionError, State

pytestmark = pytest.mark.peer

GREETING = b"200 news.example ready\r\n"


@pytest.fixture(scope="module")
def inn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inn]:
    with start_inn(tmp_path_factory.mktemp("inn")) as server:
        yield server


def test_greeting_and_quit(inn: Inn, check: Checks) -> None:
    r = check("nntp", inn.port)
    assert r.state is State.UP
    assert r.reason == "greeting 200 (posting)"


def test_authinfo_login(inn: Inn, check: Checks) -> None:
    r = check("nntp", inn.port, login=USER, passwd=PASSWORD)
    assert r.state is State.UP
    assert r.reason == f"greeting 200 (posting), logged in as {USER}"


def test_wrong_password(inn: Inn, check: Checks) -> None:
    r = check("nntp", inn.port, login=USER, passwd="wrong-news-pw")
    assert r.state is State.DOWN
    assert r.reason == "login failed: 481 Authentication failed"
    assert "wrong-news-pw" not in r.reason


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="login= needs a password"):
        check("nntp", 119, login="x")


def test_refused(check: Checks) -> None:
    assert check("nntp", free_port()).reason == "connection refused"


def test_stalled_real_server(inn: Inn, check: Checks) -> None:
    with paused(inn.server.pid):
        r, took = check.timed("nntp", inn.port, negotiatetimeout="1")
    assert r.reason == "timed out after 1 s waiting for the greeting"
    assert_at_deadline(took, 1)


HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    ("stall", stall, {}, "timed out after 1 s waiting for the greeting"),
    (
        "garbage",
        script(b"+OK POP3 here\r\n"),
        {},
        "not an NNTP reply waiting for the greeting: '+OK POP3 here'",
    ),
    (
        "400",
        script(b"400 Service temporarily unavailable\r\n"),
        {},
        "NNTP server refuses service: 400 Service temporarily unavailable",
    ),
    (
        "502",
        script(b"502 You have no permission to talk\r\n"),
        {},
        "NNTP server refuses service: 502 You have no permission to talk",
    ),
    ("220", script(b"220 not a greeting\r\n"), {}, "NNTP greeting is not 200 or 201: 220 not a greeting"),
    (
        "truncated",
        script(b"200 news", then="close"),
        {},
        "connection closed by the server in the middle of a line waiting for the greeting: '200 news'",
    ),
    ("endless-line", endless_line(b"200 "), {}, "reply line longer than 8192 bytes waiting for the greeting"),
    (
        "endless-reply",
        endless_lines(b"200-more\r\n"),
        {},
        "NNTP reply longer than 256 lines waiting for the greeting",
    ),
    ("bad-quit", script(GREETING, b"500 what\r\n"), {}, "unexpected reply to QUIT: 500 what"),
    ("quit-not-205", script(GREETING, b"281 odd\r\n"), {}, "unexpected reply to QUIT (expected 205)"),
    (
        "authinfo-502",
        script(GREETING, b"502 no auth here\r\n"),
        {"login": "u", "passwd": "p"},
        "login failed: 502 no auth here",
    ),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    with serve(handler) as port:
        r, took = check.timed("nntp", port, negotiatetimeout="1", **options)
    assert r.state is State.DOWN
    assert r.reason == reason
    assert_by_deadline(took, 1)


def test_no_socket_leak(inn: Inn, check: Checks) -> None:
    check("nntp", inn.port)
    before = open_fds()
    for _ in range(3):
        check("nntp", inn.port, login=USER, passwd=PASSWORD)
        check("nntp", inn.port, login=USER, passwd="bad")
        check("nntp", free_port())
        for _, handler, options, _ in HOSTILE[1:]:
            with serve(handler) as port:
                check("nntp", port, negotiatetimeout="0.3", **options)
    assert open_fds() <= before
