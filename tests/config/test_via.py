"""``#lvscheck: via=vip`` in the config: parsing, which reals go through the VIP, marks, warnings."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lvscheck.adapters.ipvs.table import ServiceKey
from lvscheck.config import parse_text
from lvscheck.config.model import VIA_MARK_BASE
from lvscheck.config.prepare import prepare
from lvscheck.errors import ConfigError

HOWTO = """\
checktimeout=3
checkinterval=5
quiescent=yes
{top}
virtual=192.168.0.200:80
	real=192.168.0.110:80 gate
	real=192.168.0.120:80 gate
	real=192.168.0.130:80 masq
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wlc
	#lvscheck: via={via}

virtual=192.168.0.201:53
	real=192.168.0.140:53 ipip
	real=192.168.0.110:53 gate
	service=dns
	request="example.org"
	receive="1.2.3.4"
	protocol=udp
	#lvscheck: via={via}

virtual=192.168.0.202:3306
	real=192.168.0.110:3306 gate
	service=mysql
	login="lvs"
	passwd="pw"
	request="SELECT 1"
	#lvscheck: via={via}
"""


def targets(text: str) -> dict[tuple[str, str], tuple[str | None, int]]:
    prepared = prepare(parse_text(text))
    out = {}
    for p in prepared.plans:
        assert p.plan.spec is not None
        t = p.plan.spec.target
        out[(p.plan.virtual.name, t.host)] = (t.via, t.mark)
    return out


def test_via_rip_is_the_default_and_changes_nothing() -> None:
    text = HOWTO.format(top="", via="rip")
    assert all(v == (None, 0) for v in targets(text).values())
    assert prepare(parse_text(text)).layout.private == {}


def test_gate_and_ipip_reals_of_a_via_vip_virtual_are_checked_through_it() -> None:
    got = targets(HOWTO.format(top="", via="vip"))
    m110, m120, m140 = VIA_MARK_BASE, VIA_MARK_BASE + 1, VIA_MARK_BASE + 2  # sorted by address
    assert got[("192.168.0.200:80", "192.168.0.110")] == ("192.168.0.200", m110)
    assert got[("192.168.0.200:80", "192.168.0.120")] == ("192.168.0.200", m120)
    assert got[("192.168.0.200:80", "192.168.0.130")] == (None, 0)  # masq: the RIP
    assert got[("192.168.0.201:53/udp", "192.168.0.140")] == ("192.168.0.201", m140)  # UDP, ipip
    assert got[("192.168.0.201:53/udp", "192.168.0.110")] == ("192.168.0.201", m110)  # one mark per real
    assert got[("192.168.0.202:3306", "192.168.0.110")] == (None, 0)  # mysql opens its own sockets


def test_one_private_service_per_real_and_method_holding_only_that_real() -> None:
    layout = prepare(parse_text(HOWTO.format(top="", via="vip"))).layout
    assert sorted(k.fwmark for k in layout.private) == [VIA_MARK_BASE + n for n in range(3)]
    for key, (service, dest) in layout.private.items():
        assert service.key == key
        assert key == ServiceKey.mark(key.fwmark, socket.AF_INET)
        assert dest.port == 0  # gate/ipip keep the packet's port
        assert dest.weight == 1
    by_real = {d.addr: d.fwd for _, d in layout.private.values()}
    assert by_real == {"192.168.0.110": "gate", "192.168.0.120": "gate", "192.168.0.140": "ipip"}


def test_marks_are_the_same_for_the_same_file() -> None:
    text = HOWTO.format(top="", via="vip")
    assert targets(text) == targets(text)


def test_the_operator_chooses_the_mark_base() -> None:
    got = targets(HOWTO.format(top="#lvscheck: viamarks=0x10000\n", via="vip"))
    assert got[("192.168.0.200:80", "192.168.0.110")] == ("192.168.0.200", 0x10000)


def test_reals_checked_on_their_address_are_warned_about_on_the_via_line() -> None:
    prepared = prepare(parse_text(HOWTO.format(top="", via="vip"), "ldirectord.cf"))
    via = [str(w) for w in prepared.warnings if w.directive == "#lvscheck via"]
    assert any(
        w.startswith("ldirectord.cf:13:") and "masq reals are checked on their own address" in w for w in via
    )
    assert any(":30:" in w and "check type mysql opens its own sockets" in w for w in via)
    assert len(via) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("#lvscheck: via=vpi", "expected rip (the real's address) or vip"),
        ("#lvscheck: viamarks=0", "expected the first private firewall mark"),
        ("#lvscheck: viamarks=lots", "expected the first private firewall mark"),
    ],
)
def test_bad_values_are_errors_with_their_line(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(f"{line}\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n", "x.cf")
    assert any(p.startswith("x.cf:1:") and message in p for p in info.value.problems)


def test_a_fwmark_virtual_inside_the_private_marks_is_refused() -> None:
    text = f"virtual={VIA_MARK_BASE + 7}\n\treal=10.0.0.2 gate\n\tservice=none\n" + HOWTO.format(
        top="", via="vip"
    )
    with pytest.raises(ConfigError) as info:
        prepare(parse_text(text, "x.cf"))
    assert any("is one of lvscheck's private marks" in p for p in info.value.problems)


def test_a_check_through_the_vip_never_shares_a_probe_with_the_rip_check_of_the_same_real() -> None:
    from lvscheck.daemon.probes import groups

    two = HOWTO.format(top="", via="vip") + HOWTO.format(top="", via="rip").split("\n\n", 1)[1].replace(
        "192.168.0.20", "192.168.0.21"
    )
    prepared = prepare(parse_text(two))
    shared = groups(prepared.layout, prepared.checks())
    grouped = {sid for sids in shared.values() for sid in sids}
    assert "tcp:192.168.0.200:80 192.168.0.110:80" not in grouped  # through its VIP: its own probe
    assert "tcp:192.168.0.210:80 192.168.0.110:80" not in grouped
    # reals checked on their RIP both ways (masq, mysql) still share one probe
    assert {"tcp:192.168.0.200:80 192.168.0.130:80", "tcp:192.168.0.210:80 192.168.0.130:80"} <= grouped


def test_without_a_daemon_to_own_the_private_services_no_target_is_marked(tmp_path: Path) -> None:
    """``lvscheck run --config`` reads with ``via_marks=False``: every real on its own address,
    no private service in the layout; the daemon's reading of the same file marks them."""
    from lvscheck.config.prepare import read

    cf = tmp_path / "via.cf"
    cf.write_text(HOWTO.format(top="", via="vip"))
    daemon = read(str(cf), syntax_only=True)
    one_shot = read(str(cf), syntax_only=True, via_marks=False)
    assert any(p.plan.spec is not None and p.plan.spec.target.mark for p in daemon.plans)
    assert daemon.layout.private
    for p in one_shot.plans:
        assert p.plan.spec is not None
        assert (p.plan.spec.target.via, p.plan.spec.target.mark) == (None, 0)
    assert not one_shot.layout.private
    assert [str(w) for w in one_shot.warnings] == [str(w) for w in daemon.warnings]
