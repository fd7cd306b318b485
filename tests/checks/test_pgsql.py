"""The ``pgsql`` check against real PostgreSQL 15 servers (tests/peers/postgres.py).

A primary and a streaming hot standby (``pg_basebackup -R``) are started once
for the module.  Replay lag is made real with ``pg_wal_replay_pause()`` on the
standby while the primary commits; replication is stopped by clearing the
standby's ``primary_conninfo`` (its WAL receiver exits).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.postgres import PASSWORD, USER, Postgres, primary_and_standby, single_server, wait_replayed
from tests.runcheck import Checks
from tests.timing import assert_at_deadline

from lvscheck import OptionError, State

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
LOGIN = {"login": USER, "passwd": PASSWORD, "database": "app"}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Postgres, Postgres]]:
    with primary_and_standby() as pair:
        yield pair


@pytest.fixture
def primary(servers: tuple[Postgres, Postgres]) -> Postgres:
    return servers[0]


@pytest.fixture
def standby(servers: tuple[Postgres, Postgres]) -> Postgres:
    return servers[1]


@pytest.fixture(scope="module")
def check(check: Checks) -> Checks:
    """Reals of weight 100: the configured weight the lag tests scale."""
    return check.weighted(100)


def test_login_only_is_up_at_configured_weight(primary: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.weight == 100
    assert r.reason == f"logged in as {USER} to app"


def test_request_with_receive(primary: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, request="SELECT v FROM t ORDER BY id", receive="^ali", **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.reason == f"logged in as {USER} to app; request returned 2 rows, 'alive' matched receive"
    r = check("pgsql", primary.port, request="SELECT v FROM t", receive="^dead$", **LOGIN)
    assert r.state is State.DOWN
    assert "none with a value matching receive='^dead$'" in r.reason


def test_wrong_password_is_authentication_failed(primary: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, login=USER, passwd="not-the-password", database="app")
    assert r.state is State.DOWN
    assert (
        r.reason
        == f'authentication failed: password authentication failed for user "{USER}" (SQLSTATE 28P01)'
    )
    assert r.latency < 1


def test_sql_error_and_empty_result(primary: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, request="SELECT nope FROM t", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == 'PostgreSQL error: column "nope" does not exist (SQLSTATE 42703)'
    r = check("pgsql", primary.port, request="SELECT id FROM empty", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "request returned no rows: SELECT id FROM empty"


def test_unknown_database(primary: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, login=USER, passwd=PASSWORD, database="nosuchdb")
    assert r.state is State.DOWN
    assert r.reason == 'login failed: database "nosuchdb" does not exist (SQLSTATE 3D000)'


def test_stopped_server_is_connection_refused_promptly(check: Checks) -> None:
    with single_server() as db:
        port = db.port
        assert check("pgsql", port, **LOGIN).state is State.UP
    # the postmaster has shut down (SIGINT, fast) and its port is closed
    started = time.monotonic()
    r = check("pgsql", port, **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "connection refused"
    assert time.monotonic() - started < 1


def test_stalled_server_is_down_at_the_deadline(primary: Postgres, check: Checks) -> None:
    os.kill(primary.server.pid, signal.SIGSTOP)  # the postmaster: connections queue, nobody answers
    try:
        r = check("pgsql", primary.port, checktimeout=1, **LOGIN)
    finally:
        os.kill(primary.server.pid, signal.SIGCONT)
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1 s "), r.reason
    assert_at_deadline(r.latency, 1)


def test_tls_modes(primary: Postgres, check: Checks) -> None:
    assert primary.cafile is not None
    r = check("pgsql", primary.port, sslmode="verify-full", cafile=primary.cafile, **LOGIN)
    assert r.state is State.UP, r.reason
    r = check("pgsql", primary.port, sslmode="verify-full", **LOGIN)  # the test CA is not in the system store
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: "), r.reason
    for mode in ("require", "prefer", "disable"):
        r = check("pgsql", primary.port, sslmode=mode, **LOGIN)
        assert r.state is State.UP, (mode, r.reason)
    with pytest.raises(OptionError, match="cafile= is used with sslmode=verify-full only"):
        check("pgsql", primary.port, sslmode="require", cafile=primary.cafile, **LOGIN)


def test_role_match(primary: Postgres, standby: Postgres, check: Checks) -> None:
    assert check("pgsql", primary.port, role="primary", **LOGIN).state is State.UP
    assert check("pgsql", standby.port, role="standby", **LOGIN).state is State.UP
    r = check("pgsql", primary.port, role="standby", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "role primary (pg_is_in_recovery()=false), role=standby wanted"
    r = check("pgsql", standby.port, role="primary", **LOGIN)
    assert r.reason == "role standby (pg_is_in_recovery()=true), role=primary wanted"


def test_lag_mode_on_primary_and_synced_standby(primary: Postgres, standby: Postgres, check: Checks) -> None:
    r = check("pgsql", primary.port, weightmode="lag", **LOGIN)
    assert (r.state, r.weight) == (State.UP, 100)
    assert r.reason.endswith("not a standby: no replay lag")
    wait_replayed(primary, standby)
    r = check("pgsql", standby.port, weightmode="lag", **LOGIN)
    assert (r.state, r.weight) == (State.UP, 100), r.reason
    assert r.details["lag"] == 0


def test_replay_lag_lowers_weight(primary: Postgres, standby: Postgres, check: Checks) -> None:
    primary.sql("INSERT INTO t (v) VALUES ('before')", "app")
    wait_replayed(primary, standby)
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        time.sleep(1.2)  # the last replayed commit ages
        primary.sql("INSERT INTO t (v) VALUES ('during')", "app")  # received, not replayed
        lsn = primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        end = time.monotonic() + 10
        while not standby.sql(f"SELECT pg_last_wal_receive_lsn() >= '{lsn}'::pg_lsn")[0][0]:
            assert time.monotonic() < end
            time.sleep(0.05)
        r = check("pgsql", standby.port, weightmode="lag", minlag=0, maxlag=100, **LOGIN)
        assert r.state is State.DEGRADED, r.reason
        lag = r.details["lag"]
        assert 1.2 <= lag < 10
        assert 90 <= r.weight <= 99
        assert f"weight {r.weight} of 100" in r.reason
        r = check("pgsql", standby.port, weightmode="lag", minlag=0, maxlag=1, **LOGIN)
        assert r.state is State.DOWN
        assert "reaches maxlag=1" in r.reason
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
    wait_replayed(primary, standby)
    r = check("pgsql", standby.port, weightmode="lag", minlag=0, maxlag=100, **LOGIN)
    assert (r.state, r.weight) == (State.UP, 100), r.reason


def test_stopped_replication_applies_the_null_rule(standby: Postgres, check: Checks) -> None:
    conninfo = standby.sql("SHOW primary_conninfo")[0][0]
    standby.sql("ALTER SYSTEM SET primary_conninfo = ''")
    standby.sql("SELECT pg_reload_conf()")
    try:
        end = time.monotonic() + 10
        while standby.sql("SELECT count(*) FROM pg_stat_wal_receiver")[0][0]:
            assert time.monotonic() < end
            time.sleep(0.05)
        r = check("pgsql", standby.port, weightmode="lag", **LOGIN)
        assert r.state is State.DOWN
        assert r.reason == (
            f"logged in as {USER} to app; role standby: replication lag unknown "
            "(no WAL receiver: replication stopped or not connected); lagnull=down"
        )
        r = check("pgsql", standby.port, weightmode="lag", lagnull="up", **LOGIN)
        assert (r.state, r.weight) == (State.UP, 100)
        r = check("pgsql", standby.port, weightmode="lag", lagnull="degraded", **LOGIN)
        assert (r.state, r.weight) == (State.DEGRADED, 1)
    finally:
        quoted = conninfo.replace("'", "''")
        standby.sql(f"ALTER SYSTEM SET primary_conninfo = '{quoted}'")
        standby.sql("SELECT pg_reload_conf()")


def test_password_never_in_reason_or_errors(
    primary: Postgres, monkeypatch: pytest.MonkeyPatch, check: Checks
) -> None:
    r = check("pgsql", primary.port, request=f'SELECT * FROM "{PASSWORD}"', **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == 'PostgreSQL error: relation "***" does not exist (SQLSTATE 42P01)'
    monkeypatch.setenv("LVS_TEST_PG_PW", PASSWORD)
    r = check(
        "pgsql",
        primary.port,
        login=USER,
        passwdenv="LVS_TEST_PG_PW",
        database="app",
        request=f'SELECT "{PASSWORD}"',
    )
    assert r.state is State.DOWN
    assert PASSWORD not in r.reason
    with pytest.raises(OptionError) as info:
        check("pgsql", primary.port, passwd=PASSWORD, passwdenv="LVS_TEST_PG_PW", login=USER)
    assert PASSWORD not in str(info.value)


def test_cli_passwdenv_json(primary: Postgres) -> None:
    env = {**os.environ, "LVS_PG_PW": PASSWORD}
    argv = [LVSCHECK, "run", "pgsql", f"127.0.0.1:{primary.port}", f"login={USER}", "passwdenv=LVS_PG_PW"]
    p = subprocess.run([*argv, "database=app", "--json"], capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["reason"] == f"logged in as {USER} to app"
    p = subprocess.run(
        [*argv, "database=app", f'request=SELECT * FROM "{PASSWORD}"', "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert p.returncode == 2, p
    assert PASSWORD not in p.stdout + p.stderr
