"""lvscheck decides as Debian's real ldirectord on the same ldirectord.cf and the same servers.

Runs inside ../shared/ipvs-guest (marked ``ipvs``).  One ldirectord.cf has one virtual
per scenario, each with one real (quiescent=yes: down is weight 0).  Debian's
ldirectord 4.12 runs it and programs the kernel table; ``lvscheck run --config`` runs
the same file against the same servers.  For every scenario the two verdicts are equal,
or the scenario names the documented difference (docs/migration.md).

Servers: Debian nginx (tests/peers/nginx.py) for every HTTP answer; two hand-written
fault servers (tests/peers/hostile.py) where no real server does it on demand: one
that accepts and never answers (a stalled server) and one that answers a bare
"Still alive" with no HTTP status line (an HTTP/0.9 reply, which LWP accepts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.peers.hostile import script, serve, stall
from tests.peers.ldirectord import decided, running_ldirectord
from tests.peers.nginx import LARGE_MARKER, Nginx, start_nginx

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Scenario:
    name: str
    port: str  # nginx attribute or fault-server name
    lines: str  # the virtual's directives
    ldirectord: str  # its verdict, as observed: up or down
    differs: str = ""  # the documented difference when lvscheck's verdict is not ldirectord's


SCENARIOS = (
    Scenario("healthy", "http_port", 'service=http\nrequest="test.html"\nreceive="Still alive"', "up"),
    Scenario("wrong answer", "http_port", 'service=http\nrequest="test.html"\nreceive="Not here"', "down"),
    Scenario("missing page", "http_port", 'service=http\nrequest="missing.html"\nreceive="x"', "down"),
    Scenario("503", "http_port", 'service=http\nrequest="down"', "down"),
    Scenario(
        "302 to Still alive", "http_port", 'service=http\nrequest="redirect"\nreceive="Still alive"', "up"
    ),
    Scenario("redirect loop", "http_port", 'service=http\nrequest="redirect-loop"', "down"),
    Scenario(
        "70 KB body", "http_port", f'service=http\nrequest="large.html"\nreceive="{LARGE_MARKER}"', "up"
    ),
    Scenario("stalled", "stall", 'service=http\nrequest="test.html"\nreceive="Still alive"', "down"),
    Scenario(
        "https name not the real's IP",
        "wrongname_port",
        'service=https\nrequest="test.html"\nreceive="Still alive"\n#lvscheck: cafile={ca}',
        "up",
    ),
    Scenario(
        "https virtualhost not in the certificate",
        "wrongname_port",
        'service=https\nvirtualhost="www.example.test"\nrequest="test.html"\n#lvscheck: cafile={ca}',
        "up",
        differs="lvscheck checks the certificate's name against virtualhost= (#lvscheck: tlsverify=chain: as "
        "ldirectord); check-config names it",
    ),
    Scenario(
        "https virtualhost, tlsverify=chain",
        "wrongname_port",
        'service=https\nvirtualhost="www.example.test"\nrequest="test.html"\n'
        "#lvscheck: cafile={ca} tlsverify=chain",
        "up",
    ),
    Scenario(
        "HTTP/0.9 reply",
        "http09",
        'service=http\nrequest="test.html"\nreceive="Still alive"',
        "up",
        differs="ldirectord (LWP) takes a reply with no HTTP status line as 200; lvscheck says down",
    ),
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    with (
        start_nginx(tmp_path_factory.mktemp("nginx")) as ng,
        serve(stall) as stall_port,
        serve(script(None, b"Still alive\r\n", then="close")) as http09_port,
    ):
        yield {"nginx": ng, "stall": stall_port, "http09": http09_port}


def _config(servers: dict[str, object]) -> str:
    ng = servers["nginx"]
    assert isinstance(ng, Nginx)
    text = "checktimeout=8\nnegotiatetimeout=8\ncheckinterval=1\nquiescent=yes\ncleanstop=yes\n"
    for i, s in enumerate(SCENARIOS, start=1):  # distinct weights: see the services test
        port = servers[s.port] if s.port in servers else getattr(ng, s.port)
        body = s.lines.format(ca=ng.cafile).replace("\n", "\n\t")
        text += f"virtual=10.0.0.{i}:80\n\treal=127.0.0.1:{port} masq {i}\n\tscheduler=wrr\n\t{body}\n"
    return text


def test_lvscheck_decides_as_ldirectord(servers: dict[str, object], tmp_path: Path) -> None:
    ng = servers["nginx"]
    assert isinstance(ng, Nginx)
    cf = tmp_path / f"verdicts-{os.getpid()}.cf"  # ldirectord keys its pid file on the name
    cf.write_text(f'logfile="{tmp_path}/ldirectord.log"\n' + _config(servers))
    env = {"PERL_LWP_SSL_CA_FILE": str(ng.cafile)}  # ldirectord's LWP trusts the test CA
    with running_ldirectord(cf, tmp_path, env) as output:
        table = decided(output, len(SCENARIOS), most=300)
        if not table:
            log = (tmp_path / "ldirectord.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{table}\n{output.read_text(errors='replace')[-3000:]}\n{log}")
    said = [line for line in output.read_text(errors="replace").splitlines() if "Return status" in line]
    p = subprocess.run(
        [BIN / "lvscheck", "run", "--config", str(cf), "--json"], capture_output=True, text=True, timeout=60
    )
    rows = {row["virtual"]: row for row in json.loads(p.stdout)}
    report = []
    for i, s in enumerate(SCENARIOS, start=1):
        virtual = f"10.0.0.{i}:80"
        weights = [w for (v, _), w in table.items() if v == virtual]  # none: never found up
        theirs = "up" if weights and weights[0] > 0 else "down"
        mine = rows[virtual]["state"]
        assert theirs == s.ldirectord, f"{s.name}: ldirectord said {theirs}; its last answers: {said[-14:]}"
        if s.differs:
            assert mine != theirs, f"{s.name}: the documented difference is gone: {s.differs}"
        else:
            assert mine == theirs, (
                f"{s.name}: lvscheck {mine} ({rows[virtual]['reason']}), ldirectord {theirs}"
            )
        report.append((s.name, theirs, mine))
    check = subprocess.run(
        [BIN / "lvscheck", "check-config", str(cf)], capture_output=True, text=True, timeout=30
    )
    named = [line for line in check.stderr.splitlines() if "differs from ldirectord" in line]
    assert len(named) == 1
    assert "10.0.0.10:80" in named[0]
    assert "#lvscheck: tlsverify=chain" in named[0]
