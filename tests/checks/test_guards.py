"""The PostgreSQL and LDAP frame guards on their own: any split of the input, linear cost, the limits.

Byte streams are written here by hand (the guards only read headers); the same
guards against real servers: test_pgsql.py and test_ldap.py.
"""

from __future__ import annotations

import time

import pytest

from lvscheck.checks import _berguard, _pgguard


def pg(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


STARTUP = (
    pg(b"R", b"\x00\x00\x00\x00")
    + b"".join(pg(b"S", f"p{i}\x00v{i}\x00".encode()) for i in range(15))
    + pg(b"K", b"\x00" * 8)
    + pg(b"Z", b"I")
)
SESSION = (
    pg(b"T", b"\x00\x00")
    + pg(b"D", b"\x00\x01\x00\x00\x00\x01x") * 3
    + pg(b"C", b"SELECT 3\x00")
    + pg(b"Z", b"I")
)


@pytest.mark.parametrize("step", [1, 2, 5, 7, 64, 100_000])
def test_pg_walk_accepts_a_real_exchange_split_anywhere(step: int) -> None:
    frames = _pgguard._Frames()
    data = STARTUP + SESSION
    assert all(frames.feed(data[i : i + step]) for i in range(0, len(data), step))
    assert not frames.startup
    assert frames.refused is None


def test_pg_walk_refuses_an_endless_startup_and_costs_little() -> None:
    frames = _pgguard._Frames()
    stream = pg(b"R", b"\x00\x00\x00\x00") + pg(b"S", b"server_version\x0099\x00") * 100_000
    t0 = time.process_time()
    ok = True
    for i in range(0, len(stream), 65536):
        ok = frames.feed(stream[i : i + 65536])
        if not ok:
            break
    assert not ok
    assert frames.refused == "more than 256 messages without finishing the startup (ReadyForQuery)"
    assert time.process_time() - t0 < 0.05  # (before: asyncpg parsed the stream for the whole deadline)


def test_pg_walk_refuses_short_lengths_and_notice_floods() -> None:
    frames = _pgguard._Frames()
    assert not frames.feed(b"\x00" * 64)
    assert frames.refused == "a malformed frame (type b'\\x00', length 0)"
    frames = _pgguard._Frames()
    assert frames.feed(STARTUP)
    notices = pg(b"N", b"SNOTICE\x00Mhi\x00\x00") * 65
    assert not frames.feed(notices)
    assert "more than 64 notices" in str(frames.refused)


def test_pg_walk_keeps_a_latin1_error_response() -> None:
    frames = _pgguard._Frames()
    body = b"SFATAL\x00C28P01\x00M\xe9chec\x00\x00"
    data = pg(b"R", b"\x00\x00\x00\x03") + pg(b"E", body)
    for i in range(len(data)):
        frames.feed(data[i : i + 1])
    assert frames.errors == [body]
    assert _pgguard.error_fields(body) == ("28P01", "échec")


def ber(body: bytes) -> bytes:
    return b"\x30" + bytes([len(body)]) + body


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_ber_walk_accepts_ldap_messages_split_anywhere(step: int) -> None:
    walk = _berguard._Walk()
    data = ber(b"\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00") * 3 + b"\x30\x82\x01\x00" + b"x" * 256
    for i in range(0, len(data), step):
        walk.feed(data[i : i + step])
    assert walk.messages == 4
    assert walk.skip == 0


def test_ber_walk_refuses_huge_lengths_garbage_and_floods() -> None:
    with pytest.raises(_berguard.Refused, match="announced an LDAP message of 4294967295 bytes"):
        _berguard._Walk().feed(b"\x30\x84\xff\xff\xff\xff")
    with pytest.raises(_berguard.Refused, match="first byte 0x48"):
        _berguard._Walk().feed(b"HTTP/1.1 400\r\n")
    with pytest.raises(_berguard.Refused, match="more than 64 LDAP messages"):
        _berguard._Walk().feed(ber(b"\x02\x01\x02\x64\x00") * 65)
