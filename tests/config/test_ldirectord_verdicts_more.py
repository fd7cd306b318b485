"""lvscheck decides as Debian's real ldirectord for ftp, dns, sip, simpletcp, http_proxy, ping, external.

In the IPVS guest, as test_ldirectord_verdicts_protocols.py (mysql, pgsql, smtp, imap,
pop, nntp; the other guest of .ci/run), through tests/config/_ldcompare.py: one virtual
per scenario; Debian's ldirectord 4.12 programs the kernel table, ``lvscheck run
--config`` runs the same files against the same servers; equal verdicts, or the
documented difference (docs/migration.md) and a ``check-config`` warning at that virtual.

Real servers (tests/peers/): vsftpd (one allowing active-mode data connections, one
passive only), unbound, SIPp (one answering 200, one ``486 Busy
Here``), socat (an echo server), tinyproxy in front of nginx; ping checks the guest's
loopback, and an address nothing answers (no route in the guest); external runs small
scripts.  The stalled server is the hand-written fault server (tests/peers/hostile.py:
accepts and never answers; a bound UDP socket that never replies), since no real server
stalls on demand without stalling every scenario that uses it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.config._ldcompare import Scenario, compare
from tests.peers.hostile import serve, stall
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

FTP = f'service=ftp\nrequest="{FILE_NAME}"'
DNS = 'service=dns\nprotocol=udp\nrequest="www.example.test"'
PROXY = 'service=http_proxy\nrequest="http://127.0.0.1:{nginx}/'
EXTERNAL = "checktype=external\ncheckcommand={scripts}/"
#: PAM's password hashing and fail delay are slow in the UML guest: a local user's login gets longer.
SLOW_LOGIN = "negotiatetimeout=15"

SCENARIOS = (
    Scenario("ftp healthy (anonymous)", "ftp", "21", f'{FTP}\nreceive="Still alive"', "up"),
    Scenario("ftp wrong answer", "ftp", "21", f'{FTP}\nreceive="nomatch"', "down"),
    Scenario(
        "ftp missing file", "ftp", "21", 'service=ftp\nrequest="missing.txt"\nreceive="Still alive"', "down"
    ),
    Scenario(
        "ftp user",
        "ftp",
        "21",
        f'{FTP}\nreceive="Still alive"\nlogin="{FTP_USER}"\npasswd="{FTP_PASSWORD}"\n' + SLOW_LOGIN,
        "up",
    ),
    Scenario(
        "ftp wrong password",
        "ftp",
        "21",
        f'{FTP}\nreceive="Still alive"\nlogin="{FTP_USER}"\npasswd="wrong"\n' + SLOW_LOGIN,
        "down",
    ),
    Scenario(
        "ftp passive-only server",
        "ftppassive",
        "21",
        f'{FTP}\nreceive="Still alive"',
        "down",
        differs="ldirectord sends PASV but fetches in active mode (PORT), which the server refuses",
    ),
    Scenario("ftp stalled", "stall", "21", f'{FTP}\nreceive="Still alive"', "down"),
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
        start_vsftpd(tmp("ftp"), active=True) as ftp,
        start_vsftpd(tmp("ftppassive")) as ftppassive,
        start_unbound(tmp("unbound")) as unbound,
        start_sipp(tmp("sipp")) as sipp,
        start_sipp(tmp("sipp486"), status_line="486 Busy Here") as sipp486,
        start_socat_echo(tmp("socat")) as echo,
        start_nginx(tmp("nginx")) as nginx,
        start_tinyproxy(tmp("tinyproxy")) as proxy,
        serve(stall) as stall_port,
    ):
        yield {
            "ports": {
                "ftp": ftp.port,
                "ftppassive": ftppassive.port,
                "dns": unbound.port,
                "sip": sipp.port,
                "sip486": sipp486.port,
                "echo": echo.port,
                "proxy": proxy.port,
                "stall": stall_port,
                "udpstall": udp.getsockname()[1],
                "ping": 80,
            },
            "nginx": nginx.http_port,
        }
    udp.close()


def _scripts(d: Path) -> Path:
    d.mkdir(exist_ok=True)
    for name, body in (("ok.sh", "exit 0"), ("fail.sh", "exit 1"), ("slow.sh", "exec sleep 60")):
        (d / name).write_text(f"#!/bin/sh\n{body}\n")
        (d / name).chmod(0o755)
    return d


def test_lvscheck_decides_as_ldirectord_for_the_other_services(
    servers: dict[str, object], tmp_path: Path
) -> None:
    ports = servers["ports"]
    assert isinstance(ports, dict)
    scripts = _scripts(tmp_path / "scripts")

    def render(s: Scenario) -> tuple[str, str]:
        address = "10.255.255.1" if s.server == "noroute" else "127.0.0.1"
        return f"{address}:{ports.get(s.server, 80)}", s.lines.format(nginx=servers["nginx"], scripts=scripts)

    compare(SCENARIOS, "10.0.4", render, tmp_path)
