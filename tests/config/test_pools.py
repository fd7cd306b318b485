"""From a parsed ldirectord.cf to pools: services, reals, checks (pure; the real parser is used)."""

from __future__ import annotations

import socket

from lvscheck.adapters.ipvs.table import SVC_F_ONEPACKET, SVC_F_PERSISTENT, Dest, ServiceKey
from lvscheck.config import Problem, parse_text, plans
from lvscheck.config.pools import build_layout

CF = """\
quiescent=no
fallback=127.0.0.9 masq

virtual=10.0.1.1:80
\treal=10.0.0.2 masq 3
\treal=10.0.0.3:8080 gate 2 l:10 u:100
\treal=10.0.0.2 masq 3
\tservice=http
\tpersistent=300
\tquiescent=yes

virtual=10.0.1.1:53
\treal=10.0.0.2:53 gate
\tprotocol=udp
\tservice=dns
\trequest="example.org"
\treceive="1.2.3.4"
\tops=yes

virtual=7
\treal=10.0.0.4 gate 1
\tservice=none
"""


def test_layout_from_a_real_config() -> None:
    config = parse_text(CF, "lvs.cf")
    warnings: list[Problem] = []
    layout = build_layout(config, plans(config), warnings)
    assert [str(w) for w in warnings] == [
        "lvs.cf:7: real: 10.0.0.2:0: duplicate real server in virtual=10.0.1.1:80: ignored, the first one "
        "(line 5) is used (ldirectord runs both and they fight over one IPVS entry)"
    ]
    assert layout.reals == 4  # the duplicate is not among them
    web = layout.pools["tcp:10.0.1.1:80"]
    assert web.service.key == ServiceKey.tcp("10.0.1.1", 80)
    assert web.service.flags & SVC_F_PERSISTENT
    assert web.service.timeout == 300
    assert web.quiescent
    assert web.fallback == Dest("127.0.0.9", 80, "masq", 1)  # global fallback, the virtual's port
    dests = [layout.slots[sid].dest for sid in web.slots]
    # a real without a port gets the virtual's port, as ipvsadm gives it
    assert dests == [Dest("10.0.0.2", 80, "masq", 3), Dest("10.0.0.3", 8080, "gate", 2, 100, 10)]
    dns = layout.pools["udp:10.0.1.1:53"]
    assert dns.service.key.protocol == socket.IPPROTO_UDP
    assert dns.service.flags & SVC_F_ONEPACKET
    assert not dns.quiescent
    mark = layout.pools["fwm:7"]
    assert mark.service.key == ServiceKey.mark(7)
    (sid,) = mark.slots
    assert layout.slots[sid].dest.port == 0
    assert layout.slots[sid].plan.spec is None  # service=none: always up, nothing to run


def test_ipv6_persistence_netmask_is_a_prefix_length() -> None:
    """ldirectord passes ``-M 64`` for an IPv6 virtual with persistent= and netmask=64."""
    config = parse_text(
        "virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::2]:80 gate\n\tpersistent=60\n\tnetmask=64\n", "v6.cf"
    )
    layout = build_layout(config, plans(config), [])
    (pool,) = layout.pools.values()
    assert pool.service.netmask == "64"
    assert pool.service.timeout == 60


def test_a_real_lvscheck_cannot_check_is_a_warning_not_a_refusal() -> None:
    config = parse_text(
        'virtual=10.0.1.1:80\n\treal=10.0.0.2:80 gate\n\tchecktype=external-perl\n\tcheckcommand="/x.pl"\n'
        "virtual=10.0.1.1:81\n\treal=10.0.0.2:81 gate\n\tchecktype=connect\n",
        "lvs.cf",
    )
    warnings: list[Problem] = []
    layout = build_layout(config, plans(config), warnings)
    assert [w.line for w in warnings] == [2]
    assert "external-perl" in warnings[0].message
    assert "not managed" in warnings[0].message
    assert layout.pools["tcp:10.0.1.1:80"].slots == ()
    assert len(layout.pools["tcp:10.0.1.1:81"].slots) == 1
