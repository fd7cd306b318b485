"""The pop and pops checks against a real Debian dovecot (tests/peers/dovecot.py) and hostile servers.

dovecot serves POP3 (with STLS) and POP3S with a certificate from a test CA, and
one passwd-file user.  Hostile behaviour comes from hand-written servers
(tests/peers/hostile.py): dovecot does not misbehave on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.dovecot import PASSWORD, USER, Dovecot, start_dovecot
from tests.peers.hostile import endless_line, open_fds, paused, script, serve, stall
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

from lvscheck import OptionError, State

pytestmark = pytest.mark.peer

GREETING = b"+OK test POP3 ready\r\n"


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    with start_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


def creds(**extra: str) -> dict[str, str]:
    return {"login": USER, "passwd": PASSWORD, **extra}


# -- the real server --------------------------------------------------------------------------------


def test_greeting_and_quit(dovecot: Dovecot, check: Checks) -> None:
    r = check("pop", dovecot.pop_port)
    assert r.state is State.UP
    assert r.reason == "greeting +OK"


def test_login(dovecot: Dovecot, check: Checks) -> None:
    r = check("pop", dovecot.pop_port, **creds())
    assert r.state is State.UP
    assert r.reason == f"greeting +OK, logged in as {USER}"


def test_wrong_password(dovecot: Dovecot, check: Checks) -> None:
    r = check("pop", dovecot.pop_port, login=USER, passwd="wrong-pop-pw")
    assert r.state is State.DOWN
    assert r.reason == "login failed: -ERR [AUTH] Authentication failed."
    assert "wrong-pop-pw" not in r.reason


def test_stls_then_login(dovecot: Dovecot, check: Checks) -> None:
    r = check("pop", dovecot.pop_port, starttls="yes", cafile=str(dovecot.cafile), **creds())
    assert r.state is State.UP
    assert r.reason.startswith("greeting +OK, STLS (TLSv1.")
    assert r.reason.endswith(f"logged in as {USER}")


def test_stls_with_an_unknown_ca_is_down(dovecot: Dovecot, check: Checks) -> None:
    r = check("pop", dovecot.pop_port, starttls="yes", cafile=str(dovecot.other_ca))
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted")


def test_pops_verified(dovecot: Dovecot, check: Checks) -> None:
    r = check("pops", dovecot.pops_port, cafile=str(dovecot.cafile), **creds())
    assert r.state is State.UP
    assert r.reason == f"greeting +OK, logged in as {USER}"


def test_pops_verifies_by_default(dovecot: Dovecot, check: Checks) -> None:
    r = check("pops", dovecot.pops_port)
    assert r.reason == "TLS certificate not accepted: unable to get local issuer certificate"
    r = check("pops", dovecot.pops_port, cafile=str(dovecot.cafile), servername="nope.example.test")
    assert "Hostname mismatch" in r.reason
    assert check("pops", dovecot.pops_port, tlsverify="no").state is State.UP


def test_pops_wrong_password(dovecot: Dovecot, check: Checks) -> None:
    r = check("pops", dovecot.pops_port, cafile=str(dovecot.cafile), login=USER, passwd="nope")
    assert r.reason == "login failed: -ERR [AUTH] Authentication failed."


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="login= needs a password"):
        check("pop", 110, passwd="x")
    with pytest.raises(OptionError, match="speaks TLS from the start"):
        check("pops", 995, starttls="yes")


# -- refused, stalled, hostile -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pop", "pops"])
def test_refused(kind: str, check: Checks) -> None:
    assert check(kind, free_port()).reason == "connection refused"


def test_stalled_real_server(dovecot: Dovecot, check: Checks) -> None:
    with paused(dovecot.server.pid):
        r, took = check.timed("pop", dovecot.pop_port, negotiatetimeout="1")
        rs, took_s = check.timed("pops", dovecot.pops_port, negotiatetimeout="1", cafile=str(dovecot.cafile))
    assert r.reason == "timed out after 1 s waiting for the greeting"
    assert rs.reason == "timed out after 1 s in the TLS handshake"
    assert_at_deadline(took, 1)
    assert_at_deadline(took_s, 1)


HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    ("stall", stall, {}, "timed out after 1 s waiting for the greeting"),
    ("garbage", script(b"* OK IMAP here\r\n"), {}, "not a POP3 greeting: '* OK IMAP here'"),
    ("err", script(b"-ERR busy\r\n"), {}, "POP3 server refused the connection: -ERR busy"),
    (
        "truncated",
        script(b"+OK rea", then="close"),
        {},
        "connection closed by the server in the middle of a line waiting for the greeting: '+OK rea'",
    ),
    (
        "closed",
        script(GREETING, then="close"),
        {},
        "connection closed by the server waiting for the reply to QUIT",
    ),
    ("endless-line", endless_line(b"+OK "), {}, "reply line longer than 8192 bytes waiting for the greeting"),
    (
        "endless-reply",
        endless_line(b"+OK ", after=[GREETING]),
        {},
        "reply line longer than 8192 bytes waiting for the reply to QUIT",
    ),
    ("garbage-quit", script(GREETING, b"\x00\x01\r\n"), {}, "not a POP3 reply to QUIT: '\\x00\\x01'"),
    (
        "user-err",
        script(GREETING, b"-ERR no such user\r\n"),
        {"login": "u", "passwd": "p"},
        "login failed: -ERR no such user",
    ),
    (
        "pass-err",
        script(GREETING, b"+OK\r\n", b"-ERR [AUTH] bad\r\n"),
        {"login": "u", "passwd": "p"},
        "login failed: -ERR [AUTH] bad",
    ),
    ("stls-err", script(GREETING, b"-ERR no TLS\r\n"), {"starttls": "yes"}, "STLS refused: -ERR no TLS"),
    (
        "stls-stall",
        script(GREETING, b"+OK begin\r\n"),
        {"starttls": "yes"},
        "timed out after 1 s in the TLS handshake",
    ),
    (
        "pops-plaintext",
        script(GREETING),
        {"kind": "pops"},
        "TLS error in the TLS handshake: WRONG_VERSION_NUMBER",
    ),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    options = dict(options)
    kind = options.pop("kind", "pop")
    with serve(handler) as port:
        r, took = check.timed(kind, port, negotiatetimeout="1", **options)
    assert r.state is State.DOWN
    assert r.reason == reason
    assert_by_deadline(took, 1)


def test_no_socket_leak(dovecot: Dovecot, check: Checks) -> None:
    check("pop", dovecot.pop_port)
    before = open_fds()
    for _ in range(2):
        check("pop", dovecot.pop_port, starttls="yes", cafile=str(dovecot.cafile), **creds())
        check("pops", dovecot.pops_port, cafile=str(dovecot.cafile), **creds())
        check("pops", dovecot.pops_port)
        check("pop", free_port())
        for _, handler, options, _ in HOSTILE[1:]:
            opts = dict(options)
            kind = opts.pop("kind", "pop")
            with serve(handler) as port:
                check(kind, port, negotiatetimeout="0.3", **opts)
    assert open_fds() <= before
