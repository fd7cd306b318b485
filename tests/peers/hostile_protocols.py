"""Hostile servers that speak just enough of a protocol to hurt its client: floods, huge lengths, odd auth.

Hand-written on purpose: no real server streams ParameterStatus for ever, announces
a 4 GiB LDAP message or asks for ``mysql_old_password`` on demand.  Each factory
returns a handler for :func:`tests.peers.hostile.serve` (its own thread and loop).
:data:`CATALOGUE` names every case with the check that meets it and the reason
expected; tests/checks/test_hostile_protocols.py runs them, and bench/soak_daemon.py
mixes some of them into a daemon's reals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.hostile import Handler, serve

__all__ = [
    "BY_NAME",
    "CATALOGUE",
    "CONTROL",
    "Case",
    "control_line",
    "endless",
    "endless_lines",
    "http_chunk_overflow",
    "ldap_bind_refused_with_control_bytes",
    "ldap_endless_entries",
    "ldap_huge_ber",
    "mysql_endless_continuation",
    "mysql_old_password",
    "pg_latin1_auth_error",
    "pg_notices_after_login",
    "pg_parameter_stream",
    "serving_elsewhere",
]

#: What a hostile server puts in its words: NUL, ESC (a terminal title and a screen clear), BEL, CR.
CONTROL = b"\x00\x1b]0;owned\x07\x1b[2J\rX"


async def _drain_forever(writer: asyncio.StreamWriter, chunk: bytes) -> None:
    while True:
        writer.write(chunk)
        await writer.drain()


def endless(chunk: bytes = b"", *, first: bytes = b"", wait_request: bool = False) -> Handler:
    """Send ``first``, then ``chunk`` (default: 64 KiB of pseudo-random bytes) as fast as the client reads."""
    data = chunk or os.urandom(65536)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if wait_request:
            await reader.read(65536)
        if first:
            writer.write(first)
        await _drain_forever(writer, data)

    return handler


def endless_lines() -> Handler:
    """Lines of control bytes, for ever (a line protocol's reader must bound lines and their number)."""
    return endless((b"220-" + CONTROL + b" hostile\r\n") * 2048)


def control_line(line: bytes, *, after_request: bool = False) -> Handler:
    """One line carrying :data:`CONTROL` (``line`` has ``{}`` where it goes), then silence."""
    data = line.replace(b"{}", CONTROL)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if after_request:
            await reader.read(65536)
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(3600)

    return handler


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


_PG_AUTH_OK = _pg(b"R", (0).to_bytes(4, "big"))


async def _pg_startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the StartupMessage, refusing SSLRequest/GSSENCRequest with 'N' on the way."""
    while True:
        size = int.from_bytes(await reader.readexactly(4), "big")
        body = await reader.readexactly(size - 4)
        if int.from_bytes(body[:4], "big") in (80877103, 80877104):
            writer.write(b"N")
            continue
        return


def pg_parameter_stream() -> Handler:
    """AuthenticationOk, then ParameterStatus messages for ever: the startup never ends."""
    frames = _pg(b"S", b"server_version\x0099.0 hostile\x00") * 4096

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _pg_startup(reader, writer)
        writer.write(_PG_AUTH_OK)
        await _drain_forever(writer, frames)

    return handler


def pg_latin1_auth_error() -> Handler:
    """A French server with lc_messages in Latin-1: its password failure is not UTF-8."""
    message = "authentification par mot de passe échouée pour l'utilisateur « lvs »".encode("latin-1")
    error = _pg(b"E", b"SFATAL\x00VFATAL\x00C28P01\x00M" + message + b"\x00\x00")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _pg_startup(reader, writer)
        writer.write(_pg(b"R", (3).to_bytes(4, "big")))  # AuthenticationCleartextPassword
        await reader.read(65536)  # the PasswordMessage
        writer.write(error)
        await writer.drain()
        writer.write_eof()  # as PostgreSQL does after a FATAL error
        await reader.read(65536)

    return handler


def pg_notices_after_login() -> Handler:
    """A complete startup (ReadyForQuery), then NoticeResponse messages for ever."""
    ready = _PG_AUTH_OK + _pg(b"S", b"server_version\x0016.0\x00") + _pg(b"K", b"\x00" * 8) + _pg(b"Z", b"I")
    notices = _pg(b"N", b"SNOTICE\x00C00000\x00M" + b"n" * 200 + b"\x00\x00") * 256

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _pg_startup(reader, writer)
        writer.write(ready)
        await reader.read(65536)  # the first query
        await _drain_forever(writer, notices)

    return handler


# -- MySQL -------------------------------------------------------------------------------------


def _my(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _my_greeting() -> bytes:
    caps = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000  # long password, with db, 4.1, secure, plugin auth
    payload = (
        b"\x0a5.5.5-hostile\x00"
        + (7).to_bytes(4, "little")
        + b"abcdefgh\x00"
        + (caps & 0xFFFF).to_bytes(2, "little")
        + b"\x21\x02\x00"
        + (caps >> 16).to_bytes(2, "little")
        + bytes([21])
        + b"\x00" * 10
        + b"ijklmnopqrst\x00mysql_native_password\x00"
    )
    return _my(0, payload)


def mysql_old_password() -> Handler:
    """A greeting, then an AuthSwitchRequest to the pre-4.1 ``mysql_old_password``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_my_greeting())
        await reader.read(65536)  # the handshake response (seq 1)
        writer.write(_my(2, b"\xfemysql_old_password\x00abcdefgh\x00"))
        await writer.drain()
        await asyncio.sleep(3600)

    return handler


def mysql_endless_continuation() -> Handler:
    """Packets of 0xffffff bytes (each announces one more to follow), for ever."""
    body = b"\x00" * 0xFFFFFF

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seq = 0
        while True:
            writer.write(b"\xff\xff\xff" + bytes([seq]))
            writer.write(body)
            await writer.drain()
            seq = (seq + 1) % 256

    return handler


# -- LDAP --------------------------------------------------------------------------------------


async def _ldap_request(reader: asyncio.StreamReader) -> int:
    """Read one LDAP message; its message id (small ids only: ldap3 counts from 1)."""
    head = await reader.readexactly(2)
    length = head[1]
    if length & 0x80:
        length = int.from_bytes(await reader.readexactly(length & 0x7F), "big")
    body = await reader.readexactly(length)
    return body[2]  # 02 01 <id>


def _ldap(message_id: int, op: bytes) -> bytes:
    body = b"\x02\x01" + bytes([message_id]) + op
    return b"\x30" + bytes([len(body)]) + body


def _bind_response(message_id: int, code: int = 0, diagnostic: bytes = b"") -> bytes:
    inner = b"\x0a\x01" + bytes([code]) + b"\x04\x00\x04" + bytes([len(diagnostic)]) + diagnostic
    return _ldap(message_id, b"\x61" + bytes([len(inner)]) + inner)


def ldap_huge_ber() -> Handler:
    """Answers the bind with a message announcing 4 GiB (BER length 0x84 ffffffff), then streams."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _ldap_request(reader)
        writer.write(b"\x30\x84\xff\xff\xff\xff")
        await _drain_forever(writer, b"\x00" * 65536)

    return handler


def ldap_endless_entries() -> Handler:
    """A successful bind, then SearchResultEntry messages for ever (size limit 2 ignored)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_bind_response(await _ldap_request(reader)))
        search = await _ldap_request(reader)
        entry = b"\x04\x07cn=evil\x30\x00"
        await _drain_forever(writer, _ldap(search, b"\x64" + bytes([len(entry)]) + entry) * 4096)

    return handler


def ldap_bind_refused_with_control_bytes() -> Handler:
    """invalidCredentials (49) with a diagnostic message full of control bytes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_bind_response(await _ldap_request(reader), 49, b"no " + CONTROL))
        await writer.drain()
        await asyncio.sleep(3600)

    return handler


# -- HTTP --------------------------------------------------------------------------------------


def http_chunk_overflow() -> Handler:
    """A chunked 200 whose first chunk size does not fit 64 bits."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    return control_line(head + b"ffffffffffffffffffffffff\r\n", after_request=True)


# -- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile behaviour against one check: the reason must match ``reason`` (a regex, searched)."""

    name: str
    check: str
    server: Callable[[], Handler]
    reason: str
    options: dict[str, str] = field(default_factory=dict)


_DB = {"login": "lvs", "passwd": "hostile-pw"}

CATALOGUE: tuple[Case, ...] = (
    Case(
        "pg-parameter-stream",
        "pgsql",
        pg_parameter_stream,
        r"no PostgreSQL handshake .*: (more than 256 messages|\d+ messages and more than 64 KiB)",
        {**_DB, "sslmode": "disable"},
    ),
    Case(
        "pg-latin1-auth-error",
        "pgsql",
        pg_latin1_auth_error,
        r"authentication failed: authentification par mot de passe échouée .*\(SQLSTATE 28P01\)",
        {**_DB, "sslmode": "disable"},
    ),
    Case(
        "pg-notices-after-login",
        "pgsql",
        pg_notices_after_login,
        r"the server sent more than 64 notices, notifications or parameter changes",
        {**_DB, "sslmode": "disable", "role": "primary"},
    ),
    Case(
        "mysql-endless-continuation",
        "mysql",
        mysql_endless_continuation,
        r"the server sent more than 8 MiB \(a packet of 16777215 bytes announced",
        _DB,
    ),
    Case("mysql-old-password", "mysql", mysql_old_password, r"asks for mysql_old_password", _DB),
    Case(
        "ldap-huge-ber",
        "ldap",
        ldap_huge_ber,
        r"announced an LDAP message of 4294967295 bytes",
        _DB | {"login": "cn=lvs"},
    ),
    Case(
        "ldap-endless-entries",
        "ldap",
        ldap_endless_entries,
        r"the server sent more than 64 LDAP messages \(the limit for one check\)",
    ),
    Case(
        "ldap-control-bytes",
        "ldap",
        ldap_bind_refused_with_control_bytes,
        r"authentication failed: .*no \\x00\\x1b\]0;owned\\x07\\x1b\[2J\\rX",
        _DB | {"login": "cn=lvs"},
    ),
    Case(
        "http-chunk-overflow",
        "http",
        http_chunk_overflow,
        r"not a valid HTTP response body \(Chunk size overflow\) after the headers of HTTP 200",
    ),
    Case(
        "http-endless-body",
        "http",
        lambda: endless(b"x" * 65536, first=b"HTTP/1.1 200 OK\r\n\r\n", wait_request=True),
        r"'Still alive' not found in the first 64 KiB of the body",
        {"receive": "Still alive"},
    ),
    Case(
        "smtp-control-bytes",
        "smtp",
        lambda: control_line(b"554 go away {}\r\n"),
        r"SMTP banner is not 220: 554 go away \\x00\\x1b\]0;owned\\x07\\x1b\[2J X",  # (CR: a blank)
    ),
    Case(
        "smtp-endless-banner",
        "smtp",
        endless_lines,
        r"not a valid SMTP reply waiting for the banner: Response too long",
    ),
    Case("ftp-control-bytes", "ftp", lambda: control_line(b"421 busy {}\r\n"), r"421 busy \\x00\\x1b"),
    Case("pop-control-bytes", "pop", lambda: control_line(b"-ERR busy {}\r\n"), r"-ERR busy \\x00\\x1b"),
    Case("imap-control-bytes", "imap", lambda: control_line(b"* BYE busy {}\r\n"), r"BYE busy \\x00\\x1b"),
    Case("nntp-control-bytes", "nntp", lambda: control_line(b"502 busy {}\r\n"), r"502 busy \\x00\\x1b"),
)


BY_NAME = {case.name: case for case in CATALOGUE}


@contextlib.contextmanager
def serving_elsewhere(names: Sequence[str], copies: int = 1) -> Iterator[dict[str, list[int]]]:
    """Serve catalogue cases from a child process (its own GIL, as a remote server would be).

    Yields ``{case name: [port, ...]}`` (``copies`` listeners per case); the child
    stops when the block ends.
    """
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "tests.peers.hostile_protocols", f"--copies={copies}", *names]
    proc = subprocess.Popen(argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the hostile servers did not start: {argv}")
        yield json.loads(line)
    finally:
        proc.stdin.close()  # the child's signal to stop
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _main(argv: Sequence[str]) -> None:
    copies = 1
    names = []
    for arg in argv:
        if arg.startswith("--copies="):
            copies = int(arg.removeprefix("--copies="))
        else:
            names.append(arg)
    with contextlib.ExitStack() as stack:
        ports = {
            name: [stack.enter_context(serve(BY_NAME[name].server())) for _ in range(copies)]
            for name in names
        }
        print(json.dumps(ports), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    _main(sys.argv[1:])
