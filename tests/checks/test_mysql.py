"""The ``mysql`` check against real MariaDB servers (tests/peers/mariadb.py).

A primary and a GTID replica are started once for the module (about 2.5 s); a
one-node Galera cluster only for the Galera tests.  Lag is made real: a table
lock on the replica holds its SQL thread on an event from the primary, so
``Seconds_Behind_Master`` grows by one every second.
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
from tests.peers.mariadb import (
    PASSWORD,
    USER,
    MariaDB,
    galera_node,
    primary_and_replica,
    single_server,
    wait_replicated,
)
from tests.runcheck import Checks

import lvscheck
from lvscheck import CheckSpec, OptionError, State, Target

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
LOGIN = {"login": USER, "passwd": PASSWORD}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MariaDB, MariaDB]]:
    with primary_and_replica() as pair:
        yield pair


@pytest.fixture
def primary(servers: tuple[MariaDB, MariaDB]) -> MariaDB:
    return servers[0]


@pytest.fixture
def replica(servers: tuple[MariaDB, MariaDB]) -> MariaDB:
    return servers[1]


@pytest.fixture(scope="module")
def galera() -> Iterator[MariaDB]:
    with galera_node() as node:
        yield node


def replica_lag(replica: MariaDB) -> int | None:
    conn = replica.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
    finally:
        conn.close()
    value = dict(zip(names, row, strict=True))["Seconds_Behind_Master"]
    return None if value is None else int(value)


# -- login and request ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check(check: Checks) -> Checks:
    """Reals of weight 100: the configured weight the lag tests scale."""
    return check.weighted(100)


def test_login_only_is_up_at_configured_weight(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.weight == 100
    assert r.reason == f"logged in as {USER}"
    assert r.latency < 1


def test_request_with_receive(primary: MariaDB, check: Checks) -> None:
    r = check(
        "mysql", primary.port, database="app", request="SELECT v FROM t ORDER BY id", receive="^ali", **LOGIN
    )
    assert r.state is State.UP, r.reason
    assert r.reason == f"logged in as {USER}; request returned 2 rows, 'alive' matched receive"


def test_receive_matches_no_value(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, request="SELECT v FROM app.t", receive="^dead$", **LOGIN)
    assert r.state is State.DOWN
    assert "none with a value matching receive='^dead$'" in r.reason


def test_wrong_password_is_authentication_failed(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, login=USER, passwd="not-the-password")
    assert r.state is State.DOWN
    assert r.reason.startswith("authentication failed: (1045) Access denied for user 'lvs'@")
    assert r.latency < 1  # an answer, not a timeout


def test_sql_error_is_down_with_the_servers_message(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, request="SELECT nope FROM app.t", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "MySQL error: (1054) Unknown column 'nope' in 'SELECT'"


def test_empty_result_is_down(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, request="SELECT id FROM app.empty", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "request returned no rows: SELECT id FROM app.empty"


def test_unknown_database_is_down(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, database="nosuchdb", **LOGIN)
    assert r.state is State.DOWN
    assert "(1044)" in r.reason or "(1049)" in r.reason, r.reason


def test_stopped_server_is_connection_refused_promptly(check: Checks) -> None:
    with single_server() as db:
        port = db.port
        assert check("mysql", port, **LOGIN).state is State.UP
    # mysqld has shut down (SIGTERM) and its port is closed
    started = time.monotonic()
    r = check("mysql", port, **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "connection refused"
    assert time.monotonic() - started < 1


def test_stalled_server_is_down_at_the_deadline(primary: MariaDB, check: Checks) -> None:
    os.kill(primary.server.pid, signal.SIGSTOP)
    try:
        r = check("mysql", primary.port, checktimeout=1, **LOGIN)
    finally:
        os.kill(primary.server.pid, signal.SIGCONT)
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1 s "), r.reason
    assert 0.9 < r.latency < 1.5


# -- COM_QUIT: the server counts no aborted connects or clients ------------------------------------


def test_checks_leave_no_aborted_connects_or_clients(primary: MariaDB) -> None:
    before = primary.status("Aborted_connects"), primary.status("Aborted_clients")
    specs = [
        CheckSpec("mysql", Target("127.0.0.1", primary.port, weight=5), {**LOGIN, **extra})
        for extra in (
            {},
            {"request": "SELECT 1"},
            {"request": "SELECT nope"},  # SQL error
            {"request": "SELECT id FROM app.empty"},  # no rows
            {"role": "standby"},  # role mismatch
            {"weightmode": "lag"},
            {"weightmode": "galera"},  # not a Galera node
        )
        * 5
    ]
    results = lvscheck.run_checks(specs)
    assert {r.state for r in results} == {State.UP, State.DOWN}
    time.sleep(0.1)  # the server reads the COM_QUIT of the last ones
    after = primary.status("Aborted_connects"), primary.status("Aborted_clients")
    assert after == before


# -- roles --------------------------------------------------------------------------------------------


def test_role_match(primary: MariaDB, replica: MariaDB, check: Checks) -> None:
    assert check("mysql", primary.port, role="primary", **LOGIN).state is State.UP
    assert check("mysql", replica.port, role="standby", **LOGIN).state is State.UP
    assert check("mysql", primary.port, role="any", **LOGIN).state is State.UP
    r = check("mysql", primary.port, role="ro", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason == "role primary (read_only=OFF), role=standby wanted"
    r = check("mysql", replica.port, role="rw", **LOGIN)
    assert r.reason == "role standby (read_only=ON), role=primary wanted"


# -- replication lag -> weight ------------------------------------------------------------------------


def test_lag_mode_on_a_primary_is_up(primary: MariaDB, check: Checks) -> None:
    r = check("mysql", primary.port, weightmode="lag", **LOGIN)
    assert r.state is State.UP
    assert r.weight == 100
    assert "not a replica" in r.reason


def test_replica_in_sync_is_up_at_full_weight(primary: MariaDB, replica: MariaDB, check: Checks) -> None:
    wait_replicated(primary, replica)
    r = check("mysql", replica.port, weightmode="lag", role="standby", **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.weight == 100
    assert r.details["lag"] == 0


def test_lagging_replica_loses_weight(primary: MariaDB, replica: MariaDB, check: Checks) -> None:
    locker = replica.connect()
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES app.t WRITE")  # the SQL thread will wait for this lock
        primary.sql("INSERT INTO app.t (v) VALUES ('lagging')")
        end = time.monotonic() + 10
        while (replica_lag(replica) or 0) < 2 and time.monotonic() < end:
            time.sleep(0.1)
        r = check("mysql", replica.port, weightmode="lag", minlag=0, maxlag=100, **LOGIN)
        assert r.state is State.DEGRADED, r.reason
        lag = r.details["lag"]
        assert 2 <= lag < 10
        assert r.weight == 100 - int(lag)  # linear from minlag=0 (100) to maxlag=100 (0)
        assert f"weight {r.weight} of 100" in r.reason
        r = check("mysql", replica.port, weightmode="lag", minlag=0, maxlag=2, **LOGIN)
        assert r.state is State.DOWN
        assert "reaches maxlag=2" in r.reason
        # the default minlag=1 / maxlag=60 on 1000: still a high weight
        r = check("mysql", replica.port, weight=1000, weightmode="lag", **LOGIN)
        assert r.state is State.DEGRADED
        assert 800 < r.weight < 1000
    finally:
        locker.close()  # releases the lock
    wait_replicated(primary, replica)
    r = check("mysql", replica.port, weightmode="lag", minlag=0, maxlag=100, **LOGIN)
    assert r.state is State.UP
    assert r.weight == 100


def test_stopped_replication_applies_the_null_rule(replica: MariaDB, check: Checks) -> None:
    replica.sql("STOP SLAVE")
    try:
        r = check("mysql", replica.port, weightmode="lag", **LOGIN)
        assert r.state is State.DOWN
        assert r.reason == (
            f"logged in as {USER}: replication lag unknown "
            "(Slave_IO_Running=No, Slave_SQL_Running=No); lagnull=down"
        )
        r = check("mysql", replica.port, weightmode="lag", lagnull="up", **LOGIN)
        assert (r.state, r.weight) == (State.UP, 100)
        r = check("mysql", replica.port, weightmode="lag", lagnull="degraded", **LOGIN)
        assert (r.state, r.weight) == (State.DEGRADED, 1)
    finally:
        replica.sql("START SLAVE")


def test_lag_needs_a_privilege(primary: MariaDB, replica: MariaDB, check: Checks) -> None:
    primary.sql("CREATE USER IF NOT EXISTS 'plain'@'%' IDENTIFIED BY 'plainpw'")
    wait_replicated(primary, replica)
    r = check("mysql", replica.port, login="plain", passwd="plainpw", weightmode="lag")
    assert r.state is State.DOWN
    assert "(1227)" in r.reason, r.reason  # Access denied; you need ... SLAVE MONITOR / REPLICA MONITOR


# -- Galera ---------------------------------------------------------------------------------------------


def test_galera_synced_donor_and_not_galera(galera: MariaDB, primary: MariaDB, check: Checks) -> None:
    r = check("mysql", galera.port, weightmode="galera", **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.reason == f"logged in as {USER}; Galera wsrep_local_state 4 (Synced)"
    galera.sql("SET GLOBAL wsrep_desync = ON")
    try:
        r = check("mysql", galera.port, weightmode="galera", **LOGIN)
        assert r.state is State.DOWN
        assert r.reason == f"logged in as {USER}; Galera wsrep_local_state 2 (Donor/Desynced)"
        r = check("mysql", galera.port, weightmode="galera", donor="degraded", **LOGIN)
        assert (r.state, r.weight) == (State.DEGRADED, 1)
        r = check("mysql", galera.port, weightmode="galera", donor="up", **LOGIN)
        assert (r.state, r.weight) == (State.UP, 100)
    finally:
        galera.sql("SET GLOBAL wsrep_desync = OFF")
    r = check("mysql", primary.port, weightmode="galera", **LOGIN)
    assert r.state is State.DOWN
    assert r.reason.endswith("not a Galera node: no wsrep_local_state")


# -- secrets ---------------------------------------------------------------------------------------------


def test_password_never_in_reason(primary: MariaDB, check: Checks) -> None:
    # the server echoes the failing SQL, which contains the password: the reason must not
    r = check("mysql", primary.port, request=f"SELECT * FROM app.`{PASSWORD}`", **LOGIN)
    assert r.state is State.DOWN
    assert PASSWORD not in r.reason
    assert r.reason == "MySQL error: (1146) Table 'app.***' doesn't exist"


def test_password_from_env_and_file(
    primary: MariaDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: Checks
) -> None:
    monkeypatch.setenv("LVS_TEST_MYSQL_PW", PASSWORD)
    r = check(
        "mysql",
        primary.port,
        login=USER,
        passwdenv="LVS_TEST_MYSQL_PW",
        request=f"SELECT * FROM app.`{PASSWORD}`",
    )
    assert r.state is State.DOWN
    assert PASSWORD not in r.reason  # a password from the environment is scrubbed too
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\n")
    r = check("mysql", primary.port, login=USER, passwdfile=pwfile)
    assert r.state is State.UP, r.reason


def test_password_never_in_option_errors(tmp_path: Path) -> None:
    cases = [
        {"login": USER, "passwd": PASSWORD, "passwdenv": "X"},
        {"login": USER, "passwd": PASSWORD, "maxlag": "0", "minlag": "5"},
        {"login": USER, "passwd": PASSWORD, "receive": "(["},
        {"login": USER, "passwdfile": str(tmp_path / "missing")},
        {"login": USER, "passwdenv": "LVS_TEST_NOT_SET_ANYWHERE"},
        {"passwd": PASSWORD},
    ]
    for options in cases:
        with pytest.raises(OptionError) as info:
            lvscheck.run_checks([CheckSpec("mysql", Target("127.0.0.1", 3306), options)])
        assert PASSWORD not in str(info.value)


def test_cli_passwdenv_json(primary: MariaDB) -> None:
    env = {**os.environ, "LVS_DB_PW": PASSWORD}
    argv = [LVSCHECK, "run", "mysql", f"127.0.0.1:{primary.port}", f"login={USER}", "passwdenv=LVS_DB_PW"]
    p = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode == 0, p
    out = json.loads(p.stdout)
    assert out["state"] == "up"
    assert out["reason"] == f"logged in as {USER}"
    # a failing query that echoes the password: exit 2 (down), nothing secret printed
    p = subprocess.run(
        [*argv, f"request=SELECT * FROM app.`{PASSWORD}`", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert p.returncode == 2, p
    assert PASSWORD not in p.stdout + p.stderr
    assert json.loads(p.stdout)["state"] == "down"
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode == 0
    assert p.stdout.startswith("MYSQL OK - 127.0.0.1:")


def test_from_an_ldirectord_config(primary: MariaDB, replica: MariaDB, tmp_path: Path) -> None:
    cf = tmp_path / "ldirectord.cf"
    cf.write_text(
        "checktimeout=3\n"
        "virtual=10.0.0.1:3306\n"
        f"\treal=127.0.0.1:{primary.port} gate 100\n"
        f"\treal=127.0.0.1:{replica.port} gate 50\n"
        "\tservice=mysql\n"
        f'\tlogin="{USER}"\n'
        f'\tpasswd="{PASSWORD}"\n'
        '\tdatabase="app"\n'
        '\trequest="SELECT v FROM t"\n'
        '\treceive="alive"\n'
    )
    p = subprocess.run(
        [LVSCHECK, "run", "--config", str(cf), "--json"], capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 0, p
    assert PASSWORD not in p.stdout + p.stderr
    rows = json.loads(p.stdout)
    assert [(r["check"], r["state"], r["weight"]) for r in rows] == [
        ("mysql", "up", 100),
        ("mysql", "up", 50),
    ]


def test_tls_modes(primary: MariaDB, replica: MariaDB, check: Checks) -> None:
    assert primary.cafile is not None
    r = check("mysql", primary.port, sslmode="verify-full", cafile=primary.cafile, **LOGIN)
    assert r.state is State.UP, r.reason
    assert r.reason == f"logged in as {USER} over TLS"
    r = check("mysql", primary.port, sslmode="verify-full", **LOGIN)  # the test CA is not in the system store
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: "), r.reason
    r = check("mysql", primary.port, sslmode="require", request="SELECT 1", **LOGIN)
    assert r.state is State.UP, r.reason
    r = check("mysql", replica.port, sslmode="require", **LOGIN)  # started without a certificate
    assert r.state is State.DOWN
    assert r.reason == "sslmode=require: the server does not offer TLS"
    with pytest.raises(OptionError, match="cafile= is used with sslmode=verify-full only"):
        check("mysql", primary.port, cafile=primary.cafile, **LOGIN)


def test_empty_receive_is_no_receive(primary: MariaDB, check: Checks) -> None:
    # ldirectord.cf files often carry receive="" for every service: it means "no receive"
    r = check("mysql", primary.port, receive="", **LOGIN)
    assert (r.state, r.reason) == (State.UP, f"logged in as {USER}")
    r = check("mysql", primary.port, request="SELECT 1", receive="", **LOGIN)
    assert (r.state, r.reason) == (State.UP, f"logged in as {USER}; request returned 1 row")
