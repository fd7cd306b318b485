"""The kernel view keeps the private (via=vip) firewall-mark services: created, restored, removed.

An in-memory IPVS table with the kernel's error rules (the guest test
tests/daemon/test_ipvs_via.py does the same against the real kernel).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lvscheck.adapters.ipvs.table import Dest, MemoryIPVS, Service, ServiceKey
from lvscheck.config.via import MarkRange
from lvscheck.daemon.events import EventSink
from lvscheck.daemon.kernel import KernelView
from lvscheck.daemon.status import Counters

BASE = 0x4C560000
CLIENT = Service(ServiceKey.tcp("192.168.0.200", 80), "wlc")
CLIENT_REAL = Dest("192.168.0.110", 80, "gate", 1)


def private(*reals: tuple[int, str, str]) -> dict[ServiceKey, tuple[Service, Dest]]:
    out = {}
    for mark, addr, fwd in reals:
        key = ServiceKey.mark(mark)
        out[key] = (Service(key, "rr"), Dest(addr, 0, fwd, 1))
    return out


def view(ipvs: MemoryIPVS) -> KernelView:
    v = KernelView(ipvs, Counters(), EventSink(), lambda key: (CLIENT, [CLIENT_REAL]), lambda: ["vs"])
    v.read()
    return v


def marks(ipvs: MemoryIPVS) -> dict[int, list[tuple[str, str]]]:
    t = ipvs.table
    return {k.fwmark: [(d.addr, d.fwd) for d in t.dests[k].values()] for k in t.services if k.fwmark}


def test_sync_creates_one_service_per_real_and_removes_stale_marks_of_ours_only() -> None:
    ipvs = MemoryIPVS()
    foreign = Service(ServiceKey.mark(7), "wlc")  # an operator's own fwmark virtual: not ours
    ipvs.table.add(foreign, [Dest("10.0.0.9", 0, "gate", 3)])
    ipvs.table.add(Service(ServiceKey.mark(BASE + 9), "rr"), [Dest("192.168.0.99", 0, "gate", 1)])  # stale
    v = view(ipvs)
    v.sync_private(
        private((BASE, "192.168.0.110", "gate"), (BASE + 1, "192.168.0.140", "ipip")), MarkRange(BASE)
    )
    assert marks(ipvs) == {
        7: [("10.0.0.9", "gate")],
        BASE: [("192.168.0.110", "gate")],
        BASE + 1: [("192.168.0.140", "ipip")],
    }


def test_reconcile_restores_a_private_service_deleted_by_hand_and_its_real() -> None:
    ipvs = MemoryIPVS()
    v = view(ipvs)
    v.sync_private(
        private((BASE, "192.168.0.110", "gate"), (BASE + 1, "192.168.0.120", "gate")), MarkRange(BASE)
    )
    del ipvs.table.services[ServiceKey.mark(BASE)]  # ipvsadm -D -f BASE
    ipvs.table.dests.pop(ServiceKey.mark(BASE))
    ipvs.table.dests[ServiceKey.mark(BASE + 1)].clear()  # ipvsadm -d -f BASE+1 -r ...
    ipvs.table.add(Service(ServiceKey.mark(BASE + 5), "rr"))  # one of ours nobody wants
    asyncio.run(v.reconcile())
    assert marks(ipvs) == {BASE: [("192.168.0.110", "gate")], BASE + 1: [("192.168.0.120", "gate")]}
    assert ServiceKey.tcp("192.168.0.200", 80) in ipvs.table.services  # the client service too


def test_the_option_removed_removes_every_private_service() -> None:
    ipvs = MemoryIPVS()
    v = view(ipvs)
    v.sync_private(private((BASE, "192.168.0.110", "gate")), MarkRange(BASE))
    v.sync_private({}, MarkRange(BASE))
    assert marks(ipvs) == {}


def test_stop_removes_them_but_those_a_cleanstop_no_virtual_uses() -> None:
    ipvs = MemoryIPVS()
    v = view(ipvs)
    v.sync_private(
        private((BASE, "192.168.0.110", "gate"), (BASE + 1, "192.168.0.120", "gate")), MarkRange(BASE)
    )
    assert v.remove_private(keep={ServiceKey.mark(BASE + 1)}) == 1
    assert list(marks(ipvs)) == [BASE + 1]
    assert v.remove_private() == 1
    assert marks(ipvs) == {}


def test_moved_mark_base_owns_other_marks() -> None:
    ipvs = MemoryIPVS()
    ipvs.table.add(Service(ServiceKey.mark(BASE), "rr"), [Dest("192.168.0.110", 0, "gate", 1)])
    v = view(ipvs)
    v.sync_private(private((0x10000, "192.168.0.110", "gate")), MarkRange(0x10000))
    assert list(marks(ipvs)) == [BASE, 0x10000]  # the old base is no longer ours: left alone


def test_a_director_that_drops_replies_from_its_own_vip_is_told(tmp_path: Path) -> None:
    for iface, value in (("all", "0"), ("default", "0"), ("eth0", "0"), ("lo", "0")):
        (tmp_path / iface).mkdir()
        (tmp_path / iface / "accept_local").write_text(value + "\n")
    sink = EventSink()
    seen: list[str] = []
    sink.emit = lambda event, mail=None, **fields: seen.append(event) or {}  # type: ignore[method-assign]
    v = KernelView(MemoryIPVS(), Counters(), sink, lambda key: None, list)
    assert v.check_accept_local(str(tmp_path))  # no private service: nothing to say
    v.sync_private(private((BASE, "192.168.0.110", "gate")), MarkRange(BASE))
    assert not v.check_accept_local(str(tmp_path))
    assert seen == ["via-vip-blocked"]
    (tmp_path / "eth0" / "accept_local").write_text("1\n")
    assert v.check_accept_local(str(tmp_path))
