"""The pure IPVS diff (plan) and the in-memory table's kernel error rules."""

from __future__ import annotations

import errno

from lvscheck.adapters.ipvs.table import Dest, MemoryIPVS, Op, OpKind, Service, ServiceKey, Table, plan

S1 = Service(ServiceKey.tcp("10.0.0.1", 80), "wrr")
S2 = Service(ServiceKey.mark(5), "wlc", flags=1, timeout=300)
A = Dest("10.0.1.1", 80, "masq", 3, 100, 50)
B = Dest("10.0.1.2", 80, "masq", 3)


def table(*entries: tuple[Service, list[Dest]]) -> Table:
    t = Table()
    for s, ds in entries:
        t.add(s, ds)
    return t


def kinds(ops: list[Op]) -> list[tuple[str, str]]:
    return [(op.kind.name, str(op.dest) if op.dest else str(op.service.key)) for op in ops]


def test_plan_from_empty_adds_everything() -> None:
    ops = plan(table((S1, [A, B]), (S2, [])), Table())
    assert kinds(ops) == [
        ("ADD_SERVICE", "TCP 10.0.0.1:80"),
        ("ADD_DEST", "10.0.1.1:80"),
        ("ADD_DEST", "10.0.1.2:80"),
        ("ADD_SERVICE", "FWM 5"),
    ]


def test_plan_is_empty_when_equal_and_ignores_kernel_only_flags() -> None:
    kernel = table((Service(S1.key, "wrr", flags=0x2), [A, B]))  # 0x2: IP_VS_SVC_F_HASHED
    assert plan(table((S1, [A, B])), kernel) == []


def test_plan_sets_the_whole_dest_and_deletes_last() -> None:
    kernel = table((S1, [Dest("10.0.1.1", 80, "gate", 3), B, Dest("10.0.1.9", 80, "masq", 1)]))
    ops = plan(table((S1, [A, B])), kernel)
    assert kinds(ops) == [("SET_DEST", "10.0.1.1:80"), ("DEL_DEST", "10.0.1.9:80")]
    assert ops[0].dest == A  # forwarding method and thresholds included, not only the weight


def test_plan_leaves_foreign_services_and_removes_dropped_ones() -> None:
    other = Service(ServiceKey.tcp("10.0.0.99", 80))
    kernel = table((S1, [A]), (S2, []), (other, []))
    ops = plan(table((S1, [A])), kernel, remove=[S2.key])
    assert kinds(ops) == [("DEL_SERVICE", "FWM 5")]


def test_plan_edits_service_settings() -> None:
    ops = plan(table((Service(S1.key, "rr"), [A])), table((S1, [A])))
    assert kinds(ops) == [("SET_SERVICE", "TCP 10.0.0.1:80")]


def test_memory_ipvs_errors_like_the_kernel() -> None:
    m = MemoryIPVS()
    errors = m.apply(
        [
            Op(OpKind.ADD_SERVICE, S1),
            Op(OpKind.ADD_DEST, S1, A),
            Op(OpKind.ADD_DEST, S1, A),
            Op(OpKind.SET_DEST, S1, B),
            Op(OpKind.ADD_DEST, S2, A),
        ]
    )
    assert [(e.op.kind, e.errno) for e in errors] == [
        (OpKind.ADD_DEST, errno.EEXIST),
        (OpKind.SET_DEST, errno.ENOENT),
        (OpKind.ADD_DEST, errno.ESRCH),
    ]
    assert m.dump().dest(S1.key, "10.0.1.1", 80) == A
    assert "File exists" in str(errors[0])


def test_a_kernel_without_ipvs_is_a_clear_error() -> None:
    import os
    import subprocess
    import sys

    import pytest

    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has IPVS")
    from lvscheck.adapters.ipvs.netlink import NetlinkIPVS
    from lvscheck.errors import AdapterError

    with pytest.raises(AdapterError, match="modprobe ip_vs"):
        NetlinkIPVS()
    out = subprocess.run(
        [sys.executable, "-m", "lvscheck", "daemon", "--config", "/nonexistent.cf"],
        capture_output=True,
        text=True,
    )
    assert out.returncode in (1, 3)


def test_encoder_templates_give_the_same_bytes_as_pyroute2() -> None:
    import pytest

    pytest.importorskip("pyroute2")
    from pyroute2.netlink.generic import ipvs as genl

    from lvscheck.adapters.ipvs.netlink import Encoder

    enc = Encoder(genl.ipvsmsg, 28)
    for kind in (OpKind.SET_DEST, OpKind.ADD_DEST):
        for weight, seq in ((0, 1), (7, 2), (65535, 0x7FFFFFFF)):
            op = Op(kind, S1, Dest("10.0.1.1", 80, "masq", weight, 100, 50))
            assert enc.op(op, seq) == enc.full(op, seq)
    assert len(enc.templates) == 2
    six = Op(OpKind.SET_DEST, Service(ServiceKey.tcp("fd00::1", 80)), Dest("fd00::2", 80, "gate", 3))
    assert enc.op(six, 9) == enc.full(six, 9)
