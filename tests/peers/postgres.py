"""PostgreSQL 15 on 127.0.0.1 for the ``pgsql`` check: a primary and a streaming standby.

Recipe: ../shared/reference/test-peers.md section 1.  ``initdb`` refuses root, so
every server process runs as the ``postgres`` user (``Popen(user=...)``); the
data dirs live in a temp dir postgres can traverse.  The standby is a
``pg_basebackup -R`` copy of the primary (``standby.signal`` and
``primary_conninfo`` written by pg_basebackup).  Admin statements go through
asyncpg as the ``postgres`` superuser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.peers import Server, free_port, own_tmpdir, require_binary, spawn, wait_for_port

__all__ = [
    "PASSWORD",
    "SUPER_PASSWORD",
    "USER",
    "Postgres",
    "primary_and_standby",
    "single_server",
    "wait_replayed",
]

BIN = Path("/usr/lib/postgresql/15/bin")
SUPER_PASSWORD = "pgsuper-9c1e"
USER, PASSWORD = "lvs", "lvs-pg-S3cr3t!"


@dataclass
class Postgres:
    server: Server
    port: int
    datadir: Path
    cafile: Path | None = None  # the test CA, when the server speaks TLS

    def sql(self, statement: str, database: str = "postgres") -> list[Any]:
        async def go() -> list[Any]:
            import asyncpg

            conn = await asyncpg.connect(
                host="127.0.0.1",
                port=self.port,
                user="postgres",
                password=SUPER_PASSWORD,
                database=database,
                ssl=False,
            )
            try:
                return [tuple(r) for r in await conn.fetch(statement)]
            finally:
                await conn.close()

        return asyncio.run(go())


def _as_postgres(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv, user="postgres", group="postgres", extra_groups=[], check=True, capture_output=True, **kw
    )


@contextlib.contextmanager
def _postmaster(datadir: Path, port: int, sockdir: Path, extra: tuple[str, ...] = ()) -> Iterator[Postgres]:
    log = open(datadir.parent / f"log-{port}.txt", "wb")  # noqa: SIM115 - closed below
    proc = spawn(
        [
            str(BIN / "postgres"),
            "-D",
            str(datadir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(sockdir),
            "-c",
            "fsync=off",
            "-c",
            "wal_level=replica",
            "-c",
            "max_wal_senders=4",
            "-c",
            "wal_receiver_status_interval=1",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        user="postgres",
        group="postgres",
        extra_groups=[],
    )
    server = Server(proc, port, datadir, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown
    try:
        try:
            wait_for_port(port, proc=proc)
        except RuntimeError as exc:
            log.flush()
            raise RuntimeError(f"{exc}: {(datadir.parent / f'log-{port}.txt').read_text()[-2000:]}") from None
        yield Postgres(server, port, datadir, sockdir / "ca.pem" if extra else None)
    finally:
        server.stop()
        log.close()


def _wait_sql(db: Postgres, timeout: float = 20.0) -> None:
    """The port opens before the server accepts logins (startup, recovery)."""
    end = time.monotonic() + timeout
    while True:
        try:
            db.sql("SELECT 1")
            return
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _initdb(base: Path, name: str) -> Path:
    """A fresh cluster in ``base/name`` (superuser password ``SUPER_PASSWORD``, scram-sha-256)."""
    require_binary(str(BIN / "initdb"))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    pwfile = base / "pw"
    pwfile.write_text(SUPER_PASSWORD + "\n")
    shutil.chown(pwfile, "postgres", "postgres")
    datadir = base / name
    _as_postgres(
        [
            str(BIN / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    return datadir


def _setup(primary: Postgres) -> None:
    primary.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    primary.sql("CREATE DATABASE app")
    primary.sql("CREATE TABLE t (id serial PRIMARY KEY, v text)", "app")
    primary.sql("INSERT INTO t (v) VALUES ('alive'), ('second')", "app")
    primary.sql("CREATE TABLE empty (id int)", "app")
    primary.sql(f"GRANT SELECT ON t, empty TO {USER}", "app")


def _tls_settings(base: Path) -> tuple[str, ...]:
    """A server certificate for 127.0.0.1/localhost from a trustme CA (``base/ca.pem``)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "server.crt"))
    cert.private_key_pem.write_to_path(str(base / "server.key"))
    for name in ("server.crt", "server.key"):
        shutil.chown(base / name, "postgres", "postgres")
    os.chmod(base / "server.key", 0o600)
    return (
        "-c",
        "ssl=on",
        "-c",
        f"ssl_cert_file={base / 'server.crt'}",
        "-c",
        f"ssl_key_file={base / 'server.key'}",
    )


@contextlib.contextmanager
def single_server() -> Iterator[Postgres]:
    """One primary with user ``lvs`` and table app.t (no standby)."""
    base = own_tmpdir("pg", written_by_others=True)
    try:
        datadir = _initdb(base, "single")
        with _postmaster(datadir, free_port(), base) as server:
            _wait_sql(server)
            _setup(server)
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def primary_and_standby() -> Iterator[tuple[Postgres, Postgres]]:
    """A primary (TLS on, test CA) with user ``lvs`` and table app.t, and a hot standby streaming from it."""
    base = own_tmpdir("pg", written_by_others=True)
    try:
        primary_dir, standby_dir = _initdb(base, "primary"), base / "standby"
        p_port, s_port = free_port(), free_port()
        with _postmaster(primary_dir, p_port, base, _tls_settings(base)) as primary:
            _wait_sql(primary)
            _setup(primary)
            _as_postgres(
                [
                    str(BIN / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(p_port),
                    "-U",
                    "postgres",
                    "-D",
                    str(standby_dir),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                    "--checkpoint=fast",
                ],
                env={**os.environ, "PGPASSWORD": SUPER_PASSWORD},
            )
            with _postmaster(standby_dir, s_port, base) as standby:
                _wait_sql(standby)
                yield primary, standby
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_replayed(primary: Postgres, standby: Postgres, timeout: float = 20.0) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    lsn = primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")[0][0]:
            return
        time.sleep(0.05)
    raise RuntimeError(f"standby did not replay up to {lsn} in {timeout} s")
