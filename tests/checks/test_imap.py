"""The imap and imaps checks against a real Debian dovecot (tests/peers/dovecot.py) and hostile servers.

dovecot serves IMAP (with STARTTLS) and IMAPS with a certificate from a test CA,
and one passwd-file user.  Hostile behaviour comes from hand-written servers
(tests/peers/hostile.py): dovecot does not misbehave on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.dovecot import PASSWORD, USER, Dovecot, start_dovecot
from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, serve, stall
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

from lvscheck import OptionError, State

pytestmark = pytest.mark.peer

GREETING = b"* OK [CAPABILITY IMAP4rev1] test ready\r\n"


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    with start_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


def creds(**extra: str) -> dict[str, str]:
    return {"login": USER, "passwd": PASSWORD, **extra}


# -- the real server --------------------------------------------------------------------------------


def test_greeting_and_logout(dovecot: Dovecot, check: Checks) -> None:
    r = check("imap", dovecot.imap_port)
    assert r.state is State.UP
    assert r.reason == "greeting OK"
    assert r.latency < 1


def test_login(dovecot: Dovecot, check: Checks) -> None:
    r = check("imap", dovecot.imap_port, **creds())
    assert r.state is State.UP
    assert r.reason == f"greeting OK, logged in as {USER}"


def test_wrong_password(dovecot: Dovecot, check: Checks) -> None:
    r = check("imap", dovecot.imap_port, login=USER, passwd="wrong-imap-pw")
    assert r.state is State.DOWN
    assert r.reason == "login failed: NO [AUTHENTICATIONFAILED] Authentication failed."
    assert "wrong-imap-pw" not in r.reason


def test_starttls_then_login(dovecot: Dovecot, check: Checks) -> None:
    r = check("imap", dovecot.imap_port, starttls="yes", cafile=str(dovecot.cafile), **creds())
    assert r.state is State.UP
    assert r.reason.startswith("greeting OK, STARTTLS (TLSv1.")
    assert r.reason.endswith(f"logged in as {USER}")


def test_imaps_verified(dovecot: Dovecot, check: Checks) -> None:
    r = check("imaps", dovecot.imaps_port, cafile=str(dovecot.cafile), **creds())
    assert r.state is State.UP
    assert r.reason == f"greeting OK, logged in as {USER}"


def test_imaps_verifies_by_default(dovecot: Dovecot, check: Checks) -> None:
    r = check("imaps", dovecot.imaps_port)
    assert r.state is State.DOWN
    assert r.reason == "TLS certificate not accepted: unable to get local issuer certificate"
    r = check("imaps", dovecot.imaps_port, cafile=str(dovecot.other_ca))
    assert r.state is State.DOWN
    r = check("imaps", dovecot.imaps_port, cafile=str(dovecot.cafile), servername="other.example.test")
    assert "Hostname mismatch" in r.reason
    assert check("imaps", dovecot.imaps_port, tlsverify="no").state is State.UP
    assert check(
        "imaps", dovecot.imaps_port, cafile=str(dovecot.cafile), servername="mail.example.test"
    ).state is (State.UP)


def test_imaps_wrong_password(dovecot: Dovecot, check: Checks) -> None:
    r = check("imaps", dovecot.imaps_port, cafile=str(dovecot.cafile), login=USER, passwd="nope")
    assert r.state is State.DOWN
    assert r.reason.startswith("login failed: NO [AUTHENTICATIONFAILED]")


def test_imaps_against_the_plain_port_is_a_tls_error(dovecot: Dovecot, check: Checks) -> None:
    r = check("imaps", dovecot.imap_port, cafile=str(dovecot.cafile), negotiatetimeout="2")
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS error in the TLS handshake")


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="login= needs a password"):
        check("imap", 143, login="x")
    with pytest.raises(OptionError, match="speaks TLS from the start"):
        check("imaps", 993, starttls="yes")
    with pytest.raises(OptionError, match="printable ASCII"):
        check("imap", 143, login="us\u00e9r", passwd="x")


# -- refused, stalled, hostile -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["imap", "imaps"])
def test_refused(kind: str, check: Checks) -> None:
    assert check(kind, free_port()).reason == "connection refused"


def test_stalled_real_server(dovecot: Dovecot, check: Checks) -> None:
    with paused(dovecot.server.pid):
        r, took = check.timed("imap", dovecot.imap_port, negotiatetimeout="1")
        rs, took_s = check.timed(
            "imaps", dovecot.imaps_port, negotiatetimeout="1", cafile=str(dovecot.cafile)
        )
    assert r.reason == "timed out after 1 s waiting for the greeting"
    assert rs.reason == "timed out after 1 s in the TLS handshake"
    assert_at_deadline(took, 1)
    assert_at_deadline(took_s, 1)


HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    ("stall", stall, {}, "timed out after 1 s waiting for the greeting"),
    ("garbage", script(b"220 smtp.example ESMTP\r\n"), {}, "not an IMAP greeting: '220 smtp.example ESMTP'"),
    (
        "bye",
        script(b"* BYE too many connections\r\n"),
        {},
        "IMAP server refused the connection: * BYE too many connections",
    ),
    (
        "truncated",
        script(b"* OK ready", then="close"),
        {},
        "connection closed by the server in the middle of a line waiting for the greeting: '* OK ready'",
    ),
    (
        "endless-line",
        endless_line(b"* OK "),
        {},
        "reply line longer than 8192 bytes waiting for the greeting",
    ),
    (
        "endless-untagged",
        endless_lines(b"* 1 EXISTS\r\n", first=GREETING),
        {},
        "more than 256 untagged lines waiting for the reply to LOGOUT",
    ),
    ("garbage-tagged", script(GREETING, b"a3 MAYBE\r\n"), {}, "not an IMAP reply to LOGOUT: 'a3 MAYBE'"),
    ("not-imap-reply", script(GREETING, b"+ go on\r\n"), {}, "not an IMAP reply to LOGOUT: '+ go on'"),
    (
        "huge-literal",
        script(GREETING, b"* 1 FETCH (BODY[] {99999999}\r\n"),
        {},
        "IMAP literal of 99999999 bytes in the reply to LOGOUT: too large",
    ),
    (
        "login-no",
        script(GREETING, b"a2 NO [AUTHENTICATIONFAILED] no\r\n"),
        {"login": "u", "passwd": "p"},
        "login failed: NO [AUTHENTICATIONFAILED] no",
    ),
    (
        "logout-bad",
        script(GREETING, b"* BYE\r\na3 BAD what\r\n"),
        {},
        "unexpected reply to LOGOUT: BAD what",
    ),
    (
        "starttls-no",
        script(GREETING, b"a1 NO not now\r\n"),
        {"starttls": "yes"},
        "STARTTLS refused: NO not now",
    ),
    (
        "starttls-stall",
        script(GREETING, b"a1 OK begin\r\n"),
        {"starttls": "yes"},
        "timed out after 1 s in the TLS handshake",
    ),
    (
        "imaps-plaintext",
        script(GREETING),
        {"kind": "imaps"},
        "TLS error in the TLS handshake: WRONG_VERSION_NUMBER",
    ),
    ("imaps-stall", stall, {"kind": "imaps"}, "timed out after 1 s in the TLS handshake"),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    options = dict(options)
    kind = options.pop("kind", "imap")
    with serve(handler) as port:
        r, took = check.timed(kind, port, negotiatetimeout="1", **options)
    assert r.state is State.DOWN
    assert r.reason == reason
    assert_by_deadline(took, 1)


def test_no_socket_leak(dovecot: Dovecot, check: Checks) -> None:
    check("imap", dovecot.imap_port)
    before = open_fds()
    for _ in range(2):
        check("imap", dovecot.imap_port, starttls="yes", cafile=str(dovecot.cafile), **creds())
        check("imaps", dovecot.imaps_port, cafile=str(dovecot.cafile), **creds())
        check("imaps", dovecot.imaps_port)
        check("imap", free_port())
        for _, handler, options, _ in HOSTILE[1:]:
            opts = dict(options)
            kind = opts.pop("kind", "imap")
            with serve(handler) as port:
                check(kind, port, negotiatetimeout="0.3", **opts)
    assert open_fds() <= before
