"""Failure-to-weight-0 time for one real: ``lvscheck daemon`` against Debian's ldirectord.

Same ldirectord.cf, same real servers (nginx in network namespaces behind a NAT
VIP, as in tests/daemon/test_ipvs_daemon.py), same kernel table.  For each
daemon: wait until both reals have their weight, then take rs3 down -- (1) stop
nginx (connection refused), (2) SIGSTOP it (the check times out) -- and measure
the time until the kernel table shows weight 0 (sampled every 20 ms over
netlink).  Run inside the IPVS guest::

    ../shared/ipvs-guest/run-in-ipvs-guest -t 900 -M veth,bridge,dummy,ip_vs_wrr \\
        '.venv/bin/python bench/failover_vs_ldirectord.py'
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.netlink import NetlinkIPVS
from lvscheck.adapters.ipvs.table import ServiceKey

CONFIG = """\
checktimeout=2
negotiatetimeout=2
checkinterval=2
failurecount=2
quiescent=yes
cleanstop=yes
autoreload=no
logfile="{log}"

virtual=10.0.1.1:80
	real=10.0.0.2:80 masq 5
	real=10.0.0.3:80 masq 5
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wrr
	protocol=tcp
"""
VIP = ServiceKey.tcp("10.0.1.1", 80)
TRIALS = int(os.environ.get("TRIALS", "3"))


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True)


def network(d: Path) -> dict[str, RealNginx]:
    for i in (2, 3):
        sh(
            f"ip netns add rs{i} && ip link add h{i} type veth peer name g{i} && ip link set g{i} netns rs{i}"
            f" && ip -n rs{i} addr add 10.0.0.{i}/24 dev g{i} && ip -n rs{i} link set g{i} up"
            f" && ip -n rs{i} link set lo up && ip -n rs{i} route add default via 10.0.0.1"
        )
    sh("ip link add br0 type bridge && ip link set br0 up && ip addr add 10.0.0.1/24 dev br0")
    for i in (2, 3):
        sh(f"ip link set h{i} master br0 && ip link set h{i} up")
    sh("ip link add d0 type dummy && ip link set d0 up && ip addr add 10.0.1.1/32 dev d0")
    reals = {f"rs{i}": RealNginx(f"rs{i}", f"10.0.0.{i}", 80, d, netns=f"rs{i}") for i in (2, 3)}
    for r in reals.values():
        r.start()
    return reals


def weight(ipvs: NetlinkIPVS, real: str) -> int | None:
    d = ipvs.dump().dest(VIP, real, 80)
    return None if d is None else d.weight


def wait_weight(ipvs: NetlinkIPVS, real: str, want: int, timeout: float = 60) -> float:
    start = time.monotonic()
    while weight(ipvs, real) != want:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{real} never reached weight {want}")
        time.sleep(0.02)
    return time.monotonic() - start


def trials(ipvs: NetlinkIPVS, rs3: RealNginx) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"refused": [], "stalled": []}
    for mode in ("refused", "stalled"):
        for _ in range(TRIALS):
            wait_weight(ipvs, "10.0.0.3", 5)
            time.sleep(0.5)
            assert rs3.proc is not None
            if mode == "refused":
                rs3.stop()
            else:
                rs3.pause()
            out[mode].append(round(wait_weight(ipvs, "10.0.0.3", 0), 2))
            if mode == "refused":
                rs3.start()
            else:
                rs3.resume()
    return out


def main() -> int:
    d = Path(tempfile.mkdtemp(prefix="failover-"))
    reals = network(d)
    ipvs = NetlinkIPVS()
    results: dict[str, object] = {}
    cf = d / "failover.cf"
    cf.write_text(CONFIG.format(log=d / "ld.log"))
    runs = [
        (
            "lvscheck",
            [sys.executable, "-m", "lvscheck", "daemon", "--config", str(cf), "--control", str(d / "s")],
        )
    ]
    if os.path.exists("/usr/sbin/ldirectord"):
        runs.append(("ldirectord", ["/usr/sbin/ldirectord", "-d", str(cf), "start"]))
    for name, argv in runs:
        sh("ipvsadm -C")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(d / f"{name}.err", "wb"))  # noqa: SIM115
        try:
            wait_weight(ipvs, "10.0.0.2", 5, 120)
            t = trials(ipvs, reals["rs3"])
            results[name] = {k: {"runs": v, "median_s": statistics.median(v)} for k, v in t.items()}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    results["config"] = (
        "checkinterval=2 checktimeout=negotiatetimeout=2 failurecount=2 quiescent=yes, http check"
    )
    print(json.dumps(results, indent=2))
    for r in reals.values():
        r.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
