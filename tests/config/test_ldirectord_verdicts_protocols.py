"""lvscheck decides as Debian's real ldirectord for every other service (in the IPVS guest).

As tests/config/test_ldirectord_verdicts.py (http/https) and
test_ldirectord_verdicts_services.py (ldap, radius): one virtual per scenario, each with
one real (quiescent=yes: down is weight 0, a distinct weight per scenario: see the
services test); Debian's ldirectord 4.12 programs the kernel table, ``lvscheck run
--config`` runs the same file against the same servers.  For every scenario the two
verdicts are equal, or the scenario names the documented difference (docs/migration.md)
and ``check-config`` warns at that virtual.

Services and their real servers (tests/peers/): mysql (MariaDB), pgsql (PostgreSQL),
smtp (exim), ftp (vsftpd), imap and pop (dovecot), nntp (INN nnrpd), dns (unbound), sip
(SIPp), simpletcp (socat), http_proxy (tinyproxy in front of nginx), ping (the guest's
loopback, and an address nothing answers), external (small scripts).  A "wrong answer"
is the server giving an answer the check must refuse (a receive that does not match, an
empty table, a 486, or another real protocol's server on the port: exim, INN or dovecot
where another protocol is expected).  A stalled server is the one hand-written fault
server here (tests/peers/hostile.py: accepts and never answers; a bound UDP socket that
never replies), except for the databases: ldirectord's SQL check has no timeout at all,
so a stalled database gets a test of its own (a real MariaDB and PostgreSQL, SIGSTOPped).

ldirectord checks serially and a stall costs it negotiatetimeout per round, so the
scenarios are dealt over three ldirectord instances (three files, one table) that run
side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers import mariadb as peer_mariadb
from tests.peers import postgres as peer_postgres
from tests.peers.dovecot import PASSWORD as MAIL_PASSWORD
from tests.peers.dovecot import USER as MAIL_USER
from tests.peers.dovecot import start_dovecot
from tests.peers.exim import start_exim
from tests.peers.hostile import paused, script, serve, stall
from tests.peers.inn import start_inn
from tests.peers.ldirectord import decided, ipvs_weights, running_ldirectord
from tests.peers.nginx import start_nginx
from tests.peers.sipp import start_sipp
from tests.peers.socat import start_socat_echo
from tests.peers.tinyproxy import start_tinyproxy
from tests.peers.unbound import start_unbound
from tests.peers.vsftpd import FILE_NAME, start_vsftpd
from tests.peers.vsftpd import PASSWORD as FTP_PASSWORD
from tests.peers.vsftpd import USER as FTP_USER

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]

BIN = Path(sys.executable).parent
#: ldirectord's debug line as each check of a real starts (negotiate, ping, external alike).
CHECK_STARTS = ": real server="
#: Both checkers' timeouts (checktimeout and negotiatetimeout), in seconds.
TIMEOUT = 3
#: ldirectord instances side by side, each on its own file (one table).
LANES = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # a key of the servers' ports
    vport: str  # the virtual's port, with "/udp" for a UDP virtual
    lines: str  # the virtual's directives ({placeholders} from the servers' values)
    ldirectord: str  # its verdict, as observed: up or down
    differs: str = ""  # the documented difference when lvscheck's verdict is not ldirectord's


def _db(service: str, user: str, password: str) -> str:
    return f'service={service}\nlogin="{user}"\npasswd="{password}"\ndatabase="app"'


MYSQL = _db("mysql", peer_mariadb.USER, peer_mariadb.PASSWORD)
PGSQL = _db("pgsql", peer_postgres.USER, peer_postgres.PASSWORD)
POP = f'service=pop\nlogin="{MAIL_USER}"'
IMAP = f'service=imap\nlogin="{MAIL_USER}"'
FTP = f'service=ftp\nrequest="{FILE_NAME}"'
DNS = 'service=dns\nprotocol=udp\nrequest="www.example.test"'
PROXY = 'service=http_proxy\nrequest="http://127.0.0.1:{nginx}/'
EXTERNAL = "checktype=external\ncheckcommand={scripts}/"

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
    Scenario("ftp healthy (anonymous)", "ftp", "21", f'{FTP}\nreceive="Still alive"', "up"),
    Scenario("ftp wrong answer", "ftp", "21", f'{FTP}\nreceive="nomatch"', "down"),
    Scenario(
        "ftp missing file", "ftp", "21", 'service=ftp\nrequest="missing.txt"\nreceive="Still alive"', "down"
    ),
    Scenario(
        "ftp user",
        "ftp",
        "21",
        f'{FTP}\nreceive="Still alive"\nlogin="{FTP_USER}"\npasswd="{FTP_PASSWORD}"',
        "up",
    ),
    Scenario(
        "ftp wrong password",
        "ftp",
        "21",
        f'{FTP}\nreceive="Still alive"\nlogin="{FTP_USER}"\npasswd="wrong"',
        "down",
    ),
    Scenario("ftp stalled", "stall", "21", f'{FTP}\nreceive="Still alive"', "down"),
    Scenario("imap healthy", "imap", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "up"),
    Scenario("imap greeting only", "imap", "143", "service=imap", "up"),
    Scenario(
        "imap wrong answer (an SMTP server)", "smtp", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "down"
    ),
    Scenario("imap wrong password", "imap", "143", f'{IMAP}\npasswd="wrong"', "down"),
    Scenario("imap stalled", "stall", "143", f'{IMAP}\npasswd="{MAIL_PASSWORD}"', "down"),
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
    Scenario("dns healthy", "dns", "53/udp", f'{DNS}\nreceive="127.0.0.9"', "up"),
    Scenario("dns wrong answer", "dns", "53/udp", f'{DNS}\nreceive="10.9.9.9"', "down"),
    Scenario(
        "dns missing name",
        "dns",
        "53/udp",
        'service=dns\nprotocol=udp\nrequest="nothere.example.test"\nreceive="127"',
        "down",
    ),
    Scenario(
        "dns without receive",
        "dns",
        "53/udp",
        DNS,
        "down",
        differs="without receive= ldirectord's dns check never succeeds; lvscheck takes any answer",
    ),
    Scenario("dns stalled", "udpstall", "53/udp", f'{DNS}\nreceive="127.0.0.9"', "down"),
    Scenario("sip healthy", "sip", "5060/udp", 'service=sip\nprotocol=udp\nlogin="lvs@example.test"', "up"),
    Scenario(
        "sip 486 Busy Here",
        "sip486",
        "5060/udp",
        'service=sip\nprotocol=udp\nlogin="lvs@example.test"',
        "down",
    ),
    Scenario(
        "sip stalled", "udpstall", "5060/udp", 'service=sip\nprotocol=udp\nlogin="lvs@example.test"', "down"
    ),
    Scenario(
        "simpletcp healthy", "echo", "7", 'service=simpletcp\nrequest="ping\\nhello"\nreceive="hello"', "up"
    ),
    Scenario(
        "simpletcp wrong answer",
        "echo",
        "7",
        'service=simpletcp\nrequest="ping\\nhello"\nreceive="nomatch"',
        "down",
    ),
    Scenario("simpletcp stalled", "stall", "7", 'service=simpletcp\nrequest="ping"\nreceive="ping"', "down"),
    Scenario("http_proxy healthy", "proxy", "3128", PROXY + 'test.html"\nreceive="Still alive"', "up"),
    Scenario("http_proxy wrong answer", "proxy", "3128", PROXY + 'test.html"\nreceive="Not here"', "down"),
    Scenario("http_proxy missing page", "proxy", "3128", PROXY + 'missing.html"', "down"),
    Scenario("http_proxy stalled", "stall", "3128", PROXY + 'test.html"\nreceive="Still alive"', "down"),
    Scenario("ping healthy", "ping", "80", "checktype=ping", "up"),
    Scenario("ping no answer", "noroute", "80", "checktype=ping", "down"),
    Scenario("external exit 0", "ping", "80", EXTERNAL + "ok.sh", "up"),
    Scenario("external exit 1", "ping", "80", EXTERNAL + "fail.sh", "down"),
    Scenario("external with an argument", "ping", "80", EXTERNAL + "ok.sh extra", "down"),
    Scenario("external missing command", "ping", "80", EXTERNAL + "nothere.sh", "down"),
    Scenario("external stalled", "stall", "80", EXTERNAL + "slow.sh", "down"),
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    udp.bind(("127.0.0.1", 0))
    tmp = tmp_path_factory.mktemp
    with (
        peer_mariadb.single_server() as mysql,
        peer_postgres.single_server() as pgsql,
        start_exim(tmp("exim")) as exim,
        start_vsftpd(tmp("ftp")) as ftp,
        start_dovecot(tmp("dovecot")) as dovecot,
        start_inn(tmp("inn")) as inn,
        start_unbound(tmp("unbound")) as unbound,
        start_sipp(tmp("sipp")) as sipp,
        start_sipp(tmp("sipp486"), status_line="486 Busy Here") as sipp486,
        start_socat_echo(tmp("socat")) as echo,
        start_nginx(tmp("nginx")) as nginx,
        start_tinyproxy(tmp("tinyproxy")) as proxy,
        serve(stall) as stall_port,
        serve(script(b"-ERR not a POP3 server\r\n", then="close")) as poperr_port,
    ):
        yield {
            "ports": {
                "mysql": mysql.port,
                "pgsql": pgsql.port,
                "smtp": exim.plain_port,
                "ftp": ftp.port,
                "imap": dovecot.imap_port,
                "pop": dovecot.pop_port,
                "nntp": inn.port,
                "dns": unbound.port,
                "sip": sipp.port,
                "sip486": sipp486.port,
                "echo": echo.port,
                "proxy": proxy.port,
                "stall": stall_port,
                "poperr": poperr_port,
                "closed": free_port(),
                "udpstall": udp.getsockname()[1],
                "ping": 80,
            },
            "nginx": nginx.http_port,
            "mysql": mysql,
            "pgsql": pgsql,
            "dovecot": dovecot,
        }
    udp.close()


def _scripts(d: Path) -> Path:
    d.mkdir(exist_ok=True)
    for name, body in (("ok.sh", "exit 0"), ("fail.sh", "exit 1"), ("slow.sh", "exec sleep 60")):
        (d / name).write_text(f"#!/bin/sh\n{body}\n")
        (d / name).chmod(0o755)
    return d


def _lanes() -> list[list[tuple[int, Scenario]]]:
    """Scenario numbers per ldirectord instance, dealt round-robin (so are the stalls)."""
    numbered = list(enumerate(SCENARIOS, start=1))
    return [numbered[n::LANES] for n in range(LANES)]


def _virtual(i: int, s: Scenario) -> str:
    port, _, proto = s.vport.partition("/")
    return f"10.0.2.{i}:{port}" + (f"/{proto}" if proto else "")


def _write(
    cf: Path, lane: list[tuple[int, Scenario]], servers: dict[str, object], scripts: Path
) -> dict[int, int]:
    """The lane's ldirectord.cf; returns each scenario's line number in it."""
    ports = servers["ports"]
    assert isinstance(ports, dict)
    text = f'logfile="{cf.with_suffix(".log")}"\nchecktimeout={TIMEOUT}\nnegotiatetimeout={TIMEOUT}\n'
    # readdquiescent: a real goes in at weight 0 at start, not up and then down (fewer ipvsadm runs)
    text += "checkinterval=1\nquiescent=yes\nreaddquiescent=yes\ncleanstop=yes\n"
    lines: dict[int, int] = {}
    for i, s in lane:
        address = "10.255.255.1" if s.server == "noroute" else "127.0.0.1"
        port = ports.get(s.server, 80)
        body = s.lines.format(nginx=servers["nginx"], scripts=scripts)
        lines[i] = text.count("\n") + 1
        virtual = _virtual(i, s).removesuffix("/udp")
        body = body.replace("\n", "\n\t")
        text += f"virtual={virtual}\n\treal={address}:{port} masq {i}\n\tscheduler=wrr\n\t{body}\n"
    cf.write_text(text)
    return lines


def _verdicts(cf: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [BIN / "lvscheck", "run", "--config", str(cf), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lvscheck_decides_as_ldirectord_for_every_service(servers: dict[str, object], tmp_path: Path) -> None:
    scripts = _scripts(tmp_path / "scripts")
    lanes = [lane for lane in _lanes() if lane]
    files = [tmp_path / f"protocols-{n}-{os.getpid()}.cf" for n in range(len(lanes))]  # pid file per name
    lines = [_write(cf, lane, servers, scripts) for cf, lane in zip(files, lanes, strict=True)]
    with contextlib.ExitStack() as stack:
        outputs = []
        for n, cf in enumerate(files):
            workdir = tmp_path / f"lane{n}"
            workdir.mkdir()
            outputs.append(stack.enter_context(running_ldirectord(cf, workdir, clear=n == 0)))
        runs = [_verdicts(cf) for cf in files]  # beside ldirectord: lvscheck run writes no table
        for output, lane in zip(outputs, lanes, strict=True):
            decided(output, len(lane), most=400, marker=CHECK_STARTS, settle_rounds=1)
        table = ipvs_weights()
        said = [
            line for o in outputs for line in o.read_text(errors="replace").splitlines() if "DEBUG" in line
        ]
    rows = {}
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert out, err
        rows |= {row["virtual"]: row for row in json.loads(out)}
    wrong = []
    for i, s in enumerate(SCENARIOS, start=1):
        virtual = _virtual(i, s)
        weights = [w for (v, _), w in table.items() if v == virtual.removesuffix("/udp")]
        theirs = "up" if weights and weights[0] > 0 else "down"
        mine = rows[virtual]["state"]
        if theirs != s.ldirectord:
            wrong.append(f"{s.name}: ldirectord {theirs}, expected {s.ldirectord}: {_about(said, virtual)}")
        elif (mine != theirs) != bool(s.differs):
            wrong.append(f"{s.name}: lvscheck {mine} ({rows[virtual]['reason']}), ldirectord {theirs}")
    assert not wrong, "\n".join(wrong)
    for cf, lane, at in zip(files, lanes, lines, strict=True):
        check = subprocess.run(
            [BIN / "lvscheck", "check-config", str(cf)], capture_output=True, text=True, timeout=60
        )
        warned = {int(m[1]) for m in re.finditer(rf"{re.escape(str(cf))}:(\d+):", check.stderr)}
        for i, s in lane:
            if s.differs:
                assert at[i] in warned, f"{s.name}: check-config does not warn:\n{check.stderr}"


def _about(said: list[str], virtual: str) -> str:
    """ldirectord's last debug lines about ``virtual``'s real."""
    ip = virtual.split(":")[0]
    return " | ".join([line for line in said if ip + ":" in line][-4:])


def test_a_stalled_server_holds_ldirectord_for_ever_where_its_check_has_no_timeout(
    servers: dict[str, object], tmp_path: Path
) -> None:
    """mysql, pgsql and pop (with login): ldirectord's check of a stalled server never returns.

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
    text = f'logfile="{tmp_path}/ld.log"\nchecktimeout={TIMEOUT}\nnegotiatetimeout={TIMEOUT}\n'
    text += "checkinterval=1\nquiescent=yes\ncleanstop=yes\n"
    for virtual, server, lines in virtuals:
        body = lines.replace("\n", "\n\t")
        text += f"virtual={virtual}\n\treal=127.0.0.1:{ports[server]} masq 5\n\tscheduler=wrr\n\t{body}\n"
    cf = tmp_path / f"stalled-{os.getpid()}.cf"
    cf.write_text(text)
    pids = [servers[name].server.pid for name in ("mysql", "pgsql", "dovecot")]
    with running_ldirectord(cf, tmp_path) as output:
        assert set(decided(output, 3, most=200, marker=CHECK_STARTS, settle_rounds=1).values()) == {5}
        with contextlib.ExitStack() as stopped:
            for pid in pids:
                stopped.enter_context(paused(pid))
            started = output.read_text(errors="replace").count(CHECK_STARTS)
            run = _verdicts(cf)
            deadline = time.monotonic() + 60
            while output.read_text(errors="replace").count(CHECK_STARTS) < started + 1:
                assert time.monotonic() < deadline, "ldirectord started no check after the pause"
                time.sleep(0.25)
            stuck = output.read_text(errors="replace").count(CHECK_STARTS)
            out, err = run.communicate(timeout=120)
            time.sleep(3 * (TIMEOUT + 1))  # three of its rounds, were it not stuck
            assert output.read_text(errors="replace").count(CHECK_STARTS) == stuck, "ldirectord went on"
            assert set(ipvs_weights().values()) == {5}, "ldirectord changed a weight while stuck"
    rows = {row["virtual"]: row for row in json.loads(out or "[]")}
    assert [rows[v]["state"] for v, _, _ in virtuals] == ["down"] * 3, err
