"""The redis check against Debian's real redis-server, and a few hostile fake servers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import lvscheck_redis
import pytest
from lvscheck_redis.protocol import encode_command

import lvscheck
from conftest import RedisServer, StartRedis, free_port
from lvscheck import CheckSpec, OptionError, PluginHost, Result, State, Target

pytestmark = pytest.mark.peer


def check(port: int, **options: str) -> Result:
    """Run one redis check against 127.0.0.1:port and return its result."""
    [result] = lvscheck.run_checks([CheckSpec("redis", Target("127.0.0.1", port), options)])
    return result


@pytest.fixture(scope="module")
def master(start_redis: StartRedis) -> RedisServer:
    # Redis 7 waits 5 s for more replicas before a diskless full sync; we have one.
    return start_redis("--repl-diskless-sync-delay", "0")


@pytest.fixture(scope="module")
def replica(start_redis: StartRedis, master: RedisServer) -> RedisServer:
    server = start_redis("--replicaof", "127.0.0.1", str(master.port))
    server.wait_for("replication", "master_link_status:up")
    return server


@pytest.fixture(scope="module")
def orphan(start_redis: StartRedis) -> RedisServer:
    """A replica whose master does not exist: its link stays down."""
    return start_redis("--replicaof", "127.0.0.1", str(free_port()))


@pytest.fixture(scope="module")
def locked(start_redis: StartRedis) -> RedisServer:
    """Password for the default user, plus an ACL user alice."""
    return start_redis("--requirepass", "s3cret word", "--user", "alice", "on", ">alicepw", "~*", "+@all")


# -- the plain dialogue ------------------------------------------------------------------


def test_ping_pong_is_up(master: RedisServer) -> None:
    result = check(master.port)
    assert (result.state, result.reason, result.weight) == (State.UP, "PONG", 1)


def test_nothing_listening_is_down() -> None:
    result = check(free_port())
    assert (result.state, result.reason) == (State.DOWN, "connection refused")


# -- replication role --------------------------------------------------------------------


def test_master_has_role_master(master: RedisServer) -> None:
    result = check(master.port, role="master")
    assert (result.state, result.reason) == (State.UP, "PONG, role master")
    assert result.details == {"role": "master"}


def test_master_is_not_a_replica(master: RedisServer) -> None:
    result = check(master.port, role="replica")
    assert (result.state, result.reason) == (State.DOWN, "role is master, expected replica")


def test_replica_has_role_replica(replica: RedisServer) -> None:
    assert check(replica.port, role="replica").state is State.UP
    assert check(replica.port, role="slave").state is State.UP


def test_replica_is_not_a_master(replica: RedisServer) -> None:
    result = check(replica.port, role="master")
    assert (result.state, result.reason) == (State.DOWN, "role is replica, expected master")


def test_replica_without_its_master_is_down(orphan: RedisServer) -> None:
    result = check(orphan.port, role="replica")
    assert result.state is State.DOWN
    assert "replica's link to its master 127.0.0.1:" in result.reason
    assert result.reason.endswith(" is down")
    # Without role= the same server still answers PING: only role= looks at replication.
    assert check(orphan.port).state is State.UP


# -- AUTH --------------------------------------------------------------------------------


def test_no_password_gets_noauth(locked: RedisServer) -> None:
    result = check(locked.port)
    assert (result.state, result.reason) == (State.DOWN, "PING refused: NOAUTH Authentication required.")


def test_password_with_a_space(locked: RedisServer) -> None:
    assert check(locked.port, passwd="s3cret word").state is State.UP


def test_acl_user(locked: RedisServer) -> None:
    assert check(locked.port, login="alice", passwd="alicepw", role="master").state is State.UP


@pytest.mark.parametrize(("login", "passwd"), [("", "wrong-pw"), ("alice", "s3cret word")])
def test_wrong_password_is_down_and_not_shown(locked: RedisServer, login: str, passwd: str) -> None:
    options = {"passwd": passwd} | ({"login": login} if login else {})
    result = check(locked.port, **options)
    assert result.state is State.DOWN
    assert result.reason.startswith("AUTH refused: WRONGPASS")
    assert passwd not in repr(result)


def test_password_not_in_cli_json(locked: RedisServer) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvscheck",
            "run",
            "--json",
            "redis",
            f"127.0.0.1:{locked.port}",
            "passwd=wrong-pw",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert '"state": "down"' in out.stdout
    assert "wrong-pw" not in out.stdout + out.stderr


# -- options -----------------------------------------------------------------------------


def test_login_needs_passwd() -> None:
    with pytest.raises(OptionError, match="login= needs passwd="):
        lvscheck.run_checks([CheckSpec("redis", Target("127.0.0.1"), {"login": "alice"})])


def test_bad_role_names_what_is_accepted() -> None:
    with pytest.raises(OptionError, match=r"role='boss' is not valid: expected master or replica"):
        lvscheck.run_checks([CheckSpec("redis", Target("127.0.0.1"), {"role": "boss"})])


def test_default_port_is_6379() -> None:
    host = PluginHost(entry_points=False, plugins=[lvscheck_redis])
    prepared = host.check_type("redis").prepare(CheckSpec("redis", Target("127.0.0.1")))
    assert prepared.port == 6379


# -- hostile servers (hand-written: no real Redis misbehaves like this on purpose) ----------


@pytest.fixture
def fake_server() -> Iterator[tuple[socket.socket, int]]:
    """A listening socket; the test decides what the accepted connection gets."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv, srv.getsockname()[1]


def _answer_once(srv: socket.socket, reply: bytes) -> threading.Thread:
    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(reply)
            time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_stalled_server_times_out_naming_the_pong(fake_server: tuple[socket.socket, int]) -> None:
    _, port = fake_server  # the kernel accepts the connection; nobody ever answers
    started = time.monotonic()
    result = check(port, negotiatetimeout="0.3")
    assert time.monotonic() - started < 2.0  # 0.3 s deadline, plus interpreter noise on a busy CI host
    assert (result.state, result.reason) == (State.DOWN, "timed out after 0.3 s waiting for the PONG")


def test_http_server_is_not_redis(fake_server: tuple[socket.socket, int]) -> None:
    srv, port = fake_server
    _answer_once(srv, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    result = check(port)
    assert (result.state, result.reason) == (State.DOWN, "not a Redis reply: 'HTTP/1.1 400 Bad Request'")


def test_closed_mid_reply(fake_server: tuple[socket.socket, int]) -> None:
    srv, port = fake_server

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"+PO")

    threading.Thread(target=serve, daemon=True).start()
    result = check(port)
    assert result.state is State.DOWN
    assert result.reason == "connection closed by the server waiting for the PONG"


def test_huge_bulk_reply_is_refused(fake_server: tuple[socket.socket, int]) -> None:
    srv, port = fake_server
    _answer_once(srv, b"+PONG\r\n$999999999\r\n")
    result = check(port, role="master")
    assert result.state is State.DOWN
    assert "larger than the 1048576 bytes we read" in result.reason


def test_command_encoding() -> None:
    assert encode_command("AUTH", "a b") == b"*2\r\n$4\r\nAUTH\r\n$3\r\na b\r\n"


# -- packaging: the plugin is found the way lvscheck finds any plugin --------------------------


def test_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    [ep] = [ep for ep in entry_points(group="lvscheck") if ep.name == "redis"]
    assert ep.value == "lvscheck_redis"
    assert PluginHost().check_type("redis") is lvscheck_redis.RedisCheck


def test_protocol_module_is_imported_only_when_a_check_runs() -> None:
    code = (
        "import sys, lvscheck\n"
        "host = lvscheck.PluginHost()\n"
        "host.load_entry_points()\n"
        "assert 'lvscheck_redis' in sys.modules\n"
        "print('lvscheck_redis.protocol' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
