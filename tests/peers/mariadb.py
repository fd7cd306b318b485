"""MariaDB servers on 127.0.0.1 for the ``mysql`` check: a primary, a replica, a Galera node.

Recipe: ../shared/reference/test-peers.md section 1.  ``mariadb-install-db`` runs once
per test session into a template data dir (1.3 s); each server starts on a copy.
The replica replicates from the primary over 127.0.0.1 with GTID, so everything
created on the primary (users, the test table) reaches it.  Admin statements go
through PyMySQL (the synchronous driver aiomysql is built on) as root over TCP.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.peers import Server, free_port, own_tmpdir, require_binary, running

__all__ = [
    "ROOT_PASSWORD",
    "MariaDB",
    "galera_node",
    "primary_and_replica",
    "single_server",
    "sql",
    "wait_replicated",
]

ROOT_PASSWORD = "rootpw-7f3a"
USER, PASSWORD = "lvs", "lvspw-S3cr3t!"

_GALERA_PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/galera-4/libgalera_smm.so")

#: The buffer pool, and the most it may grow to: MariaDB 10.11.19 reserves address space for
#: ``innodb_buffer_pool_size_max`` (8 TiB by default), which the UML guest of the IPVS tests
#: cannot map ("InnoDB: Cannot map innodb_buffer_pool_size_max"); 32M starts everywhere.
_INNODB = ("--innodb-buffer-pool-size=16M", "--innodb-buffer-pool-size-max=32M")

_template: Path | None = None


def _template_dir() -> Path:
    """A freshly installed data dir, made once per session and copied for each server."""
    global _template
    if _template is None:
        installer = require_binary("mariadb-install-db", "mysql_install_db")
        require_binary("mariadbd", "/usr/sbin/mariadbd")
        base = own_tmpdir("mariadb-template")
        done = subprocess.run(
            [
                installer,
                "--no-defaults",
                f"--datadir={base / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *_INNODB,
            ],
            capture_output=True,
        )
        if done.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{installer} exited with {done.returncode}:\n{output}")
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _template = base / "data"
    return _template


@dataclass
class MariaDB:
    server: Server
    port: int
    workdir: Path
    cafile: Path | None = None  # the test CA, when the server speaks TLS

    def connect(self, **kw: Any) -> Any:
        import pymysql

        args: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "password": ROOT_PASSWORD,
            "autocommit": True,
            "connect_timeout": 5,
        }
        args.update(kw)
        return pymysql.connect(**args)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return sql(self, statement)

    def status(self, name: str) -> int:
        rows = self.sql(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(rows[0][1])


def sql(db: MariaDB, statement: str) -> list[tuple[Any, ...]]:
    """Run one statement as root; return its rows."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return list(cur.fetchall())
    finally:
        conn.close()


def _tls_options(workdir: Path) -> list[str]:
    """A server certificate for 127.0.0.1/localhost from a trustme CA (``workdir/ca.pem``)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "server.crt"))
    cert.private_key_pem.write_to_path(str(workdir / "server.key"))
    return [
        f"--ssl-ca={workdir / 'ca.pem'}",
        f"--ssl-cert={workdir / 'server.crt'}",
        f"--ssl-key={workdir / 'server.key'}",
    ]


@contextlib.contextmanager
def _mariadbd(
    name: str, extra: list[str], *, root_password: bool = False, tls: bool = False
) -> Iterator[MariaDB]:
    template = _template_dir()
    workdir = own_tmpdir(f"mariadb-{name}")
    try:
        with _mariadbd_in(workdir, template, extra, root_password=root_password, tls=tls) as db:
            yield db
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _mariadbd_in(
    workdir: Path, template: Path, extra: list[str], *, root_password: bool, tls: bool
) -> Iterator[MariaDB]:
    shutil.copytree(template, workdir / "data")
    if tls:
        extra = [*extra, *_tls_options(workdir)]
    port = free_port()
    argv = [
        shutil.which("mariadbd") or "/usr/sbin/mariadbd",
        "--no-defaults",
        f"--datadir={workdir / 'data'}",
        f"--socket={workdir / 'mysql.sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={workdir / 'mysqld.pid'}",
        f"--log-error={workdir / 'err.log'}",
        "--user=root",
        *_INNODB,
        *extra,
    ]
    with running(argv, port, workdir) as server:
        db = MariaDB(server, port, workdir, workdir / "ca.pem" if tls else None)
        if root_password:
            _set_root_password(port)
        yield db


def _set_root_password(port: int, timeout: float = 30.0) -> None:
    """Give root its password, once the server takes statements.

    A Galera node opens its port before wsrep is ready and answers error 1047
    ("WSREP has not yet prepared node for application use") until it is.
    """
    import pymysql

    end = time.monotonic() + timeout
    while True:
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT Host FROM mysql.user WHERE User = 'root'")
                for (host,) in cur.fetchall():
                    cur.execute(f"ALTER USER 'root'@'{host}' IDENTIFIED BY '{ROOT_PASSWORD}'")
            return
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1047 or time.monotonic() > end:
                raise
            time.sleep(0.1)
        finally:
            conn.close()


def _setup_primary(db: MariaDB) -> None:
    for statement in (
        f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
        "CREATE DATABASE app",
        "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(40))",
        "INSERT INTO app.t (v) VALUES ('alive'), ('second')",
        "CREATE TABLE app.empty (id INT)",
        f"GRANT SELECT ON app.* TO '{USER}'@'%'",
        f"GRANT SLAVE MONITOR ON *.* TO '{USER}'@'%'",
        "CREATE USER 'repl'@'%' IDENTIFIED BY 'replpw'",
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
    ):
        db.sql(statement)


@contextlib.contextmanager
def single_server() -> Iterator[MariaDB]:
    """One server (no binlog) with user ``lvs`` and table app.t."""
    with _mariadbd("single", ["--server-id=1", "--skip-log-bin"], root_password=True) as db:
        _setup_primary(db)
        yield db


@contextlib.contextmanager
def primary_and_replica() -> Iterator[tuple[MariaDB, MariaDB]]:
    """A primary (server-id 1, binlog, TLS from a test CA) and its GTID replica; users and app.t on both."""
    with (
        _mariadbd(
            "primary",
            ["--server-id=1", "--log-bin=binlog", "--binlog-format=MIXED"],
            root_password=True,
            tls=True,
        ) as primary,
        _mariadbd(
            "replica", ["--server-id=2", "--skip-log-bin", "--read-only=1"], root_password=True
        ) as replica,
    ):
        _setup_primary(primary)
        replica.sql(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
            "MASTER_USER='repl', MASTER_PASSWORD='replpw', MASTER_USE_GTID=slave_pos, "
            "MASTER_CONNECT_RETRY=1"
        )
        replica.sql("START SLAVE")
        wait_replicated(primary, replica)
        yield primary, replica


def wait_replicated(primary: MariaDB, replica: MariaDB, timeout: float = 20.0) -> None:
    """Until the replica has applied everything the primary has binlogged."""
    target = primary.sql("SELECT @@global.gtid_binlog_pos")[0][0]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = replica.sql(f"SELECT MASTER_GTID_WAIT('{target}', 0.2)")
        if rows[0][0] == 0:
            return
    raise RuntimeError(f"replica did not reach GTID {target} in {timeout} s")


@contextlib.contextmanager
def galera_node() -> Iterator[MariaDB]:
    """A one-node Galera cluster (bootstrapped with gcomm://): wsrep_local_state 4 (Synced)."""
    provider = next((p for p in _GALERA_PROVIDERS if Path(p).exists()), None)
    if provider is None:
        pytest.skip("galera-4 is not installed (.ci/run installs it)")
    gcomm, ist = free_port(), free_port()
    with _mariadbd(
        "galera",
        [
            "--server-id=3",
            "--log-bin=binlog",
            "--binlog-format=ROW",
            "--wsrep-on=ON",
            f"--wsrep-provider={provider}",
            "--wsrep-cluster-address=gcomm://",
            "--wsrep-node-address=127.0.0.1",
            "--wsrep-sst-method=rsync",
            f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{gcomm};ist.recv_addr=127.0.0.1:{ist}",
        ],
        root_password=True,
    ) as node:
        end = time.monotonic() + 30
        while True:
            status = dict(
                node.sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')")
            )
            if status.get("wsrep_ready") == "ON" and status.get("wsrep_local_state") == "4":
                break
            if time.monotonic() > end:
                log = (node.workdir / "err.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the Galera node is not ready after 30 s: {status}; err.log:\n{log}")
            time.sleep(0.1)
        node.sql(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
        yield node
