"""``pgsql``: log in to PostgreSQL, optionally run a query, check the role, weight from replay lag.

The dialogue (asyncpg, imported inside the probe): startup and authentication
as ``login`` to ``database``; then, only when asked for, one state query
(``role=`` or ``weightmode=lag``, see :data:`STATE_QUERY`), the ``request``
statement (extended protocol, unnamed statement: nothing is left prepared on
the server, so it works through pgbouncer), and a Terminate message before the
socket is closed.  One deadline covers it all.

docs/checks/pgsql.md has the options, the exact statements and the weight rules.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from lvscheck.checks._db import (
    LAG_OPTIONS,
    PASSWORD_OPTIONS,
    REQUEST_OPTIONS,
    LagRule,
    lag_outcome,
    parse_role,
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

__all__ = ["STATE_QUERY", "PgsqlCheck"]

#: Role and replay lag in one round trip.  The lag is 0 on a primary and on a
#: standby that has replayed all it received; NULL when the standby has no WAL
#: receiver (replication stopped or never connected: "unknown", the lagnull
#: rule) or has replayed nothing yet; otherwise the age of the last replayed
#: transaction.  pg_stat_wal_receiver shows its row (pid) to every role.
STATE_QUERY = """\
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
            WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
            ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS receiving"""

_AUTH_STATES = frozenset({"28P01", "28000"})  # invalid_password, invalid_authorization_specification


_parse_weightmode = parse_choice("none", "lag")
_parse_sslmode = parse_choice("disable", "prefer", "require", "verify-full")


class PgsqlCheck(Check):
    name = "pgsql"
    requires = ("asyncpg",)
    summary = "PostgreSQL login, optional query and receive; role match and standby replay lag as weight"
    default_port = 5432
    options = (
        Option("login", "role (user) to log in as (required, as in ldirectord)"),
        *PASSWORD_OPTIONS,
        Option("database", "database to connect to (default: the login name, as libpq does)"),
        *REQUEST_OPTIONS,
        Option("role", "required role: primary, standby (pg_is_in_recovery()) or any", "any", parse_role),
        Option("weightmode", "none or lag (standby replay lag -> weight)", "none", _parse_weightmode),
        *LAG_OPTIONS,
        Option(
            "sslmode",
            "disable, prefer (TLS if offered, unverified: libpq's default), require (unverified) "
            "or verify-full (CA and name checked)",
            "prefer",
            _parse_sslmode,
        ),
        Option("cafile", "sslmode=verify-full: PEM file of CAs to trust instead of the system store"),
    )

    def setup(self) -> None:
        opts = self.opts
        self.login: str | None = opts["login"]
        if not self.login:
            raise OptionError(f"check type {self.name!r} needs login=USER (the role to log in as)")
        self.password = read_password(self.name, opts)
        if self.password:
            self.keep_secret(self.password)
        self.database: str = opts["database"] or self.login
        self.request, self.receive = request_options(self.name, opts)
        self.role: str = opts["role"]
        self.weightmode: str = opts["weightmode"]
        self.lag_rule = LagRule.from_opts(self.name, opts)
        sslmode: str = opts["sslmode"]
        self.ssl: str | bool | ssl.SSLContext
        if sslmode == "verify-full":
            try:
                self.ssl = client_context(True, opts["cafile"])
            except (OSError, ssl.SSLError) as exc:
                raise OptionError(f"cafile={opts['cafile']!r} cannot be loaded: {exc}") from None
        else:
            if opts["cafile"]:
                raise OptionError("cafile= is used with sslmode=verify-full only")
            self.ssl = False if sslmode == "disable" else sslmode
        self.sslmode = sslmode

    def describe(self) -> str:
        return f"{self.name} {self.login}@{self.spec.target.host}:{self.port}/{self.database}"

    async def probe(self, probe: Probe) -> Outcome:
        import asyncpg

        from lvscheck.checks import _pgguard

        _pgguard.install()  # frames checked and counted before asyncpg parses them
        with _pgguard.watching() as report:
            try:
                return await self._dialogue(probe, asyncpg)
            except Exception:
                if report.refused is not None:  # the guard cut the connection: its reason
                    if report.in_startup:
                        why = report.refused
                        raise CheckFailed(f"no PostgreSQL handshake {probe.phase}: {why}") from None
                    raise CheckFailed(f"{report.refused} {probe.phase}") from None
                if report.error is not None:  # the server's own ErrorResponse (asyncpg cannot decode Latin-1)
                    raise _failure_text(*report.error, login=True) from None
                raise

    async def _dialogue(self, probe: Probe, asyncpg: Any) -> Outcome:
        probe.phase = f"connecting to {probe.host}:{probe.port} and logging in"
        conn: Any = None
        try:
            try:
                conn = await asyncpg.connect(
                    host=probe.host,
                    port=probe.port,
                    user=self.login,
                    password=self.password,
                    database=self.database,
                    # asyncpg's own limit stays behind ours, so our deadline (and phase) decides
                    timeout=probe.remaining() + 1.0,
                    ssl=self.ssl,
                    statement_cache_size=0,  # unnamed statements only (pgbouncer-safe, nothing left behind)
                    server_settings={"application_name": "lvscheck"},
                )
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) == "08003":  # the connection went away in the handshake
                    raise CheckFailed(
                        f"no PostgreSQL handshake {probe.phase}: the connection was closed "
                        "(not a PostgreSQL server, or it dropped the connection)"
                    ) from None
                raise _failure(exc, login=True) from None
            except asyncpg.InterfaceError as exc:
                raise CheckFailed(f"PostgreSQL client error {probe.phase}: {exc}") from None
            except ConnectionError as exc:
                if type(exc) is not ConnectionError:
                    raise  # refused, reset, ...: the runner words them
                # asyncpg's own: "rejected SSL upgrade", "unexpected connection_lost() call"
                raise CheckFailed(f"no PostgreSQL handshake {probe.phase}: {exc}") from None
            notes = [f"logged in as {self.login} to {self.database}"]
            try:
                lag: float | None = 0.0
                why = ""
                standby = False
                if self.role != "any" or self.weightmode == "lag":
                    probe.phase = "waiting for the role and replay lag"
                    row = await conn.fetchrow(STATE_QUERY)
                    standby = bool(row["standby"])
                    actual = "standby" if standby else "primary"
                    if self.role not in ("any", actual):
                        raise CheckFailed(
                            f"role {actual} (pg_is_in_recovery()={'true' if row['standby'] else 'false'}), "
                            f"role={self.role} wanted"
                        )
                    notes.append(f"role {actual}")
                    lag = row["lag"]
                    if lag is None:
                        why = (
                            "no WAL receiver: replication stopped or not connected"
                            if not row["receiving"]
                            else "nothing replayed yet"
                        )
                if self.request is not None:
                    probe.phase = "waiting for the result of the request"
                    notes.append(await self._run_request(conn))
            except asyncpg.PostgresError as exc:
                raise _failure(exc, login=False) from None
            except asyncpg.InterfaceError as exc:  # e.g. the connection dropped mid-query
                raise CheckFailed(f"PostgreSQL connection failed {probe.phase}: {exc}") from None
            if self.weightmode == "lag" and not standby:
                outcome = Outcome.up("; ".join([*notes, "not a standby: no replay lag"]), lag=0.0)
            elif self.weightmode == "lag":
                outcome = lag_outcome(self.lag_rule, lag, self.spec.target.weight, "; ".join(notes), why)
            else:
                outcome = Outcome.up("; ".join(notes))
            probe.phase = "closing"
            await conn.close(timeout=max(0.1, probe.remaining()))  # Terminate, then close
            return outcome
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()

    async def _run_request(self, conn: Any) -> str:
        assert self.request is not None
        rows = await conn.fetch(self.request)
        return request_note(self.request, self.receive, rows)  # a Record iterates over its values


def _failure(exc: Any, *, login: bool) -> CheckFailed:
    state = getattr(exc, "sqlstate", None) or "?"
    message = getattr(exc, "message", None) or str(exc)
    return _failure_text(state, message, login=login)


def _failure_text(state: str, message: str, *, login: bool) -> CheckFailed:
    if state in _AUTH_STATES:
        return CheckFailed(f"authentication failed: {message} (SQLSTATE {state})")
    what = "login failed" if login else "PostgreSQL error"
    return CheckFailed(f"{what}: {message} (SQLSTATE {state})")


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(PgsqlCheck)
