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
from tests import netns
from tests.daemon.ipvstable import table, wait
from tests.daemon.test_ipvs_daemon import Daemon
from tests.netns import sh
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
    with netns.nat_lan("br3", "10.0.3", {"ss2": 2, "ss3": 3}, "d3", ("10.0.4.1",)) as lan:
        out = {ns: RealNginx(ns, addr, 80, d, netns=ns) for ns, addr in lan.items()}
        try:
            for r in out.values():
                r.start()
            yield out
        finally:
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
