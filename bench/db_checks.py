"""1,000 MySQL and 1,000 PostgreSQL checks (and LDAP) against one local server each, 32 at a time.

Starts the test peers (tests/peers/mariadb.py, postgres.py, slapd.py) on
127.0.0.1, then for each check configuration runs N checks through
``Engine(max_in_flight=C, per_host=C).run_many`` and reports:

* wall time and checks per second;
* director-side CPU per check: ``time.process_time()`` of this process only
  (the servers' CPU is not counted), compared with the bare driver doing the
  same dialogue in a loop under the same semaphore (the driver's own floor);
* MySQL's own counters ``Aborted_connects`` and ``Aborted_clients`` before and
  after (they must not grow: every check completes the handshake and sends
  COM_QUIT) and ``Connections`` (it must grow by N);
* (PostgreSQL has no such counter: a client gone without Terminate is logged at
  DEBUG1 only.  The check closes with asyncpg's ``close()``, which sends it.)

    .venv/bin/python bench/db_checks.py [-n 1000] [--concurrency 32] [--no-ldap]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.mariadb import PASSWORD as MY_PW
from tests.peers.mariadb import USER as MY_USER
from tests.peers.mariadb import MariaDB, primary_and_replica
from tests.peers.postgres import PASSWORD as PG_PW
from tests.peers.postgres import USER as PG_USER
from tests.peers.postgres import primary_and_standby
from tests.peers.slapd import BIND_DN, BIND_PASSWORD, start_slapd

from lvscheck import CheckSpec, Engine, State, Target


async def engine_round(
    check: str, port: int, options: dict[str, str], n: int, conc: int
) -> tuple[float, float, int]:
    engine = Engine(max_in_flight=conc, per_host=conc)
    prepared = engine.prepare(CheckSpec(check, Target("127.0.0.1", port, weight=10), options))
    cpu, wall = time.process_time(), time.perf_counter()
    results = await engine.run_many([prepared] * n)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bad = [r.reason for r in results if r.state is not State.UP]
    if bad:
        print(f"    {len(bad)} not up, e.g. {bad[0]}")
    return wall, cpu, n - len(bad)


async def bare_round(one: Callable[[], Awaitable[None]], n: int, conc: int) -> tuple[float, float]:
    sem = asyncio.Semaphore(conc)

    async def guarded() -> None:
        async with sem:
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(n)))
    return time.perf_counter() - wall, time.process_time() - cpu


def line(label: str, n: int, wall: float, cpu: float, extra: str = "") -> None:
    print(
        f"  {label:<44} {n:>5} checks  {wall:6.2f} s  {n / wall:7.0f}/s  "
        f"CPU {1000 * cpu / n:6.3f} ms/check{extra}"
    )


def counters(db: MariaDB) -> list[int]:
    """Aborted_connects, Aborted_clients, Connections: one root connection, one statement."""
    rows = dict(
        db.sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Aborted_connects', 'Aborted_clients', 'Connections')"
        )
    )
    return [int(rows[k]) for k in ("Aborted_connects", "Aborted_clients", "Connections")]


def mysql_part(n: int, conc: int) -> None:
    import aiomysql

    with primary_and_replica() as (db, _replica):
        db.sql("SET GLOBAL max_connections = 500")
        print(f"MariaDB {db.sql('SELECT VERSION()')[0][0]} on 127.0.0.1:{db.port}")
        login = {"login": MY_USER, "passwd": MY_PW}
        for label, options in (
            ("mysql login only", login),
            (
                "mysql request=SELECT v FROM app.t receive=^alive",
                {**login, "request": "SELECT v FROM app.t", "receive": "^alive"},
            ),
            ("mysql weightmode=lag role=primary", {**login, "weightmode": "lag", "role": "primary"}),
        ):
            before = counters(db)
            wall, cpu, ok = asyncio.run(engine_round("mysql", db.port, options, n, conc))
            time.sleep(0.2)
            after = counters(db)
            delta = [a - b for a, b in zip(after, before, strict=True)]
            line(label, n, wall, cpu, f"  up {ok}")
            print(
                f"    server: Aborted_connects {before[0]} -> {after[0]}, "
                f"Aborted_clients {before[1]} -> {after[1]}, "
                f"Connections +{delta[2] - 1}"  # -1: the connection that read these counters
            )

        async def bare_login() -> None:
            conn = await aiomysql.connect(
                host="127.0.0.1", port=db.port, user=MY_USER, password=MY_PW, autocommit=True
            )
            await conn.ensure_closed()

        wall, cpu = asyncio.run(bare_round(bare_login, n, conc))
        line("bare aiomysql connect + COM_QUIT (floor)", n, wall, cpu)

        # Controls: the counters do count what ldirectord-style clients leave behind.
        async def half_open() -> None:  # TCP connect, close before the handshake (a connect check)
            _reader, writer = await asyncio.open_connection("127.0.0.1", db.port)
            writer.close()
            await writer.wait_closed()

        async def no_quit() -> None:  # log in, drop the socket without COM_QUIT
            conn = await aiomysql.connect(
                host="127.0.0.1", port=db.port, user=MY_USER, password=MY_PW, autocommit=True
            )
            conn.close()

        for label, one in (
            ("control: 20 half-open connects", half_open),
            ("control: 20 logins without COM_QUIT", no_quit),
        ):
            before = counters(db)
            asyncio.run(bare_round(one, 20, conc))
            time.sleep(0.5)
            after = counters(db)
            print(
                f"  {label:<44} Aborted_connects {before[0]} -> {after[0]}, "
                f"Aborted_clients {before[1]} -> {after[1]}"
            )


def pgsql_part(n: int, conc: int) -> None:
    import asyncpg

    with primary_and_standby() as (db, _standby):
        print(
            f"PostgreSQL {db.sql('SHOW server_version')[0][0]} on 127.0.0.1:{db.port} "
            "(scram-sha-256, TLS offered)"
        )
        login = {"login": PG_USER, "passwd": PG_PW, "database": "app", "sslmode": "disable"}
        for label, options in (
            ("pgsql login only (sslmode=disable)", login),
            (
                "pgsql request=SELECT v FROM t receive=^alive",
                {**login, "request": "SELECT v FROM t", "receive": "^alive"},
            ),
            ("pgsql weightmode=lag role=primary", {**login, "weightmode": "lag", "role": "primary"}),
            ("pgsql login only (sslmode=prefer: TLS, unverified)", {**login, "sslmode": "prefer"}),
            (
                "pgsql login only (sslmode=verify-full)",
                {**login, "sslmode": "verify-full", "cafile": str(db.cafile)},
            ),
        ):
            wall, cpu, ok = asyncio.run(engine_round("pgsql", db.port, options, n, conc))
            line(label, n, wall, cpu, f"  up {ok}")

        async def bare_login() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1",
                port=db.port,
                user=PG_USER,
                password=PG_PW,
                database="app",
                ssl=False,
                statement_cache_size=0,
            )
            await conn.close()

        wall, cpu = asyncio.run(bare_round(bare_login, n, conc))
        line("bare asyncpg connect + Terminate (floor)", n, wall, cpu)


def ldap_part(n: int, conc: int) -> None:
    with start_slapd() as server:
        print(f"slapd on 127.0.0.1:{server.port} (ldap3 in {8} worker threads)")
        bind = {"login": BIND_DN, "passwd": BIND_PASSWORD}
        for label, options in (
            ("ldap anonymous, root DSE", {}),
            ("ldap simple bind, root DSE", bind),
            (
                "ldap StartTLS (verified) + simple bind",
                {**bind, "starttls": "yes", "cafile": str(server.cafile)},
            ),
        ):
            wall, cpu, ok = asyncio.run(engine_round("ldap", server.port, options, n, conc))
            line(label, n, wall, cpu, f"  up {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-ldap", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    mysql_part(args.n, args.concurrency)
    pgsql_part(args.n, args.concurrency)
    if not args.no_ldap:
        ldap_part(args.n, args.concurrency)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
