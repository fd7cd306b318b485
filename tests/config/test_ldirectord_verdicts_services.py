"""lvscheck decides as Debian's real ldirectord for ldap and radius (in the IPVS guest).

As tests/config/test_ldirectord_verdicts.py (http/https), one ldirectord.cf with one
virtual per scenario; Debian's ldirectord 4.12 programs the table, ``lvscheck run
--config`` runs the same file against the same servers: Debian slapd and FreeRADIUS
(tests/peers/).  For each: healthy, a wrong answer, a wrong password or missing data,
and a stalled server (hand-written: a TCP listener that never answers, a UDP socket
that never replies).  mysql, pgsql and the other services:
test_ldirectord_verdicts_protocols.py and test_ldirectord_verdicts_more.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.freeradius import PASSWORD as RADIUS_PASSWORD
from tests.peers.freeradius import SECRET, start_freeradius
from tests.peers.freeradius import USER as RADIUS_USER
from tests.peers.hostile import serve, stall
from tests.peers.ldirectord import decided, running_ldirectord
from tests.peers.slapd import BASE, BIND_DN, BIND_PASSWORD, start_slapd

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]

BIN = Path(sys.executable).parent

#: (name, server, directives, ldirectord's verdict, the documented difference or "")
Scenario = tuple[str, str, str, str, str]


def _scenarios() -> list[Scenario]:
    ldap = f'service=ldap\nrequest="{BASE}"'
    radius = f'service=radius\nprotocol=udp\nsecret="{SECRET}"\nlogin="{RADIUS_USER}"'
    return [
        ("ldap healthy", "slapd", f'{ldap}\nreceive="example"', "up", ""),
        ("ldap wrong answer", "slapd", f'{ldap}\nreceive="nomatch"', "down", ""),
        ("ldap wrong password", "slapd", f'{ldap}\nlogin="{BIND_DN}"\npasswd="wrong"', "down", ""),
        ("ldap bound", "slapd", f'{ldap}\nlogin="{BIND_DN}"\npasswd="{BIND_PASSWORD}"', "up", ""),
        ("ldap missing entry", "slapd", f'service=ldap\nrequest="ou=nothing,{BASE}"', "down", ""),
        ("ldap stalled", "stall", ldap, "down", ""),
        ("radius healthy", "radius", f'{radius}\npasswd="{RADIUS_PASSWORD}"', "up", ""),
        ("radius wrong password", "radius", f'{radius}\npasswd="wrong"', "down", ""),
        (
            "radius wrong secret",
            "radius",
            f'{radius}\npasswd="{RADIUS_PASSWORD}"'.replace(SECRET, "nope"),
            "down",
            "",
        ),
        ("radius stalled", "udpstall", f'{radius}\npasswd="{RADIUS_PASSWORD}"', "down", ""),
    ]


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    udp.bind(("127.0.0.1", 0))
    with (
        start_slapd() as slapd,
        start_freeradius(tmp_path_factory.mktemp("radius")) as radius,
        serve(stall) as stall_port,
    ):
        yield {
            "slapd": slapd.port,
            "radius": radius.port,
            "stall": stall_port,
            "udpstall": udp.getsockname()[1],
        }
    udp.close()


def test_lvscheck_decides_as_ldirectord_for_services(ports: dict[str, int], tmp_path: Path) -> None:
    scenarios = _scenarios()
    text = f'logfile="{tmp_path}/ldirectord.log"\nchecktimeout=8\nnegotiatetimeout=8\ncheckinterval=1\n'
    text += "quiescent=yes\ncleanstop=yes\n"
    # a distinct weight per scenario: ldirectord checks a real once per round for every
    # virtual whose (checktype, service, address, port, weight, request, receive) is the
    # same, whatever its login, passwd or secret ("Already checked")
    for i, (_, server, lines, _, _) in enumerate(scenarios, start=1):
        port = 1812 if server in ("radius", "udpstall") else 80
        body = lines.replace("\n", "\n\t")
        real = f"127.0.0.1:{ports[server]} masq {i}"
        text += f"virtual=10.0.1.{i}:{port}\n\treal={real}\n\tscheduler=wrr\n\t{body}\n"
    cf = tmp_path / f"services-{os.getpid()}.cf"  # ldirectord keys its pid file on the name
    cf.write_text(text)
    with running_ldirectord(cf, tmp_path) as output:
        table = decided(output, len(scenarios), most=400)
    p = subprocess.run(
        [BIN / "lvscheck", "run", "--config", str(cf), "--json"], capture_output=True, text=True, timeout=120
    )
    rows = {row["virtual"]: row for row in json.loads(p.stdout)}
    wrong = []
    for i, (name, server, _, expected, differs) in enumerate(scenarios, start=1):
        port = 1812 if server in ("radius", "udpstall") else 80
        virtual = f"10.0.1.{i}:{port}" + ("/udp" if port == 1812 else "")
        weights = [w for (v, _), w in table.items() if v == f"10.0.1.{i}:{port}"]
        theirs = "up" if weights and weights[0] > 0 else "down"
        mine = rows[virtual]["state"]
        if theirs != expected:
            wrong.append(f"{name}: ldirectord {theirs}, expected {expected}")
        elif (mine != theirs) != bool(differs):
            wrong.append(f"{name}: lvscheck {mine} ({rows[virtual]['reason']}), ldirectord {theirs}")
    assert not wrong, "\n".join(wrong)
