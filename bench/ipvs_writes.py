"""10,000 IPVS weight changes: lvscheck's netlink adapter against ``ipvsadm -e`` per change.

Run inside the IPVS guest (UML, 1 vCPU; every syscall and process costs more
than on a real host, so compare the ratios)::

    ../shared/ipvs-guest/run-in-ipvs-guest -t 900 '.venv/bin/python bench/ipvs_writes.py'

Measures, on one virtual service with 1,000 masq reals (thresholds set):
(a) one batch of 10,000 whole-dest ``set`` operations (what the daemon sends when many
    reals change at once), (b) 10,000 single-op batches over the same persistent socket
    (one change at a time), (c) ``ipvsadm -e ... -m -w N -x -y`` per change (a sample,
    scaled to 10,000), (d) one ``ipvsadm -R`` with 10,000 ``-e`` lines (reference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from lvscheck.adapters.ipvs.netlink import NetlinkIPVS
from lvscheck.adapters.ipvs.table import Dest, Op, OpKind, Service, ServiceKey

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
REALS = 1000
SAMPLE = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def main() -> int:
    subprocess.run(["ipvsadm", "-C"], check=True)
    t0 = time.perf_counter()
    ipvs = NetlinkIPVS()
    opened = time.perf_counter() - t0
    svc = Service(ServiceKey.tcp("10.0.9.1", 80), "wrr")
    dests = [Dest(f"10.1.{i // 250}.{i % 250 + 1}", 80, "masq", 1, 1000, 10) for i in range(REALS)]
    assert ipvs.apply([Op(OpKind.ADD_SERVICE, svc)] + [Op(OpKind.ADD_DEST, svc, d) for d in dests]) == []

    def ops(k: int) -> list[Op]:
        return [
            Op(OpKind.SET_DEST, svc, Dest(d.addr, 80, "masq", (i + k) % 100 + 1, 1000, 10))
            for i, d in ((j, dests[j % REALS]) for j in range(N))
        ]

    batch = ops(1)
    t0 = time.perf_counter()
    errors = ipvs.apply(batch)
    batched = time.perf_counter() - t0
    assert not errors, errors[:3]

    single = ops(2)
    t0 = time.perf_counter()
    for op in single:
        assert ipvs.apply([op]) == []
    one_by_one = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(SAMPLE):
        d = dests[i % REALS]
        subprocess.run(
            [
                "ipvsadm",
                "-e",
                "-t",
                "10.0.9.1:80",
                "-r",
                f"{d.addr}:80",
                "-m",
                "-w",
                str(i % 100 + 1),
                "-x",
                "1000",
                "-y",
                "10",
            ],
            check=True,
        )
    per_process = (time.perf_counter() - t0) / SAMPLE * N

    lines = "".join(
        f"-e -t 10.0.9.1:80 -r {dests[j % REALS].addr}:80 -m -w {j % 100 + 1} -x 1000 -y 10\n"
        for j in range(N)
    )
    t0 = time.perf_counter()
    out = subprocess.run(["ipvsadm", "-R"], input=lines, capture_output=True, text=True, check=True)
    restore = time.perf_counter() - t0
    assert not out.stderr, out.stderr[:300]

    check = subprocess.run(["ipvsadm", "-Ln", "--thresholds"], capture_output=True, text=True).stdout
    assert check.count("1000       10") == REALS
    print(
        json.dumps(
            {
                "changes": N,
                "reals": REALS,
                "open_socket_ms": round(opened * 1000, 1),
                "a_lvscheck_one_batch_s": round(batched, 3),
                "a_per_change_ms": round(batched / N * 1000, 3),
                "b_lvscheck_one_op_per_batch_s": round(one_by_one, 3),
                "b_per_change_ms": round(one_by_one / N * 1000, 3),
                "c_ipvsadm_e_per_change_s_scaled": round(per_process, 1),
                "c_per_change_ms": round(per_process / N * 1000, 2),
                "c_sample": SAMPLE,
                "d_ipvsadm_R_one_batch_s": round(restore, 3),
                "speedup_a_vs_c": round(per_process / batched, 1),
                "speedup_b_vs_c": round(per_process / one_by_one, 1),
                "loadavg_host_view": os.getloadavg(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
