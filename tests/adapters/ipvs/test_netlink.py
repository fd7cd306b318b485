"""The netlink adapter against the kernel's IPVS table (run inside ../shared/ipvs-guest)."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from lvscheck.adapters.ipvs.table import Dest, Op, OpKind, Service, ServiceKey, plan

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

S1 = Service(ServiceKey.tcp("10.0.9.1", 80), "wrr")
S2 = Service(ServiceKey.mark(7), "wlc", flags=1, timeout=300)


def ipvsadm(*args: str) -> str:
    return subprocess.run(["ipvsadm", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def ipvs():  # type: ignore[no-untyped-def]
    from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

    subprocess.run(["ipvsadm", "-C"], check=True)
    n = NetlinkIPVS()
    yield n
    n.close()


def test_write_dump_round_trip_keeps_masq_and_thresholds(ipvs) -> None:  # type: ignore[no-untyped-def]
    masq = Dest("10.0.8.1", 80, "masq", 3, 100, 50)
    errors = ipvs.apply(
        [
            Op(OpKind.ADD_SERVICE, S1),
            Op(OpKind.ADD_SERVICE, S2),
            Op(OpKind.ADD_DEST, S1, masq),
            Op(OpKind.ADD_DEST, S1, Dest("10.0.8.2", 80, "gate", 2)),
            Op(OpKind.ADD_DEST, S2, Dest("10.0.8.3", 0, "ipip", 1)),
        ]
    )
    assert errors == []
    # a weight change is a whole-dest "set": still Masq, thresholds kept (the pyroute2/ipvsadm pitfall)
    assert ipvs.apply([Op(OpKind.SET_DEST, S1, Dest("10.0.8.1", 80, "masq", 7, 100, 50))]) == []
    out = ipvsadm("-Ln", "--thresholds")
    assert "10.0.8.1:80                  100        50" in out
    line = next(x for x in ipvsadm("-Ln").splitlines() if "10.0.8.1:80" in x)
    assert line.split()[2:4] == ["Masq", "7"]
    t = ipvs.dump()
    assert t.dest(S1.key, "10.0.8.1", 80) == Dest("10.0.8.1", 80, "masq", 7, 100, 50)
    assert t.services[S2.key].timeout == 300
    desired = t.copy()
    assert plan(desired, t) == []
    assert "persistent 300" in ipvsadm("-Ln")


def test_a_refused_op_is_reported_and_the_rest_applied(ipvs) -> None:  # type: ignore[no-untyped-def]
    ops = [Op(OpKind.ADD_SERVICE, S1)]
    ops += [
        Op(OpKind.ADD_DEST, S1, Dest(f"10.1.{i // 250}.{i % 250 + 1}", 80, "masq", 1)) for i in range(1500)
    ]
    ops.insert(700, Op(OpKind.SET_DEST, S1, Dest("10.99.0.1", 80, "masq", 5)))  # no such real
    errors = ipvs.apply(ops)
    assert [(e.op.dest, e.errno) for e in errors] == [(Dest("10.99.0.1", 80, "masq", 5), errno.ENOENT)]
    assert len(ipvs.dump()) == 1500


def test_a_closed_socket_is_an_adapter_error(ipvs) -> None:  # type: ignore[no-untyped-def]
    from lvscheck.errors import AdapterError

    ipvs.close()
    with pytest.raises(AdapterError):
        ipvs.apply([Op(OpKind.ADD_SERVICE, S1)])


def test_ipv6_udp_and_fwmark_services_round_trip(ipvs) -> None:  # type: ignore[no-untyped-def]
    v6 = Service(ServiceKey.tcp("fd00::1", 80), "rr")
    udp = Service(ServiceKey.udp("10.0.9.53", 53), "wrr", flags=0x4)  # one-packet scheduling
    mark6 = Service(ServiceKey.mark(9, af=10), "wlc")
    d6 = Dest("fd00::2", 80, "masq", 4)
    ops = [Op(OpKind.ADD_SERVICE, s) for s in (v6, udp, mark6)]
    ops += [Op(OpKind.ADD_DEST, v6, d6), Op(OpKind.ADD_DEST, udp, Dest("10.0.8.53", 53, "gate", 2))]
    ops.append(Op(OpKind.ADD_DEST, mark6, Dest("fd00::3", 0, "gate", 1)))
    assert ipvs.apply(ops) == []
    t = ipvs.dump()
    assert t.dest(v6.key, "fd00::2", 80) == d6
    assert t.services[udp.key].flags & 0x4
    assert t.dest(mark6.key, "fd00::3", 0) is not None
    out = ipvsadm("-Ln")
    assert "[fd00::1]:80 rr" in out
    assert "UDP  10.0.9.53:53 wrr ops" in out
    assert plan(t.copy(), t) == []
