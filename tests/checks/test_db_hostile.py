"""mysql, pgsql and ldap against hostile peers: garbage, an immediate close, an endless stream.

A hand-written server on 127.0.0.1 (no real MySQL/PostgreSQL/slapd misbehaves
on demand like this).  Whatever comes back, each check must end down with a
reason about the protocol, never "internal error", and within its deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

import lvscheck
from lvscheck import CheckSpec, State, Target

PAYLOADS = {
    "http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "short-mysql-like": b"\x05\x00\x00\x00\x0a5.5\x00\x01",
    "close": b"",
    "ff": b"\xff" * 200,
    "zeros": b"\x00" * 4096,
}

OPTIONS = {
    "mysql": {"login": "lvs", "passwd": "hostile-pw"},
    "pgsql": {"login": "lvs", "passwd": "hostile-pw", "sslmode": "disable"},
    "pgsql-prefer": {"login": "lvs", "passwd": "hostile-pw"},
    "ldap": {"login": "cn=x", "passwd": "hostile-pw"},
}


@contextlib.contextmanager
def hostile(payload: bytes, endless: bool = False) -> Iterator[int]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(0.1)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                conn.sendall(payload)
                while endless and not stop.is_set():
                    conn.sendall(payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        srv.close()


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_garbage_is_a_clean_down(kind: str, payload: str) -> None:
    check = kind.split("-")[0]
    with hostile(PAYLOADS[payload]) as port:
        spec = CheckSpec(check, Target("127.0.0.1", port), {**OPTIONS[kind], "checktimeout": "2"})
        [r] = lvscheck.run_checks([spec])
    assert r.state is State.DOWN
    assert "internal error" not in r.reason, r.reason
    assert "hostile-pw" not in r.reason
    assert r.latency < 2.5


def test_zero_length_frames_cannot_freeze_the_event_loop() -> None:
    """asyncpg spins forever inside data_received on a frame length below 4 (_pgguard.py).

    Without the guard this test never ends: the loop is stuck in one callback, so
    neither the check's deadline nor anything else runs again.
    """
    with hostile(b"\x00" * 64) as port:
        spec = CheckSpec("pgsql", Target("127.0.0.1", port), {**OPTIONS["pgsql"], "checktimeout": "1"})
        [r] = lvscheck.run_checks([spec])
    assert r.state is State.DOWN
    assert r.reason.startswith("no PostgreSQL handshake "), r.reason
    assert r.latency < 0.5


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_endless_stream_ends_at_the_deadline(kind: str) -> None:
    check = kind.split("-")[0]
    with hostile(b"\x00" * 65536, endless=True) as port:
        spec = CheckSpec(check, Target("127.0.0.1", port), {**OPTIONS[kind], "checktimeout": "1"})
        [r] = lvscheck.run_checks([spec])
    assert r.state is State.DOWN
    assert "internal error" not in r.reason, r.reason
    assert r.latency < 1.5
