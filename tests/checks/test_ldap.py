"""The ``ldap`` and ``ldaps`` checks against a real OpenLDAP slapd (tests/peers/slapd.py).

slapd listens on ldap:// (StartTLS offered) and ldaps:// with a certificate from
a trustme test CA; the tree is dc=example,dc=org with a bind user.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.slapd import BASE, BIND_DN, BIND_PASSWORD, Slapd, start_slapd
from tests.runcheck import Checks
from tests.timing import assert_at_deadline

import lvscheck
from lvscheck import CheckSpec, OptionError, State, Target
from lvscheck.checks import ldap as ldap_module

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
BIND = {"login": BIND_DN, "passwd": BIND_PASSWORD}


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with start_slapd() as server:
        yield server


@pytest.fixture(scope="module")
def check(check: Checks) -> Checks:
    """Reals of weight 10: the configured weight of the reals here."""
    return check.weighted(10)


def test_anonymous_bind_reads_the_root_dse(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port)
    assert r.state is State.UP, r.reason
    assert r.weight == 10
    assert r.reason == "anonymous bind; found the root DSE"


def test_simple_bind_and_receive_on_the_dn(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port, request=BIND_DN, receive="^uid=lvscheck,", **BIND)
    assert r.state is State.UP, r.reason
    assert r.reason == f"bound as {BIND_DN}; found {BIND_DN!r}"
    # the same entry is invisible anonymously (ACL): no entry, down
    r = check("ldap", slapd.port, request=BIND_DN)
    assert r.state is State.DOWN
    assert r.reason.startswith(f"search of {BIND_DN!r} failed: noSuchObject (32)"), r.reason


def test_receive_mismatch_and_missing_entry(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port, request=f"cn=health,{BASE}", receive="^cn=other")
    assert r.state is State.DOWN
    assert r.reason == f"anonymous bind; entry DN 'cn=health,{BASE}' does not match receive='^cn=other'"
    r = check("ldap", slapd.port, request=f"cn=nope,{BASE}")
    assert r.state is State.DOWN
    assert r.reason.startswith(f"search of 'cn=nope,{BASE}' failed: noSuchObject (32)")


def test_wrong_password_is_authentication_failed(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port, login=BIND_DN, passwd="not-the-password")
    assert r.state is State.DOWN
    assert r.reason == f"authentication failed: invalidCredentials (49) (bind as {BIND_DN})"
    assert r.latency < 1


def test_starttls_verified(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port, starttls="yes", cafile=slapd.cafile, **BIND)
    assert r.state is State.UP, r.reason
    assert r.reason == f"bound as {BIND_DN}; found the root DSE; TLS verified"
    r = check("ldap", slapd.port, starttls="yes")  # the test CA is not in the system store
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: "), r.reason


def test_ldaps_verified(slapd: Slapd, check: Checks) -> None:
    r = check("ldaps", slapd.tls_port, cafile=slapd.cafile, **BIND)
    assert r.state is State.UP, r.reason
    assert r.reason.endswith("; TLS verified")
    r = check("ldaps", slapd.tls_port)
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: "), r.reason
    r = check("ldaps", slapd.tls_port, cafile=slapd.cafile, servername="ldap.example.net")
    assert r.state is State.DOWN
    assert "ldap.example.net" in r.reason
    r = check("ldaps", slapd.tls_port, tlsverify="no")
    assert (r.state, r.reason) == (State.UP, "anonymous bind; found the root DSE; TLS unverified")


def test_stopped_server_is_connection_refused_promptly(check: Checks) -> None:
    with start_slapd() as server:
        port = server.port
        assert check("ldap", port).state is State.UP
    # slapd has shut down (SIGTERM) and its port is closed
    started = time.monotonic()
    r = check("ldap", port)
    assert (r.state, r.reason) == (State.DOWN, "connection refused")
    assert time.monotonic() - started < 1


def test_stalled_server_is_down_at_the_deadline_and_frees_the_worker(slapd: Slapd, check: Checks) -> None:
    os.kill(slapd.server.pid, signal.SIGSTOP)
    try:
        r = check("ldap", slapd.port, checktimeout=1)
        r2 = check("ldaps", slapd.tls_port, checktimeout=1, cafile=slapd.cafile)
        # still stalled: the worker threads left their dialogues at the deadline
        end = time.monotonic() + 0.3
        while ldap_module.busy_workers() and time.monotonic() < end:
            time.sleep(0.01)
        assert ldap_module.busy_workers() == 0
    finally:
        os.kill(slapd.server.pid, signal.SIGCONT)
    assert r.state is State.DOWN
    assert r.reason == "timed out after 1 s waiting for the bind as anonymous"
    assert_at_deadline(r.latency, 1)
    assert r2.state is State.DOWN
    assert r2.reason.startswith("timed out after 1 s "), r2.reason


def test_more_checks_than_workers_share_the_pool(slapd: Slapd) -> None:
    specs = [
        CheckSpec("ldap", Target("127.0.0.1", slapd.port), BIND) for _ in range(ldap_module.MAX_WORKERS * 4)
    ]
    started = time.monotonic()
    results = asyncio.run(lvscheck.check_many(specs))
    assert all(r.state is State.UP for r in results), {r.reason for r in results}
    assert time.monotonic() - started < 3
    threads = [t for t in threading.enumerate() if t.name.startswith("lvscheck-ldap")]
    assert len(threads) <= ldap_module.MAX_WORKERS


def test_option_errors_never_show_the_password() -> None:
    for options in (
        {"login": BIND_DN, "passwd": BIND_PASSWORD, "passwdenv": "X"},
        {"login": BIND_DN, "passwd": BIND_PASSWORD, "receive": "(["},
    ):
        with pytest.raises(OptionError) as info:
            lvscheck.run_checks([CheckSpec("ldap", Target("127.0.0.1", 389), options)])
        assert BIND_PASSWORD not in str(info.value)
    with pytest.raises(OptionError, match="starttls=yes is for ldap"):
        lvscheck.run_checks([CheckSpec("ldaps", Target("127.0.0.1", 636), {"starttls": "yes"})])


def test_login_without_password_binds_anonymously_as_ldirectord(slapd: Slapd, check: Checks) -> None:
    r = check("ldap", slapd.port, login=BIND_DN)
    assert r.state is State.UP
    assert (
        r.reason
        == "anonymous bind (login without a password: anonymous, as ldirectord does); found the root DSE"
    )
    r = check("ldap", slapd.port, login=BIND_DN, passwd="")
    assert r.reason.startswith("anonymous bind (login without a password")
    r = check("ldap", slapd.port, passwd=BIND_PASSWORD)
    assert r.reason.startswith("anonymous bind (a password without login")
    assert BIND_PASSWORD not in r.reason


def test_password_never_in_reason(slapd: Slapd, check: Checks) -> None:
    # a search base built from the password comes back in the server's message
    r = check("ldap", slapd.port, request=f"cn={BIND_PASSWORD},{BASE}", **BIND)
    assert r.state is State.DOWN
    assert BIND_PASSWORD not in r.reason
    assert "cn=***" in r.reason


def test_cli_passwdfile_json(slapd: Slapd, tmp_path: Path) -> None:
    pwfile = tmp_path / "ldap.pw"
    pwfile.write_text(BIND_PASSWORD + "\n")
    argv = [
        LVSCHECK,
        "run",
        "ldap",
        f"127.0.0.1:{slapd.port}",
        f"login={BIND_DN}",
        f"passwdfile={pwfile}",
        "starttls=yes",
        f"cafile={slapd.cafile}",
        "--json",
    ]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p
    out = json.loads(p.stdout)
    assert out["state"] == "up"
    assert BIND_PASSWORD not in p.stdout + p.stderr
