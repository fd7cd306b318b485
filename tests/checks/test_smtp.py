"""The smtp and submission checks against a real Debian exim (tests/peers/exim.py) and hostile servers.

exim listens on two ports: one offering STARTTLS (certificate from a test CA)
and AUTH, one offering neither.  ``submission`` is ``smtp`` on port 587 by
default, so both types run the same cases against exim.  Hostile behaviour
(garbage, endless replies, a broken STARTTLS) comes from hand-written servers
(tests/peers/hostile.py): exim does not misbehave on demand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.exim import PASSWORD, USER, Exim, start_exim
from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, serve, stall
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

import lvscheck
from lvscheck import OptionError, State

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
KINDS = ["smtp", "submission"]


@pytest.fixture(scope="module")
def exim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exim]:
    with start_exim(tmp_path_factory.mktemp("exim")) as server:
        yield server


def tls(ex: Exim, **extra: str) -> dict[str, str]:
    return {"starttls": "yes", "cafile": str(ex.cafile), **extra}


# -- the real server --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_banner_ehlo_quit(exim: Exim, kind: str, check: Checks) -> None:
    r = check(kind, exim.port)
    assert r.state is State.UP
    assert r.reason == "banner 220, EHLO 250"
    assert r.check == kind


@pytest.mark.parametrize("kind", KINDS)
def test_starttls_verified(exim: Exim, kind: str, check: Checks) -> None:
    r = check(kind, exim.port, **tls(exim))
    assert r.state is State.UP
    assert r.reason.startswith("banner 220, EHLO 250, STARTTLS (TLSv1.")


def test_plain_check_does_not_upgrade_on_its_own(exim: Exim, check: Checks) -> None:
    # aiosmtplib would upgrade whenever EHLO offers STARTTLS; a plain check must not
    # (with no cafile, an upgrade would fail verification against the test CA)
    r = check("smtp", exim.port)
    assert r.state is State.UP
    assert "STARTTLS" not in r.reason


@pytest.mark.parametrize("kind", KINDS)
def test_auth_after_starttls(exim: Exim, kind: str, check: Checks) -> None:
    r = check(kind, exim.port, login=USER, passwd=PASSWORD, **tls(exim))
    assert r.state is State.UP
    assert r.reason.endswith(f"AUTH as {USER}")


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_password_is_login_failed(exim: Exim, kind: str, check: Checks) -> None:
    r = check(kind, exim.port, login=USER, passwd="not-the-password", **tls(exim))
    assert r.state is State.DOWN
    assert r.reason == "login failed: 535 Incorrect authentication data"
    assert "not-the-password" not in r.reason


def test_untrusted_certificate_is_down(exim: Exim, check: Checks) -> None:
    r = check("smtp", exim.port, **tls(exim, cafile=str(exim.other_ca)))
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: ")
    r = check("smtp", exim.port, starttls="yes")  # the system store does not know the test CA
    assert r.reason == "TLS certificate not accepted: unable to get local issuer certificate"


def test_wrong_name_is_down_and_tlsverify_no_accepts_it(exim: Exim, check: Checks) -> None:
    r = check("smtp", exim.port, **tls(exim, servername="wrong.example.test"))
    assert r.state is State.DOWN
    assert "Hostname mismatch" in r.reason
    assert (
        check("smtp", exim.port, starttls="yes", tlsverify="no", servername="wrong.example.test").state
        is State.UP
    )
    assert check("smtp", exim.port, **tls(exim, servername="mx.example.test")).state is State.UP


def test_starttls_required_but_not_offered(exim: Exim, check: Checks) -> None:
    r = check("smtp", exim.plain_port, **tls(exim))
    assert r.state is State.DOWN
    assert r.reason == "STARTTLS required (starttls=yes) but the server does not offer it"
    assert check("smtp", exim.plain_port).state is State.UP


def test_auth_not_offered(exim: Exim, check: Checks) -> None:
    r = check("smtp", exim.plain_port, login=USER, passwd=PASSWORD)
    assert r.state is State.DOWN
    assert r.reason == "login= is set but the server offers no AUTH here"


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="login= needs a password"):
        check("smtp", 25, login="x")
    with pytest.raises(OptionError, match="helo"):
        check("smtp", 25, helo="two words")
    with pytest.raises(OptionError, match="cafile"):
        check("smtp", 25, starttls="yes", cafile="/nonexistent/ca.pem")


def test_default_ports() -> None:
    smtp = lvscheck.PluginHost().check_type("smtp")
    submission = lvscheck.PluginHost().check_type("submission")
    assert (smtp.default_port, submission.default_port) == (25, 587)


# -- refused, stalled, hostile -----------------------------------------------------------------------


def test_refused(check: Checks) -> None:
    r = check("smtp", free_port())
    assert r.reason == "connection refused"


def test_stalled_real_server(exim: Exim, check: Checks) -> None:
    with paused(exim.server.pid):
        r, took = check.timed("smtp", exim.port, negotiatetimeout="1")
    assert r.state is State.DOWN
    assert r.reason == "timed out after 1 s waiting for the banner"
    assert_at_deadline(took, 1)


def test_connecttimeout_is_separate_from_the_deadline(check: Checks) -> None:
    # a blackholed address would need a routing setup; a closed port answers at once,
    # so here the point is only that connecttimeout is accepted and the total still decides
    with serve(stall) as port:
        r, took = check.timed("smtp", port, negotiatetimeout="0.6", connecttimeout="0.3")
    assert r.reason == "timed out after 0.6 s waiting for the banner"
    assert_by_deadline(took, 0.6)


STARTTLS_OFFER = b"250-mx\r\n250 STARTTLS\r\n"
HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    ("stall", stall, {}, "timed out after 1 s waiting for the banner"),
    (
        "garbage",
        script(b"SSH-2.0-OpenSSH_9.2\r\n"),
        {},
        "not a valid SMTP reply waiting for the banner: Malformed SMTP response line: SSH-2.0-OpenSSH_9.2",
    ),
    ("554", script(b"554 go away\r\n"), {}, "SMTP banner is not 220: 554 go away"),
    (
        "truncated",
        script(b"220-hi\r\n220-hi ag", then="close"),
        {},
        "connection closed by the server waiting for the banner",
    ),
    (
        "closed",
        script(b"220 hi\r\n", then="close"),
        {},
        "connection closed by the server waiting for the reply to EHLO",
    ),
    (
        "endless-line",
        endless_line(b"220 "),
        {},
        "not a valid SMTP reply waiting for the banner: Response too long",
    ),
    (
        "endless-reply",
        endless_lines(b"220-more\r\n"),
        {},
        "not a valid SMTP reply waiting for the banner: Response too long",
    ),
    (
        "garbage-ehlo",
        script(b"220 hi\r\n", b"what?\r\n"),
        {},
        "not a valid SMTP reply waiting for the reply to EHLO: Malformed SMTP response line: what?",
    ),
    (
        "bad-quit",
        script(b"220 hi\r\n", b"250 ok\r\n", b"500 what\r\n"),
        {},
        "unexpected reply to QUIT: 500 what",
    ),
    (
        "starttls-refused",
        script(b"220 hi\r\n", STARTTLS_OFFER, b"454 TLS not available\r\n"),
        {"starttls": "yes"},
        "unexpected reply to STARTTLS: 454 TLS not available",
    ),
    (
        "starttls-no-tls",
        script(b"220 hi\r\n", STARTTLS_OFFER, b"220 go\r\n", b"plain text, not TLS\r\n"),
        {"starttls": "yes"},
        "TLS error waiting for the reply to STARTTLS or in its TLS handshake: WRONG_VERSION_NUMBER",
    ),
    (
        "starttls-stall",
        script(b"220 hi\r\n", STARTTLS_OFFER, b"220 go\r\n"),
        {"starttls": "yes"},
        "timed out after 1 s waiting for the reply to STARTTLS or in its TLS handshake",
    ),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    with serve(handler) as port:
        r, took = check.timed("smtp", port, negotiatetimeout="1", **options)
    assert r.state is State.DOWN
    assert r.reason == reason
    assert_by_deadline(took, 1)


@pytest.mark.parametrize(
    ("handler", "options", "reason"),
    [h[1:] for h in HOSTILE if h[0] in ("garbage", "truncated", "endless-line", "endless-reply")],
    ids=["garbage", "truncated", "endless-line", "endless-reply"],
)
def test_hostile_servers_submission(
    handler: Any, options: dict[str, str], reason: str, check: Checks
) -> None:
    with serve(handler) as port:
        r, took = check.timed("submission", port, negotiatetimeout="1", **options)
    assert r.check == "submission"
    assert r.reason == reason
    assert_by_deadline(took, 1)


def test_helo_fallback_when_ehlo_is_refused(check: Checks) -> None:
    with serve(script(b"220 old\r\n", b"502 no EHLO here\r\n", b"250 hello\r\n", b"221 bye\r\n")) as port:
        r = check("smtp", port, negotiatetimeout="1")
    assert r.state is State.UP
    assert r.reason == "banner 220, HELO 250"


def test_no_socket_leak(exim: Exim, check: Checks) -> None:
    check("smtp", exim.port)
    before = open_fds()
    for _ in range(3):
        check("smtp", exim.port, **tls(exim))
        check("smtp", exim.port, login=USER, passwd="bad", **tls(exim))
        check("smtp", exim.port, **tls(exim, servername="wrong.example.test"))
        check("smtp", free_port())
        for _, handler, options, _ in HOSTILE[1:]:
            with serve(handler) as port:
                check("smtp", port, negotiatetimeout="0.3", **options)
    with paused(exim.server.pid):
        check("smtp", exim.port, negotiatetimeout="0.3")
    assert open_fds() <= before


# -- the command line -------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LVSCHECK, *args], capture_output=True, text=True, timeout=20)


def test_cli_smtp_starttls_auth(exim: Exim) -> None:
    p = cli(
        "run",
        "smtp",
        f"127.0.0.1:{exim.port}",
        "starttls=yes",
        f"cafile={exim.cafile}",
        f"login={USER}",
        f"passwd={PASSWORD}",
    )
    assert p.returncode == 0, p
    assert f"AUTH as {USER}" in p.stdout
    assert PASSWORD not in p.stdout + p.stderr


def test_cli_submission_json_and_down_exit_2(exim: Exim) -> None:
    p = cli("run", "--json", "submission", f"127.0.0.1:{exim.port}")
    assert p.returncode == 0, p
    doc = json.loads(p.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    assert (doc["check"], doc["state"], doc["reason"]) == ("submission", "up", "banner 220, EHLO 250")
    p = cli("run", "smtp", f"127.0.0.1:{exim.plain_port}", "starttls=yes", f"cafile={exim.cafile}")
    assert p.returncode == 2, p
    assert "does not offer it" in p.stdout
