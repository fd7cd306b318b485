"""The radius check against a real FreeRADIUS 3 (Debian), and against hostile UDP servers.

FreeRADIUS runs from a private minimal config (tests/peers/freeradius.py).  The
hostile servers are hand-written: silence, garbage, a reply with a bad
Response Authenticator (the "another secret" case the real server cannot
produce, since it drops a request whose Message-Authenticator fails), a
reply cut short, a reply to another identifier.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.peers import Server, free_port
from tests.peers.freeradius import PASSWORD, REPLY_MESSAGE, SECRET, USER, start_freeradius
from tests.peers.hostile import open_fds, udp_server
from tests.runcheck import Checks
from tests.timing import assert_at_deadline

import lvscheck
from lvscheck import CheckSpec, State, Target
from lvscheck.checks.radius import ACCESS_ACCEPT, build_access_request, hide_password, parse_reply
from lvscheck.errors import CheckFailed, OptionError

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def radius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_freeradius(tmp_path_factory.mktemp("freeradius")) as server:
        yield server


def test_accept(radius: Server, check: Checks) -> None:
    r = check("radius", radius.port, login=USER, passwd=PASSWORD, secret=SECRET)
    assert r.state is State.UP, r.reason
    assert r.reason == f"Access-Accept for {USER!r} ({REPLY_MESSAGE!r})"
    assert r.details["code"] == "Access-Accept"


def test_accept_with_expect_accept(radius: Server, check: Checks) -> None:
    r = check("radius", radius.port, login=USER, passwd=PASSWORD, secret=SECRET, expect="accept")
    assert r.state is State.UP, r.reason


def test_wrong_password_is_rejected_but_alive(radius: Server, check: Checks) -> None:
    r = check("radius", radius.port, login=USER, passwd="wrong-password", secret=SECRET)
    assert r.state is State.UP, r.reason
    assert "Access-Reject" in r.reason
    assert "rejected" in r.reason
    assert "wrong-password" not in r.reason


def test_unknown_user_is_rejected_but_alive(radius: Server, check: Checks) -> None:
    r = check("radius", radius.port, login="nobody-here", passwd="x", secret=SECRET)
    assert r.state is State.UP
    assert "rejected" in r.reason


def test_wrong_password_with_expect_accept_is_down(radius: Server, check: Checks) -> None:
    r = check("radius", radius.port, login=USER, passwd="wrong-password", secret=SECRET, expect="accept")
    assert r.state is State.DOWN
    assert "Access-Reject" in r.reason
    assert "expect=accept" in r.reason


def test_wrong_secret_is_down(radius: Server, check: Checks) -> None:
    # FreeRADIUS drops a request whose Message-Authenticator does not verify:
    # silence, so down at the deadline, and the reason hints at the secret.
    r = check("radius", radius.port, login=USER, passwd=PASSWORD, secret="not-the-secret", checktimeout="1")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1 s waiting for the RADIUS reply")
    assert "wrong secret" in r.reason
    assert "not-the-secret" not in r.reason
    log = (radius.workdir / "server.log").read_text(errors="replace")
    assert "Shared secret is incorrect" in log


def test_secret_required_and_option_values_checked(check: Checks) -> None:
    for options in ({}, {"secret": "s", "expect": "maybe"}, {"secret": "s", "passwd": "x" * 129}):
        with pytest.raises(OptionError) as info:
            check("radius", 1812, **options)
        assert "x" * 129 not in str(info.value)


def test_secret_and_password_from_file_or_environment(
    radius: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: Checks
) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    monkeypatch.setenv("LVS_RADIUS_PW", PASSWORD)
    r = check(
        "radius", radius.port, login=USER, passwdenv="LVS_RADIUS_PW", secretfile=str(tmp_path / "secret")
    )
    assert r.state is State.UP
    assert r.reason.startswith("Access-Accept")
    monkeypatch.setenv("LVS_RADIUS_SECRET", SECRET)
    (tmp_path / "pw").write_text(PASSWORD)
    r = check(
        "radius", radius.port, login=USER, passwdfile=str(tmp_path / "pw"), secretenv="LVS_RADIUS_SECRET"
    )
    assert r.reason.startswith("Access-Accept")
    for options in (
        {"secret": SECRET, "secretenv": "LVS_RADIUS_SECRET"},
        {"secretfile": str(tmp_path / "missing")},
        {"secretenv": "LVS_NOT_SET_ANYWHERE"},
        {"secret": SECRET, "passwd": "x", "passwdenv": "LVS_RADIUS_PW"},
    ):
        with pytest.raises(OptionError) as info:
            check("radius", radius.port, **options)
        assert SECRET not in str(info.value)


def test_port_unreachable_is_down_promptly(check: Checks) -> None:
    r = check("radius", free_port(socket.SOCK_DGRAM), secret=SECRET, checktimeout="3")
    assert r.state is State.DOWN
    assert "ICMP port unreachable" in r.reason
    assert r.latency < 0.5


def test_silence_is_down_at_the_deadline(check: Checks) -> None:
    seen: list[bytes] = []
    with udp_server(lambda d: seen.append(d) or []) as port:
        t0 = time.monotonic()
        r = check("radius", port, secret=SECRET, checktimeout="1.5")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1.5 s")
    assert_at_deadline(time.monotonic() - t0, 1.5)
    assert len(seen) == 2
    assert seen[0] == seen[1]  # a retransmission: same identifier and authenticator


def _reply(
    code: int, secret: bytes, mutate: Callable[[bytes], bytes] = lambda p: p
) -> Callable[[bytes], list[bytes]]:
    """A server answering ``code`` correctly signed with ``secret``, then ``mutate``d."""

    def answer(request: bytes) -> list[bytes]:
        attrs = struct.pack("!BB", 18, 2 + 5) + b"hello"
        header = struct.pack("!BBH", code, request[1], 20 + len(attrs))
        auth = hashlib.md5(header + request[4:20] + attrs + secret).digest()
        return [mutate(header + auth + attrs)]

    return answer


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (_reply(ACCESS_ACCEPT, b"another-secret"), "fails authentication (Response Authenticator)"),
        (_reply(ACCESS_ACCEPT, SECRET.encode(), lambda p: p[:1] + bytes([p[1] ^ 1]) + p[2:]), "identifier"),
        (_reply(ACCESS_ACCEPT, SECRET.encode(), lambda p: p[:12]), "too short"),
        (_reply(ACCESS_ACCEPT, SECRET.encode(), lambda p: p[:24]), "does not fit"),
        (
            _reply(ACCESS_ACCEPT, SECRET.encode(), lambda p: p[:20] + b"\x12\x01" + p[22:]),
            "malformed attribute",
        ),
        (_reply(4, SECRET.encode()), "code 4 is not an answer"),
        (lambda request: [b"\xff" * 300], "reply length field 65535"),
    ],
    ids=[
        "other-secret",
        "other-identifier",
        "short",
        "cut-short",
        "bad-attribute",
        "accounting-code",
        "garbage",
    ],
)
def test_garbled_or_forged_reply_is_down(
    server: Callable[[bytes], list[bytes]], reason: str, check: Checks
) -> None:
    with udp_server(server) as port:
        r = check("radius", port, secret=SECRET)
    assert r.state is State.DOWN
    assert reason in r.reason


def test_correctly_signed_reply_from_a_fake_is_accepted(check: Checks) -> None:
    # the mutation-free control for the cases above: proves the fake signs as RFC 2865 says
    with udp_server(_reply(ACCESS_ACCEPT, SECRET.encode())) as port:
        r = check("radius", port, secret=SECRET)
    assert r.state is State.UP, r.reason


@pytest.mark.parametrize("good", [True, False])
def test_reply_message_authenticator_is_verified(good: bool, check: Checks) -> None:
    import hmac

    def answer(request: bytes) -> list[bytes]:
        attrs = struct.pack("!BB", 80, 18) + b"\0" * 16
        header = struct.pack("!BBH", ACCESS_ACCEPT, request[1], 20 + len(attrs))
        mac = hmac.new(SECRET.encode() if good else b"other", header + request[4:20] + attrs, "md5").digest()
        attrs = attrs[:2] + mac
        auth = hashlib.md5(header + request[4:20] + attrs + SECRET.encode()).digest()
        return [header + auth + attrs]

    with udp_server(answer) as port:
        r = check("radius", port, secret=SECRET)
    if good:
        assert r.state is State.UP, r.reason
    else:
        assert r.state is State.DOWN
        assert "Message-Authenticator that does not verify" in r.reason


def test_password_hiding_matches_rfc2865_and_freeradius(radius: Server) -> None:
    # decode our hiding by hand (RFC 2865 5.2) for a two-block password
    secret, auth, pw = b"s", bytes(range(16)), b"p" * 20
    hidden = hide_password(pw, secret, auth)
    assert len(hidden) == 32
    b1 = hashlib.md5(secret + auth).digest()
    b2 = hashlib.md5(secret + hidden[:16]).digest()
    plain = bytes(a ^ b for a, b in zip(hidden, b1 + b2, strict=True))
    assert plain == pw + b"\0" * 12
    with pytest.raises(CheckFailed):
        parse_reply(
            build_access_request(b"u", b"p", secret, 7, auth), 7, auth, secret
        )  # a request is no reply


def test_radclient_agrees(radius: Server) -> None:
    """FreeRADIUS' own client gets the same verdicts from the same server (Accept / Reject)."""
    radclient = __import__("shutil").which("radclient")
    if radclient is None:
        pytest.skip("radclient (freeradius-utils) not installed")
    for pw, code in ((PASSWORD, "Access-Accept"), ("wrong", "Access-Reject")):
        out = subprocess.run(
            [radclient, "-x", "-r", "1", "-t", "2", f"127.0.0.1:{radius.port}", "auth", SECRET],
            input=f'User-Name = "{USER}", User-Password = "{pw}"\n',
            capture_output=True,
            text=True,
            check=False,
        )
        assert f"Received {code}" in out.stdout, out.stdout + out.stderr


def test_no_socket_leak(radius: Server) -> None:
    before = open_fds()
    specs = [
        CheckSpec("radius", Target("127.0.0.1", radius.port), {"login": USER, "passwd": p, "secret": SECRET})
        for p in (PASSWORD, "bad") * 10
    ]
    results = lvscheck.run_checks(specs)
    assert all(r.state is State.UP for r in results), [r.reason for r in results]
    assert open_fds() <= before


def test_cli_json_hides_secrets(radius: Server) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvscheck",
            "run",
            "--json",
            "radius",
            f"127.0.0.1:{radius.port}",
            f"login={USER}",
            f"passwd={PASSWORD}",
            f"secret={SECRET}",
            "expect=accept",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert SECRET not in out.stdout
    assert PASSWORD not in out.stdout
    assert json.loads(out.stdout)
