"""Every check that takes a password hides it in reasons, however the password is given.

A password from ``passwdfile=`` or ``passwdenv=`` is not an option value the engine can
see, so each check must register it (``Check.keep_secret``); this test proves it for every
check type with a login, by preparing the check and running its reason through the
engine's scrubber.
"""

from __future__ import annotations

import pytest

from lvscheck import CheckSpec, Target
from lvscheck.engine.runner import scrub
from lvscheck.plugins import PluginHost

PASSWORD = "Sekr1t-from-env"

CASES = {
    "ftp": {"login": "alice"},
    "smtp": {"login": "alice"},
    "submission": {"login": "alice"},
    "imap": {"login": "alice"},
    "imaps": {"login": "alice"},
    "pop": {"login": "alice"},
    "pops": {"login": "alice"},
    "nntp": {"login": "alice"},
    "mysql": {"login": "alice"},
    "pgsql": {"login": "alice"},
    "ldap": {"login": "uid=alice,dc=example,dc=org"},
    "radius": {"login": "alice", "secretenv": "LVSCHECK_TEST_RADIUS_SECRET"},
}


@pytest.mark.parametrize("how", ["passwd", "passwdenv", "passwdfile"])
@pytest.mark.parametrize("check", sorted(CASES))
def test_password_is_hidden_however_given(
    check: str, how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("LVSCHECK_TEST_PW", PASSWORD)
    monkeypatch.setenv("LVSCHECK_TEST_RADIUS_SECRET", "radius-shared-secret")
    options = dict(CASES[check])
    if how == "passwd":
        options["passwd"] = PASSWORD
    elif how == "passwdenv":
        options["passwdenv"] = "LVSCHECK_TEST_PW"
    else:
        path = f"{tmp_path}/pw"
        with open(path, "w") as f:
            f.write(PASSWORD + "\n")
        options["passwdfile"] = path
    host = PluginHost(entry_points=False)
    prepared = host.check_type(check).prepare(CheckSpec(check, Target("127.0.0.1", 1), options))
    reason = f"login failed: server said 'bad password {PASSWORD}'"
    for secret in prepared.secrets:
        reason = scrub(reason, secret)
    assert PASSWORD not in reason
    if check == "radius":  # the shared secret from secretenv= is hidden too
        text = "x radius-shared-secret"
        for secret in prepared.secrets:
            text = scrub(text, secret)
        assert "radius-shared-secret" not in text
