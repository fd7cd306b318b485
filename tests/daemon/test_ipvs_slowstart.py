"""Slow start in a real IPVS table (run inside ../shared/ipvs-guest): the weight climbs step by step.

Two Debian nginx reals in network namespaces ss2/ss3 (10.0.3.2, 10.0.3.3) behind a
bridge, the VIP 10.0.4.1 on a dummy interface, NAT forwarding; every address exists
only inside the guest.  The daemon runs as a real process from a real ldirectord.cf
with ``#lvscheck: slowstart=4``; the test reads ``ipvsadm -Ln`` while one real
comes back.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.daemon.test_ipvs_daemon import Daemon, sh, table, wait
from tests.peers.nginx import RealNginx

from lvscheck.cli import main as cli_main

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

VIP = "10.0.4.1:80"
CONFIG = """\
checktimeout=1
checkinterval=1
failurecount=1
quiescent=yes
cleanstop=no
#lvscheck: rise=1 fastinterval=0.2

virtual=10.0.4.1:80
	real=10.0.3.2:80 masq 8
	real=10.0.3.3:80 masq 8
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wrr
	#lvscheck: slowstart=4
"""


@pytest.fixture(scope="module")
def reals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RealNginx]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the ipvs guest)")
    d = tmp_path_factory.mktemp("slowstartnet")
    for i in (2, 3):  # leftovers of an earlier run go first
        sh(f"ip netns del ss{i} 2>/dev/null || true; ip link del s{i} 2>/dev/null || true")
    sh("ip link del br3 2>/dev/null || true; ip link del d3 2>/dev/null || true")
    for i in (2, 3):
        sh(
            f"ip netns add ss{i} && ip link add s{i} type veth peer name t{i} && ip link set t{i} netns ss{i}"
            f" && ip -n ss{i} addr add 10.0.3.{i}/24 dev t{i} && ip -n ss{i} link set t{i} up"
            f" && ip -n ss{i} link set lo up && ip -n ss{i} route add default via 10.0.3.1"
        )
    sh("ip link add br3 type bridge && ip link set br3 up && ip addr add 10.0.3.1/24 dev br3")
    for i in (2, 3):
        sh(f"ip link set s{i} master br3 && ip link set s{i} up")
    sh("ip link add d3 type dummy && ip link set d3 up && ip addr add 10.0.4.1/32 dev d3")
    sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.vs.conntrack=1")
    out = {f"ss{i}": RealNginx(f"ss{i}", f"10.0.3.{i}", 80, d, netns=f"ss{i}") for i in (2, 3)}
    for r in out.values():
        r.start()
    yield out
    for r in out.values():
        r.stop()


def weights(real: str, until: int, timeout: float) -> list[int | None]:
    """Every distinct weight ``real`` has in the kernel, read every 50 ms, until it is ``until``."""
    seen: list[int | None] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        w = table().get(VIP, {}).get(real)
        if not seen or seen[-1] != w:
            seen.append(w)
        if w == until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{real} never reached weight {until}: {seen}")


def test_weight_climbs_step_by_step_in_the_kernel(reals: dict[str, RealNginx], tmp_path: Path) -> None:
    sh(f"ipvsadm -D -t {VIP} 2>/dev/null || true")
    cf = tmp_path / "lvs.cf"
    cf.write_text(CONFIG)
    daemon = Daemon(tmp_path, cf)
    daemon.start()
    try:
        # a cold start is not throttled: both reals go straight to 8
        cold = weights("10.0.3.3:80", 8, 20)
        assert [w for w in cold if w] == [8], cold
        wait(lambda: table().get(VIP, {}).get("10.0.3.2:80") == 8, 10, "rs2 at 8")

        reals["ss3"].stop()
        try:
            wait(lambda: table().get(VIP, {}).get("10.0.3.3:80") == 0, 10, "ss3 quiesced")
        finally:
            reals["ss3"].start()
        t0 = time.monotonic()
        wait(lambda: table().get(VIP, {}).get("10.0.3.3:80") == 1, 10, "ss3 back at the first step")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # in this process: a process start is slow in the guest
            assert cli_main(["status", "--control", str(daemon.sock)]) == 0
        shown = out.getvalue()
        seen = [1, *weights("10.0.3.3:80", 8, 20)]
        took = time.monotonic() - t0
        # 4 steps over 4 s: 8*k//5 for k = 1..4, then the full weight
        assert [w for i, w in enumerate(seen) if w and (i == 0 or w != seen[i - 1])] == [1, 3, 4, 6, 8], seen
        assert 3.5 < took < 8, took
        assert re.search(
            r"10\.0\.3\.3:80 .* SLOW START [1-7]/8 \(step [1-4]/4, [\d.]+ s left\); HTTP 200", shown
        ), shown
        assert table()[VIP]["10.0.3.2:80"] == 8  # the other real never moved
        reals_status = daemon.status()["virtuals"][0]["reals"]  # type: ignore[index]
        assert all(r["slowstart"] is None for r in reals_status)  # over
        assert "slow start, weight 1 of 8, up to it over 4 s in 4 steps" in daemon.log()
    finally:
        daemon.stop()
