"""A start and a reload of 3,000 reals against the kernel IPVS table: one batch each (in the ipvs guest).

The reals are ``checktype=on`` (never checked: up at their weight), so the test is about the
install and the kernel writes only.  The first start writes 3,030 entries, over
``THREAD_WRITES``: that batch goes to netlink from a thread while the loop runs on.
Addresses 10.77.x.y / 10.78.x.y exist only in the guest's table (no traffic is sent).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from tests.daemon.running import until

from lvscheck.adapters.ipvs.table import Op, OpKind, ServiceKey
from lvscheck.daemon.director import Director
from lvscheck.daemon.kernel import THREAD_WRITES

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

VIRTUALS = 30
PER_VIRTUAL = 100


def _config(weights: dict[int, int], drop: int = 0, extra: bool = False) -> str:
    lines = ["quiescent=yes", "cleanstop=yes", ""]
    blocks = [*range(VIRTUALS), *([VIRTUALS] if extra else [])]
    for v in blocks:
        lines.append(f"virtual=10.77.0.{v + 1}:80")
        for i in range(drop if v == 0 else 0, PER_VIRTUAL):
            lines.append(f"\treal=10.78.{i // 250}.{i % 250 + 1}:80 masq {weights.get(v, 3)}")
        lines += ["\tchecktype=on", ""]
    return "\n".join(lines)


def _weights(table_dests: dict[tuple[str, int], object]) -> list[int]:
    return sorted({d.weight for d in table_dests.values()})  # type: ignore[attr-defined]


def test_start_and_reload_of_3000_reals_are_one_kernel_batch_each(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (the ipvs guest)")
    from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

    cf = tmp_path / "big.cf"
    cf.write_text(_config({}))
    ipvs = NetlinkIPVS()
    left = ipvs.dump().services  # what an earlier run in this guest left
    ipvs.apply([Op(OpKind.DEL_SERVICE, s) for k, s in left.items() if k.addr.startswith("10.77.")])
    director = Director(str(cf), ipvs)
    first = ServiceKey.tcp("10.77.0.1", 80)

    async def main() -> None:
        task = asyncio.create_task(director.run())
        try:
            await until(lambda: director.state == "running", 60, "the first install")
            table = ipvs.dump()
            ours = [k for k in table.services if k.addr.startswith("10.77.")]
            assert len(ours) == VIRTUALS
            assert sum(len(table.dests[k]) for k in ours) == VIRTUALS * PER_VIRTUAL
            assert _weights(table.dests[first]) == [3]
            assert VIRTUALS * (PER_VIRTUAL + 1) >= THREAD_WRITES  # the start's batch went from a thread
            batches, writes = ipvs.batches, ipvs.writes
            # 50 reals out of the first virtual, virtuals 2-4 reweighted, one virtual of 100 added
            cf.write_text(_config({1: 7, 2: 7, 3: 7}, drop=50, extra=True))
            assert await director.reload("test")
            assert ipvs.batches - batches == 1
            assert ipvs.writes - writes == 50 + 300 + 1 + 100
            table = ipvs.dump()
            assert len(table.dests[first]) == PER_VIRTUAL - 50
            assert _weights(table.dests[ServiceKey.tcp("10.77.0.2", 80)]) == [7]
            assert len(table.dests[ServiceKey.tcp(f"10.77.0.{VIRTUALS + 1}", 80)]) == PER_VIRTUAL
            last = director.counters.last_reload
            assert last is not None
            assert last["ipvs_writes"] == 451
        finally:
            director.stop()
            await task
        table = ipvs.dump()
        assert not [k for k in table.services if k.addr.startswith("10.77.")]  # cleanstop=yes

    try:
        asyncio.run(main())
    finally:
        ipvs.close()
