"""On an ldirectord.cf every command decides as ldirectord does, and check-config names the differences.

The same nginx (tests/peers/nginx.py) is checked three ways: ``lvscheck run CHECK``
from a shell (lvscheck's defaults), ``lvscheck run --config`` (the one road, with
ldirectord's semantics) and ``lvscheck-ldirectord`` (the checkcommand adapter, the same
road): a 302 to "Still alive", a body whose receive text is past 64 KiB, and https
without virtualhost on a certificate that does not name the real's address.  The
comparison with Debian's real ldirectord is tests/config/test_ldirectord_verdicts.py
(in the IPVS guest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.nginx import LARGE_MARKER, Nginx, start_nginx

from lvscheck.config import parse_text
from lvscheck.config.prepare import read
from lvscheck.config.translate import check_spec

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng


def _scenarios(ng: Nginx, extra: str = "") -> str:
    """Three virtuals, one per scenario; ``extra`` is added to each (e.g. a #lvscheck: line)."""
    ca = f"\t#lvscheck: cafile={ng.cafile}\n"
    return (
        f"checktimeout=5\n"
        f"virtual=10.0.0.1:80\n\treal=127.0.0.1:{ng.http_port} gate\n\tservice=http\n"
        f'\trequest="redirect"\n\treceive="Still alive"\n{extra}'
        f"virtual=10.0.0.2:80\n\treal=127.0.0.1:{ng.http_port} gate\n\tservice=http\n"
        f'\trequest="large.html"\n\treceive="{LARGE_MARKER}"\n{extra}'
        f"virtual=10.0.0.3:443\n\treal=127.0.0.1:{ng.wrongname_port} gate\n\tservice=https\n"
        f'\trequest="test.html"\n\treceive="Still alive"\n{ca}{extra}'
    )


def _run_config(cf: Path) -> dict[str, str]:
    p = subprocess.run(
        [BIN / "lvscheck", "run", "--config", str(cf), "--json"], capture_output=True, text=True, timeout=60
    )
    return {row["virtual"]: row["state"] for row in json.loads(p.stdout)}


def test_the_road_decides_as_ldirectord(nginx: Nginx, tmp_path: Path) -> None:
    cf = tmp_path / "ld.cf"
    cf.write_text(_scenarios(nginx))
    assert _run_config(cf) == {"10.0.0.1:80": "up", "10.0.0.2:80": "up", "10.0.0.3:443": "up"}
    # lvscheck's own behaviour is one #lvscheck: line away
    strict = "\t#lvscheck: redirects=0 maxbody=64k tlsverify=full\n"
    cf.write_text(_scenarios(nginx, strict))
    assert _run_config(cf) == {"10.0.0.1:80": "down", "10.0.0.2:80": "down", "10.0.0.3:443": "down"}


def test_a_shell_keeps_lvschecks_defaults(nginx: Nginx) -> None:
    def run(*args: str) -> int:
        return subprocess.run([BIN / "lvscheck", "run", *args], capture_output=True, timeout=30).returncode

    assert run("http", f"127.0.0.1:{nginx.http_port}", "request=/redirect", "receive=Still alive") == 2
    assert run("http", f"127.0.0.1:{nginx.http_port}", "request=/large.html", f"receive={LARGE_MARKER}") == 2
    assert run("https", f"127.0.0.1:{nginx.wrongname_port}", f"cafile={nginx.cafile}") == 2


def test_the_adapter_takes_the_same_road(nginx: Nginx, tmp_path: Path) -> None:
    cf = tmp_path / "ld.cf"
    cf.write_text(_scenarios(nginx))
    env = dict(
        os.environ,
        LVSCHECK_LDIRECTORD_CONFIG=str(cf),
        LVSCHECK_LDIRECTORD_RUNDIR=str(tmp_path / "run"),
        LVSCHECK_LDIRECTORD_SERVER="0",
    )
    for vip, vport, port in (
        ("10.0.0.1", "80", nginx.http_port),
        ("10.0.0.2", "80", nginx.http_port),
        ("10.0.0.3", "443", nginx.wrongname_port),
    ):
        p = subprocess.run(
            [BIN / "lvscheck-ldirectord", vip, vport, "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert p.returncode == 0, (vip, p.stderr)


def test_road_options_and_overrides() -> None:
    config = parse_text(
        "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n"
        "virtual=10.0.0.1:443\n\treal=10.0.0.2:443 gate\n\tservice=https\n"
        "virtual=10.0.0.2:443\n\treal=10.0.0.2:443 gate\n\tservice=https\n\tvirtualhost=www.example.org\n"
        "virtual=10.0.0.3:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\t#lvscheck: redirects=2\n"
        "virtual=10.0.0.4:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\t#lvscheck: check=connect\n"
        "virtual=10.0.0.5:1812\n\treal=10.0.0.2:1812 gate\n\tservice=radius\n\tprotocol=udp\n"
        '\tsecret="s"\n\tlogin="u"\n\tpasswd="p"\n'
        "virtual=10.0.0.6:5060\n\treal=10.0.0.2:5060 gate\n\tservice=sip\n"
        "virtual=10.0.0.7:636\n\treal=10.0.0.2:636 gate\n\tservice=ldaps\n"
    )

    def opts(i: int) -> dict[str, str]:
        v = config.virtuals[i]
        spec = check_spec(v, v.reals[0])
        assert spec is not None
        return {
            k: spec.options[k]
            for k in ("redirects", "maxbody", "tlsverify", "expect", "status")
            if k in spec.options
        }

    assert opts(0) == {"redirects": "7", "maxbody": "1m"}
    assert opts(1) == {"redirects": "7", "maxbody": "1m", "tlsverify": "chain"}
    assert opts(2) == {"redirects": "7", "maxbody": "1m"}  # virtualhost: the name is verified
    assert opts(3) == {"redirects": "2", "maxbody": "1m"}
    assert opts(4) == {}  # another check type: lvscheck's own defaults
    assert opts(5) == {"expect": "accept"}
    assert opts(6) == {"status": "200"}
    assert opts(7) == {"tlsverify": "no"}  # Net::LDAP's verify => 'none'


def test_check_config_names_every_difference(tmp_path: Path) -> None:
    cf = tmp_path / "ld.cf"
    cf.write_text(
        "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n"
        "virtual=10.0.0.1:443\n\treal=10.0.0.2:443 gate\n\tservice=https\n\tvirtualhost=www.example.org\n"
        "virtual=10.0.0.3:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\t#lvscheck: redirects=0 maxbody=64k\n"
        "virtual=10.0.0.5:1812\n\treal=10.0.0.2:1812 gate\n\tservice=radius\n\tprotocol=udp\n"
        '\tsecret="s"\n\tlogin="u"\n\tpasswd="p"\n\t#lvscheck: expect=any\n'
        "virtual=10.0.0.6:3306\n\treal=10.0.0.2:3306 gate\n\tservice=mysql\n"
        '\tlogin="u"\n\tpasswd="p"\n\trequest="SELECT 1"\n\treceive="1"\n'
    )
    differs = [w for w in read(str(cf), syntax_only=True).warnings if "differs from ldirectord" in w.message]
    assert [(w.line, w.message.split(": differs from ldirectord: ")) for w in differs] == [
        (
            4,
            [
                "10.0.0.1:443",
                "the certificate must name www.example.org, ldirectord checks the chain only "
                "(#lvscheck: tlsverify=chain)",
            ],
        ),
        (
            8,
            [
                "10.0.0.3:80",
                "redirects are not followed, ldirectord follows 7 (#lvscheck: redirects=7); "
                "reads 64k of the body, ldirectord all of it (#lvscheck: maxbody=1m)",
            ],
        ),
        (
            12,
            ["10.0.0.5:1812/udp", "an Access-Reject is up, ldirectord says down (#lvscheck: expect=accept)"],
        ),
        (
            20,
            [
                "10.0.0.6:3306",
                "receive= is checked, ldirectord ignores it (#lvscheck: receive= ignores it too)",
            ],
        ),
    ]
    p = subprocess.run(
        [BIN / "lvscheck", "check-config", str(cf)], capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 0
    assert p.stderr.count("differs from ldirectord") == 4


def test_check_config_names_ldirectords_ftp_and_imap_port_faults(tmp_path: Path) -> None:
    """ftp fetches in active mode, imap checks port 143 whatever the port (guest-tested in
    test_ldirectord_verdicts_more.py / _protocols.py); warned only where they can matter."""
    cf = tmp_path / "ld.cf"
    cf.write_text(
        'virtual=10.0.0.1:21\n\treal=10.0.0.2:21 gate\n\tservice=ftp\n\trequest="status.txt"\n'
        "virtual=10.0.0.2:21\n\treal=10.0.0.2:21 gate\n\tservice=ftp\n"
        "virtual=10.0.0.3:143\n\treal=10.0.0.2:143 gate\n\treal=10.0.0.3 gate\n\tservice=imap\n"
        "virtual=10.0.0.4:143\n\treal=10.0.0.2:1143 masq\n\tservice=imap\n"
        "virtual=10.0.0.5:993\n\treal=10.0.0.2:993 gate\n\tservice=imaps\n\tcheckport=9993\n"
    )
    differs = [w for w in read(str(cf), syntax_only=True).warnings if "differs from ldirectord" in w.message]
    assert [w.line for w in differs] == [1, 12, 15]
    assert "active mode (PORT)" in differs[0].message
    assert "lvscheck checks port 1143; ldirectord's imap check connects to port 143" in differs[1].message
    assert "lvscheck checks port 9993; ldirectord's imaps check connects to port 993" in differs[2].message
