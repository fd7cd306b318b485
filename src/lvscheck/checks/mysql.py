"""``mysql``: log in to MySQL/MariaDB, optionally run a query, and derive a weight from its state.

The dialogue (aiomysql, imported inside the probe): the MySQL handshake and
login as ``login`` (with ``database`` as the default schema), then, in this
order and only when asked for: ``SELECT @@global.read_only`` (``role=``), the
``request`` statement, ``SHOW REPLICA STATUS`` (``weightmode=lag``; ``SHOW SLAVE
STATUS`` on servers too old for it) or ``SHOW GLOBAL STATUS LIKE
'wsrep_local_state%'`` (``weightmode=galera``), and always COM_QUIT before the
socket is closed, so the server counts neither an aborted connect nor an
aborted client (ldirectord's half-open handshakes are what make MySQL block a
director host after ``max_connect_errors``).  One deadline covers it all.

docs/checks/mysql.md has the options, the exact statements and the weight rules.
"""

from __future__ import annotations

import ssl
import struct
from typing import TYPE_CHECKING, Any

from lvscheck.checks._db import (
    LAG_OPTIONS,
    PASSWORD_OPTIONS,
    REQUEST_OPTIONS,
    LagRule,
    lag_outcome,
    parse_role,
    parse_verdict,
    read_password,
    request_note,
    request_options,
)
from lvscheck.checks.tls import client_context
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_choice

if TYPE_CHECKING:
    from lvscheck.plugin.probe import Probe
    from lvscheck.plugin.registry import CheckRegistry

__all__ = ["MysqlCheck"]

#: A COM_QUIT packet: length 1, sequence 0, command 0x01.
_COM_QUIT = b"\x01\x00\x00\x00\x01"

_GALERA_STATES = {
    "1": "Joining",
    "2": "Donor/Desynced",
    "3": "Joined",
    "4": "Synced",
}

#: MySQL client error codes (CR_*) and server error codes (ER_*) we explain.
_CR_CONN_HOST_ERROR = 2003
_CR_SERVER_LOST = 2013
_AUTH_ERRORS = frozenset({1045, 1698, 1251})  # access denied, access denied (plugin), auth method
_ER_PARSE_ERROR = 1064
#: What PyMySQL's packet parsing raises on bytes that are not MySQL protocol.
_GARBAGE = (struct.error, IndexError, KeyError, ValueError, UnicodeError)
_NOT_A_REPLICA = "not a replica (replica status is empty): no replication lag"
#: Bytes a server may send over one check's connection (PyMySQL buffers a whole result, and a
#: packet of 0xffffff bytes announces a continuation: endless ones grew to 631 MB in 2 s).
MAX_BYTES = 8 * 1024 * 1024
_OLD_PASSWORD = (
    "the server asks for mysql_old_password (the pre-4.1 password hash), which the driver "
    "does not speak: give the account a mysql_native_password or caching_sha2_password password"
)


_parse_weightmode = parse_choice("none", "lag", "galera")
_parse_sslmode = parse_choice("disable", "require", "verify-full")


class MysqlCheck(Check):
    name = "mysql"
    requires = ("aiomysql",)
    summary = "MySQL/MariaDB login, optional query and receive; weight from replication lag or Galera state"
    default_port = 3306
    options = (
        Option("login", "user name to log in as (required, as in ldirectord)"),
        *PASSWORD_OPTIONS,
        Option("database", "default database (schema) to select at login"),
        *REQUEST_OPTIONS,
        Option(
            "role", "required role: primary (read_only=OFF), standby (read_only=ON) or any", "any", parse_role
        ),
        Option(
            "weightmode",
            "none, lag (replication lag -> weight) or galera (wsrep_local_state)",
            "none",
            _parse_weightmode,
        ),
        *LAG_OPTIONS,
        Option(
            "sslmode",
            "disable, require (TLS, unverified) or verify-full (TLS, CA and name checked)",
            "disable",
            _parse_sslmode,
        ),
        Option("cafile", "sslmode=verify-full: PEM file of CAs to trust instead of the system store"),
        Option(
            "donor",
            "weightmode=galera: verdict for a Donor/Desynced node: down, up or degraded (weight 1)",
            "down",
            parse_verdict,
        ),
    )

    def setup(self) -> None:
        opts = self.opts
        self.login: str | None = opts["login"]
        if not self.login:
            raise OptionError(f"check type {self.name!r} needs login=USER (the account to log in as)")
        self.password = read_password(self.name, opts)
        if self.password:
            self.keep_secret(self.password)
        self.database: str | None = opts["database"] or None
        self.request, self.receive = request_options(self.name, opts)
        self.role: str = opts["role"]
        self.weightmode: str = opts["weightmode"]
        self.lag_rule = LagRule.from_opts(self.name, opts)
        self.donor: str = opts["donor"]
        self._lag_statement = "SHOW REPLICA STATUS"
        self.sslmode: str = opts["sslmode"]
        self.ssl_context: ssl.SSLContext | None = None
        if self.sslmode != "verify-full" and opts["cafile"]:
            raise OptionError("cafile= is used with sslmode=verify-full only")
        if self.sslmode != "disable":
            try:
                self.ssl_context = client_context(self.sslmode == "verify-full", opts["cafile"])
            except (OSError, ssl.SSLError) as exc:
                raise OptionError(f"cafile={opts['cafile']!r} cannot be loaded: {exc}") from None

    def describe(self) -> str:
        return f"{self.name} {self.login}@{self.spec.target.host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        import aiomysql

        where = f"{probe.host}:{probe.port}"
        probe.phase = f"connecting to {where} and logging in"
        conn: Any = None
        try:
            try:
                conn = _budget_class()(
                    host=probe.host,
                    port=probe.port,
                    user=self.login,
                    password=self.password or "",
                    db=self.database,
                    connect_timeout=min(probe.connect_timeout, probe.remaining()),
                    autocommit=True,  # the server's default: no SET AUTOCOMMIT round trip
                    program_name="lvscheck",
                    ssl=self.ssl_context,
                )
                await conn._connect()  # what aiomysql.connect() does, with our Connection class
            except aiomysql.MySQLError as exc:
                raise self._failure(exc, probe, login=True) from None
            except AttributeError as exc:  # PyMySQL 1.x dropped the pre-4.1 scramble but still calls it
                if "scramble_old_password" in str(exc):
                    raise CheckFailed(_OLD_PASSWORD) from None
                raise
            except _GARBAGE as exc:  # the peer does not speak MySQL: the driver trips over its bytes
                raise CheckFailed(f"no MySQL handshake {probe.phase}: {type(exc).__name__}: {exc}") from None
            if self.ssl_context is not None and not getattr(conn, "_secure", False):
                # aiomysql goes on in plain text when the server does not offer TLS
                raise CheckFailed(f"sslmode={self.sslmode}: the server does not offer TLS")
            notes = [f"logged in as {self.login}" + (" over TLS" if self.ssl_context is not None else "")]
            try:
                if self.role != "any":
                    probe.phase = "waiting for the read_only role"
                    notes.append(await self._check_role(conn))
                if self.request is not None:
                    probe.phase = "waiting for the result of the request"
                    notes.append(await self._run_request(conn))
                if self.weightmode == "lag":
                    probe.phase = "waiting for the replica status"
                    lag, why = await self._replica_lag(conn)
                    if why == _NOT_A_REPLICA:
                        outcome = Outcome.up("; ".join([*notes, why]), lag=0.0)
                    else:
                        outcome = lag_outcome(
                            self.lag_rule, lag, self.spec.target.weight, "; ".join(notes), why
                        )
                elif self.weightmode == "galera":
                    probe.phase = "waiting for the Galera status"
                    outcome = await self._galera(conn, "; ".join(notes))
                else:
                    outcome = Outcome.up("; ".join(notes))
            except aiomysql.MySQLError as exc:
                raise self._failure(exc, probe, login=False) from None
            except _GARBAGE as exc:
                raise CheckFailed(
                    f"MySQL protocol error {probe.phase}: {type(exc).__name__}: {exc}"
                ) from None
            probe.phase = "closing"
            await conn.ensure_closed()  # COM_QUIT, then close
            return outcome
        finally:
            if conn is not None:
                _quit(conn)

    # -- steps ---------------------------------------------------------------------------

    async def _query(self, conn: Any, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = await conn.cursor()
        try:
            await cur.execute(statement)
            rows = list(await cur.fetchall())
            columns = [d[0] for d in cur.description or ()]
            while await cur.nextset():  # drain a multi-statement request before COM_QUIT
                pass
        finally:
            await cur.close()
        return columns, rows

    async def _check_role(self, conn: Any) -> str:
        _, rows = await self._query(conn, "SELECT @@global.read_only")
        read_only = bool(rows and str(rows[0][0]) not in ("0", "OFF"))
        actual = "standby" if read_only else "primary"
        shown = f"read_only={'ON' if read_only else 'OFF'}"
        if actual != self.role:
            raise CheckFailed(f"role {actual} ({shown}), role={self.role} wanted")
        return f"role {actual} ({shown})"

    async def _run_request(self, conn: Any) -> str:
        assert self.request is not None
        _, rows = await self._query(conn, self.request)
        return request_note(self.request, self.receive, rows)

    async def _replica_lag(self, conn: Any) -> tuple[float | None, str]:
        """Seconds behind the source (max over replication channels), or None and why."""
        import aiomysql

        try:
            columns, rows = await self._query(conn, self._lag_statement)
        except aiomysql.ProgrammingError as exc:
            if exc.args[0] != _ER_PARSE_ERROR or self._lag_statement == "SHOW SLAVE STATUS":
                raise
            self._lag_statement = "SHOW SLAVE STATUS"  # MySQL < 8.0.22, MariaDB < 10.5.1
            columns, rows = await self._query(conn, self._lag_statement)
        if not rows:
            return 0.0, _NOT_A_REPLICA  # no lag (role=standby rules primaries out)
        index = {name.lower(): i for i, name in enumerate(columns)}
        lag_col = index.get("seconds_behind_source", index.get("seconds_behind_master"))
        if lag_col is None:
            raise CheckFailed(f"{self._lag_statement} has no Seconds_Behind_Source/Master column")
        worst = 0.0
        for row in rows:
            value = row[lag_col]
            if value is None:
                running = [
                    f"{columns[i]}={row[i]}"
                    for name in (
                        "replica_io_running",
                        "slave_io_running",
                        "replica_sql_running",
                        "slave_sql_running",
                    )
                    if (i := index.get(name)) is not None
                ]
                return None, ", ".join(running) or "Seconds_Behind_Master is NULL"
            worst = max(worst, float(value))
        return worst, ""

    async def _galera(self, conn: Any, note: str) -> Outcome:
        _, rows = await self._query(conn, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state%'")
        status = {str(name).lower(): str(value) for name, value in rows}
        state = status.get("wsrep_local_state")
        if state is None:
            return Outcome.down(f"{note}; not a Galera node: no wsrep_local_state")
        label = status.get("wsrep_local_state_comment") or _GALERA_STATES.get(state, "unknown")
        text = f"{note}; Galera wsrep_local_state {state} ({label})"
        if state == "4":
            return Outcome.up(text, wsrep_local_state=4)
        if state == "2" and self.donor != "down":
            if self.donor == "up":
                return Outcome.up(f"{text}; donor=up", wsrep_local_state=2)
            return Outcome.degraded(
                f"{text}; donor=degraded", weight=min(1, self.spec.target.weight), wsrep_local_state=2
            )
        return Outcome.down(text, wsrep_local_state=int(state) if state.isdigit() else state)

    def _failure(self, exc: Any, probe: Probe, *, login: bool) -> BaseException:
        """Turn a PyMySQL/aiomysql error into what the runner reports."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        cause = exc.__cause__
        if isinstance(cause, CheckFailed):
            return cause  # our byte budget, or the old password scheme, during the handshake
        if isinstance(cause, AttributeError) and "scramble_old_password" in str(cause):
            return CheckFailed(_OLD_PASSWORD)
        if code == _CR_CONN_HOST_ERROR:
            if isinstance(cause, TimeoutError):
                return CheckFailed(
                    f"connect to {probe.host}:{probe.port} timed out after {probe.connect_timeout:g} s"
                )
            if isinstance(cause, OSError):
                return cause  # ConnectionRefusedError and friends: the runner words them
            return CheckFailed(f"cannot connect: {message}")
        if code == _CR_SERVER_LOST:
            return CheckFailed(f"connection closed by the server {probe.phase}: {message}")
        if code in _AUTH_ERRORS:
            return CheckFailed(f"authentication failed: ({code}) {message}")
        if code is None:
            return CheckFailed(f"MySQL protocol error {probe.phase}: {message}")
        what = "login failed" if login else "MySQL error"
        return CheckFailed(f"{what}: ({code}) {message}")


_budget: Any = None


def _budget_class() -> Any:
    """aiomysql's ``Connection`` that refuses to read more than :data:`MAX_BYTES` (built once)."""
    global _budget
    if _budget is None:
        import aiomysql

        class BudgetConnection(aiomysql.Connection):  # type: ignore[misc]
            _lvs_read = 0

            async def _read_bytes(self, num_bytes: int) -> bytes:
                self._lvs_read += num_bytes
                if self._lvs_read > MAX_BYTES:
                    self.close()
                    raise CheckFailed(
                        f"the server sent more than {MAX_BYTES // (1024 * 1024)} MiB "
                        f"(a packet of {num_bytes} bytes announced; the limit for one check)"
                    )
                data: bytes = await super()._read_bytes(num_bytes)
                return data

        _budget = BudgetConnection
    return _budget


def _quit(conn: Any) -> None:
    """Send COM_QUIT (if the connection is still open) and close, without awaiting."""
    writer = getattr(conn, "_writer", None)  # aiomysql keeps it private; None once closed
    if writer is None:
        return
    try:
        writer.write(_COM_QUIT)
    finally:
        conn.close()  # transport.close(): flushes the 5 bytes, then FIN


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(MysqlCheck)
