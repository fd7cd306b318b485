"""Persistence netmasks reach the kernel as ldirectord's ipvsadm calls give them (inside ipvs-guest).

ldirectord runs ``ipvsadm -A -t [2001:db8::1]:80 -s wrr -p 60 -M 64`` for an IPv6
virtual with ``persistent=60`` and ``netmask=64``; lvscheck once dropped the v6
netmask.  The service is written from a parsed ldirectord.cf, read back over
netlink, and compared with what ``ipvsadm -Ln`` prints.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from lvscheck.adapters.ipvs.table import Op, OpKind
from lvscheck.config import parse_text, plans
from lvscheck.config.pools import build_layout

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

CF = """\
virtual6=[2001:db8::1]:80
\treal6=[2001:db8::2]:80 gate
\tpersistent=60
\tnetmask=64

virtual=10.0.9.1:80
\treal=10.0.9.2:80 gate
\tpersistent=60
\tnetmask=255.255.255.0
"""


def test_persistence_netmasks_reach_the_kernel() -> None:
    from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

    subprocess.run(["ipvsadm", "-C"], check=True)
    config = parse_text(CF, "netmask.cf")
    layout = build_layout(config, plans(config), [])
    services = [p.service for p in layout.pools.values()]
    ipvs = NetlinkIPVS()
    try:
        assert ipvs.apply([Op(OpKind.ADD_SERVICE, s) for s in services]) == []
        table = ipvs.dump()
        got = {str(k): s.netmask for k, s in table.services.items()}
        assert sorted(got.values()) == ["255.255.255.0", "64"]
        # and the same settings read back: no endless "set" on every reconcile
        for s in services:
            assert s.same_settings(table.services[s.key])
        listing = subprocess.run(["ipvsadm", "-Ln"], check=True, capture_output=True, text=True).stdout
        assert "persistent 60 mask 64" in listing
        assert "persistent 60 mask 255.255.255.0" in listing
    finally:
        ipvs.close()
        subprocess.run(["ipvsadm", "-C"], check=True)
