"""Drain from the CLI against a real kernel IPVS table (run inside ../shared/ipvs-guest).

The real is a Debian nginx on the guest's loopback; the virtual exists only in the guest's
table (no traffic goes through it: the table is what this test is about).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import Daemon, config, wait

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

VIP = "10.9.7.1:80"


def kernel_weight(real: str) -> int | None:
    out = subprocess.run(["ipvsadm", "-Ln", "-t", VIP], capture_output=True, text=True).stdout
    m = re.search(rf"->\s+{re.escape(real)}\s+\S+\s+(\d+)", out)
    return int(m.group(1)) if m else None


@pytest.fixture
def real(tmp_path: Path) -> Iterator[RealNginx]:
    r = RealNginx("kd", "127.0.0.1", free_port(), tmp_path)
    r.start()
    yield r
    r.stop()


def test_drain_reaches_the_kernel_table_and_survives_a_restart(tmp_path: Path, real: RealNginx) -> None:
    name = f"127.0.0.1:{real.port}"
    cf = tmp_path / "k.cf"
    cf.write_text(config([real.port], vip=VIP, extra="cleanstop=yes"))

    def start() -> Daemon:
        return Daemon(tmp_path, cf, ipvs="netlink").start()

    d = start()
    try:
        wait(lambda: kernel_weight(name) == 4, 15, "weight 4 in the kernel")
        out = d.cli("drain", VIP, name)
        assert out.returncode == 0, out.stderr
        wait(lambda: kernel_weight(name) == 0, 5, "weight 0 in the kernel after drain")
        assert d.real(real.port)["kernel_weight"] == 0
        assert d.real(real.port)["state"] == "up"
    finally:
        d.stop()
    d = start()  # cleanstop=yes removed the virtual: the restart writes it again, drained
    try:
        wait(lambda: kernel_weight(name) == 0, 15, "drained again after the restart")
        assert d.cli("undrain", VIP, name).returncode == 0
        wait(lambda: kernel_weight(name) == 4, 5, "weight 4 after undrain")
    finally:
        d.stop()
