"""From a parsed ldirectord.cf to what the daemon manages (pure; the real parser is used)."""

from __future__ import annotations

import socket

from lvscheck.adapters.ipvs.table import SVC_F_ONEPACKET, SVC_F_PERSISTENT, Dest, ServiceKey
from lvscheck.config import parse_text, plans
from lvscheck.daemon.layout import build_layout, desired_dest
from lvscheck.daemon.state import Phase

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
    layout = build_layout(config, plans(config))
    assert layout.warnings == [
        "lvs.cf:7: real=10.0.0.2:0: duplicate real server in virtual=10.0.1.1:80: ignored, the first one "
        "(line 5) is used (ldirectord runs both and they fight over one IPVS entry)"
    ]
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


def test_desired_dest_follows_quiescent() -> None:
    config = parse_text(CF, "lvs.cf")
    layout = build_layout(config, plans(config))
    web, dns = layout.pools["tcp:10.0.1.1:80"], layout.pools["udp:10.0.1.1:53"]
    slot = layout.slots[web.slots[0]]
    assert desired_dest(slot, web, Phase.UP, None) == slot.dest
    assert desired_dest(slot, web, Phase.UP, 7) == Dest("10.0.0.2", 80, "masq", 7)
    assert desired_dest(slot, web, Phase.DOWN, None) == Dest("10.0.0.2", 80, "masq", 0)
    assert desired_dest(slot, web, Phase.UNKNOWN, None) == Dest("10.0.0.2", 80, "masq", 0)
    slot = layout.slots[dns.slots[0]]
    assert desired_dest(slot, dns, Phase.DOWN, None) is None  # quiescent=no: removed
    assert desired_dest(slot, dns, Phase.UNKNOWN, None) is None
