"""lvscheck decides as Debian's real ldirectord for mysql, pgsql, smtp, imap, pop and nntp (IPVS guest).

As tests/config/test_ldirectord_verdicts.py (http/https) and
test_ldirectord_verdicts_services.py (ldap, radius), through tests/config/_ldcompare.py:
one virtual per scenario; Debian's ldirectord 4.12 programs the kernel table, ``lvscheck
run --config`` runs the same files against the same servers. For every scenario the two
verdicts are equal, or the scenario names the documented difference (docs/migration.md)
and ``check-config`` warns at that virtual. ftp, dns, sip, simpletcp, http_proxy, ping
and external: test_ldirectord_verdicts_more.py (the other guest of .ci/run).

Real servers (tests/peers/): MariaDB, PostgreSQL, exim, dovecot (IMAP and POP3), INN
nnrpd; the imap reals are TCP forwarders (socat) on port 143 of their own loopback
address, since ldirectord's imap check connects to port 143 whatever the real's port (a
documented difference, one scenario). A "wrong answer" is the server giving an answer
the check must refuse: an empty table, or another real protocol's server on the port
(INN where SMTP is expected, exim where IMAP is, dovecot's POP3 where NNTP is). Hand-
written fault servers (tests/peers/hostile.py) only where no real server does it on
demand: one that accepts and never answers (a stalled server), and for pop one that says
``-ERR`` and closes (a real server of another protocol would hold ldirectord's pop check
for ever, see below).

A stalled database, or a stalled POP3 server, holds ldirectord for ever: its SQL check
has no timeout and its pop check none after the connect. That is shown apart
(the last test), with the real servers SIGSTOPped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.config._ldcompare import (
    CHECK_STARTS,
    TIMEOUT,
    Scenario,
    clear_table,
    compare,
    first_round_done,
    header,
    lvscheck_verdicts,
)
from tests.peers import Server, free_port, require_binary, spawn, wait_for_port
from tests.peers import mariadb as peer_mariadb
from tests.peers import postgres as peer_postgres
from tests.peers.dovecot import PASSWORD as MAIL_PASSWORD
from tests.peers.dovecot import USER as MAIL_USER
from tests.peers.dovecot import start_dovecot
from tests.peers.exim import start_exim
from tests.peers.hostile import paused, script, serve, stall
from tests.peers.inn import start_inn
from tests.peers.ldirectord import ipvs_weights, running_ldirectord

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]


def _db(service: str, user: str, password: str) -> str:
    return f'service={service}\nlogin="{user}"\npasswd="{password}"\ndatabase="app"'


MYSQL = _db("mysql", peer_mariadb.USER, peer_mariadb.PASSWORD)
PGSQL = _db("pgsql", peer_postgres.USER, peer_postgres.PASSWORD)
POP = f'service=pop\nlogin="{MAIL_USER}"'
IMAP = f'service=imap\nlogin="{MAIL_USER}"'

SCENARIOS = (
    Scenario("mysql healthy", "mysql", "3306", f'{MYSQL}\nrequest="SELECT v FROM t"', "up"),
    Scenario("mysql empty table", "mysql", "3306", f'{MYSQL}\nrequest="SELECT id FROM empty"', "down"),
    Scenario(
        "mysql wrong password",
        "mysql",
        "3306",
        MYSQL.replace(peer_mariadb.PASSWORD, "wrong") + '\nrequest="SELECT v FROM t"',
        "down",
    ),
    Scenario(
        "mysql missing database",
        "mysql",
        "3306",
        MYSQL.replace('"app"', '"nothere"') + '\nrequest="SELECT 1"',
        "down",
    ),
    Scenario(
        "mysql receive not matched",
        "mysql",
        "3306",
        f'{MYSQL}\nrequest="SELECT v FROM t"\nreceive="nomatch"',
        "up",
        differs="ldirectord ignores receive= for SQL; lvscheck matches it (check-config names it)",
    ),
    Scenario("pgsql healthy", "pgsql", "5432", f'{PGSQL}\nrequest="SELECT v FROM t"', "up"),
    Scenario("pgsql empty table", "pgsql", "5432", f'{PGSQL}\nrequest="SELECT id FROM empty"', "down"),
    Scenario(
        "pgsql wrong password",
        "pgsql",
        "5432",
        PGSQL.replace(peer_postgres.PASSWORD, "wrong") + '\nrequest="SELECT v FROM t"',
        "down",
    ),
    Scenario(
        "pgsql missing database",
        "pgsql",
        "5432",
        PGSQL.replace('"app"', '"nothere"') + '\nrequest="SELECT 1"',
        "down",
    ),
    Scenario(
        "pgsql receive not matched",
        "pgsql",
        "5432",
        f'{PGSQL}\nrequest="SELECT v FROM t"\nreceive="nomatch"',
        "up",
        differs="ldirectord ignores receive= for SQL; lvscheck matches it (check-config names it)",
    ),
    Scenario("smtp healthy", "smtp", "25", "service=smtp", "up"),
    Scenario("smtp wrong answer (an NNTP server)", "nntp", "25", "service=smtp", "down"),
    Scenario("smtp login ignored", "smtp", "25", 'service=smtp\nlogin="nobody"\npasswd="wrong"', "up"),
    Scenario("smtp stalled", "stall", "25", "service=smtp", "down"),
    Scenario("imap healthy", "imap", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "up"),
    Scenario("imap greeting only", "imap", "143", "service=imap", "up"),
    Scenario(
        "imap wrong answer (an SMTP server)", "imap-smtp", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "down"
    ),
    Scenario("imap wrong password", "imap", "143", f'{IMAP}\npasswd="wrong"', "down"),
    Scenario("imap stalled", "imap-stall", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "down"),
    Scenario(
        "imap: an SMTP server on the real's own port",
        "smtp",
        "143",
        f'{IMAP}\npasswd="{MAIL_PASSWORD}"',
        "up",
        differs="ldirectord's imap check connects to port 143 (dovecot here) whatever the real's port",
    ),
    Scenario("pop healthy", "pop", "110", f'{POP}\npasswd="{MAIL_PASSWORD}"', "up"),
    Scenario("pop wrong answer (-ERR)", "poperr", "110", f'{POP}\npasswd="{MAIL_PASSWORD}"', "down"),
    Scenario("pop wrong password", "pop", "110", f'{POP}\npasswd="wrong"', "down"),
    Scenario(
        "pop without login, closed port",
        "closed",
        "110",
        "service=pop",
        "up",
        differs="without login= ldirectord's pop check cannot fail; lvscheck needs the greeting",
    ),
    Scenario("nntp healthy", "nntp", "119", "service=nntp", "up"),
    Scenario("nntp wrong answer (a POP server)", "pop", "119", "service=nntp", "down"),
    Scenario("nntp login ignored", "nntp", "119", 'service=nntp\nlogin="nobody"\npasswd="wrong"', "up"),
    Scenario("nntp stalled", "stall", "119", "service=nntp", "down"),
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp
    # Both servers start at once (they mostly wait on hostfs and child processes).  The
    # databases stop before the pool's threads end: a server started from a thread gets
    # the kernel's parent-death signal when that thread ends (tests/peers.spawn).
    with ThreadPoolExecutor(2) as starting, contextlib.ExitStack() as databases:
        mysql_started = starting.submit(databases.enter_context, peer_mariadb.single_server())
        pgsql_started = starting.submit(databases.enter_context, peer_postgres.single_server())
        mysql, pgsql = mysql_started.result(), pgsql_started.result()
        yield from _the_others(tmp, mysql, pgsql)


def _the_others(
    tmp: Callable[[str], Path], mysql: peer_mariadb.MariaDB, pgsql: peer_postgres.Postgres
) -> Iterator[dict[str, object]]:
    with (
        start_exim(tmp("exim")) as exim,
        start_dovecot(tmp("dovecot")) as dovecot,
        start_inn(tmp("inn")) as inn,
        serve(stall) as stall_port,
        _forwarding("127.0.0.1", 143, dovecot.imap_port, tmp("fwd1")),
        _forwarding("127.0.0.2", 143, exim.plain_port, tmp("fwd2")),
        _forwarding("127.0.0.3", 143, stall_port, tmp("fwd3")),
        serve(script(b"-ERR not a POP3 server\r\n", then="close")) as poperr_port,
    ):
        yield {
            "ports": {
                "mysql": mysql.port,
                "pgsql": pgsql.port,
                "smtp": exim.plain_port,
                # ldirectord's imap check connects to port 143 whatever the real's port: imap
                # reals are on port 143 of their own loopback address (TCP forwarders, socat)
                "imap": "127.0.0.1:143",
                "imap-smtp": "127.0.0.2:143",
                "imap-stall": "127.0.0.3:143",
                "pop": dovecot.pop_port,
                "nntp": inn.port,
                "stall": stall_port,
                "poperr": poperr_port,
                "closed": free_port(),  # nothing listens there
            },
            "mysql": mysql,
            "pgsql": pgsql,
            "dovecot": dovecot,
        }


@contextlib.contextmanager
def _forwarding(host: str, port: int, to: int, workdir: Path) -> Iterator[None]:
    """socat relaying ``host:port`` to ``127.0.0.1:to`` (the guest owns all of 127.0.0.0/8 and its ports)."""
    socat = require_binary("socat")
    argv = [socat, f"TCP-LISTEN:{port},bind={host},fork,reuseaddr", f"TCP:127.0.0.1:{to}"]
    with open(workdir / "socat.log", "wb") as log:
        server = Server(spawn(argv, stdout=log, stderr=log), port, workdir)
        try:
            wait_for_port(port, host=host, proc=server.proc)
            yield
        finally:
            server.stop()


def test_lvscheck_decides_as_ldirectord_for_sql_and_mail(servers: dict[str, object], tmp_path: Path) -> None:
    ports = servers["ports"]
    assert isinstance(ports, dict)

    def render(s: Scenario) -> tuple[str, str]:
        real = ports[s.server]
        return real if isinstance(real, str) else f"127.0.0.1:{real}", s.lines

    compare(SCENARIOS, "10.0.2", render, tmp_path)


def test_a_stalled_server_holds_ldirectord_for_ever_where_its_check_has_no_timeout(
    servers: dict[str, object], tmp_path: Path
) -> None:
    """mysql, pgsql and pop: ldirectord's check of a stalled server never returns.

    A documented difference (docs/migration.md).  ldirectord's SQL check sets no timeout
    at all (DBI, no alarm), and its pop check only a connect timeout (Mail::POP3Client
    reads the greeting with a blocking getline).  The real MariaDB, PostgreSQL and
    dovecot answer first (all up), then are SIGSTOPped (the kernel still accepts
    connections; nothing answers): ldirectord starts one check and never returns from
    it, so no other check starts and every real keeps its weight; ``lvscheck run`` says
    down for all three within its timeout.  Resumed, ldirectord goes on.
    """
    ports = servers["ports"]
    assert isinstance(ports, dict)
    virtuals = (
        ("10.0.3.1:3306", "mysql", f'{MYSQL}\nrequest="SELECT v FROM t"'),
        ("10.0.3.2:5432", "pgsql", f'{PGSQL}\nrequest="SELECT v FROM t"'),
        ("10.0.3.3:110", "pop", f'{POP}\npasswd="{MAIL_PASSWORD}"'),
    )
    text = f'logfile="{tmp_path}/ld.log"\n' + header()
    for virtual, server, lines in virtuals:
        body = lines.replace("\n", "\n\t")
        text += f"virtual={virtual}\n\treal=127.0.0.1:{ports[server]} masq 5\n\tscheduler=wrr\n\t{body}\n"
    cf = tmp_path / f"stalled-{os.getpid()}.cf"
    cf.write_text(text)
    pids = [servers[name].server.pid for name in ("mysql", "pgsql", "dovecot")]
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(clear_table)
        output = cleanup.enter_context(running_ldirectord(cf, tmp_path))
        first_round_done([output], [len(virtuals)], most=200)
        assert set(ipvs_weights().values()) == {5}
        with contextlib.ExitStack() as stopped:
            for pid in pids:
                stopped.enter_context(paused(pid))
            rows = lvscheck_verdicts(cf)  # meanwhile ldirectord starts a check of a stalled server
            stuck = output.read_text(errors="replace")
            time.sleep(TIMEOUT + 3)  # more than a round, were it not stuck
            assert output.read_text(errors="replace") == stuck, "ldirectord went on"
            assert set(ipvs_weights().values()) == {5}, "ldirectord changed a weight while stuck"
            last = [line for line in stuck.splitlines() if CHECK_STARTS in line][-1]
            assert any(f"127.0.0.1:{ports[name]}:" in last for _, name, _ in virtuals), last
    assert [rows[v]["state"] for v, _, _ in virtuals] == ["down"] * 3, rows
