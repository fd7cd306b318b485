"""CPU per HTTP check through the VIP (via=vip) against the RIP path, same run, same real.

Run inside ../shared/ipvs-guest (it needs IPVS, namespaces and root):

    ../shared/ipvs-guest/run-in-ipvs-guest -M veth,bridge '.venv/bin/python bench/via_vip.py'

(already in the guest: ``.venv/bin/python bench/via_vip.py [-n 2000] [--rounds 3]``).
One real (Debian Apache in namespace ``bench-r1``, 192.168.0.110, the VIP
192.168.0.200 on its ``lo``) on a bridge with the director (192.168.0.10, the VIP
on the bridge, ``accept_local=1``); the private firewall-mark service of the real
is created as the daemon creates it.  Rounds alternate RIP, VIP, RIP, VIP, ...:
N checks ``http request=/test.html receive='Still alive'`` through
``Engine(max_in_flight=32, per_host=32).run_many``; CPU is ``time.process_time()``
of this process only (the director's side; the real's and the kernel's softirq
work on the real are not in it).  The UML guest makes every syscall expensive:
compare the two lines, not the absolute figures with the host's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.daemon.apache import RealApache

from lvscheck import CheckSpec, Engine, State, Target

DIP, VIP, RIP, BRIDGE, NS = "192.168.0.10", "192.168.0.200", "192.168.0.110", "br-bench", "bench-r1"
MARK = 0x4C560000
OPTIONS = {"request": "/test.html", "receive": "Still alive"}


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True, capture_output=True)


def quiet(cmd: str) -> None:
    subprocess.run(cmd, shell=True, capture_output=True, check=False)


def topology() -> None:
    quiet(f"ip netns del {NS}; ip link del {BRIDGE}; ip link del h-bench")
    sh(f"ip link add {BRIDGE} type bridge && ip link set {BRIDGE} up && ip addr add {DIP}/24 dev {BRIDGE}")
    sh(f"ip addr add {VIP}/32 dev {BRIDGE} && sysctl -qw net.ipv4.conf.{BRIDGE}.accept_local=1")
    sh(
        f"ip netns add {NS} && ip link add h-bench type veth peer name eth0 netns {NS}"
        f" && ip link set h-bench master {BRIDGE} && ip link set h-bench up"
        f" && ip -n {NS} addr add {RIP}/24 dev eth0 && ip -n {NS} link set eth0 up"
        f" && ip -n {NS} link set lo up"
        f" && ip -n {NS} addr add {VIP}/32 dev lo"
        f" && ip netns exec {NS} sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
    )
    quiet(f"ipvsadm -D -f {MARK}")
    sh(f"ipvsadm -A -f {MARK} -s rr && ipvsadm -a -f {MARK} -r {RIP} -g -w 1")


async def one_round(target: Target, n: int) -> tuple[float, float, int]:
    engine = Engine(max_in_flight=32, per_host=32)
    check = engine.prepare(CheckSpec("http", target, OPTIONS))
    c0, w0 = time.process_time(), time.perf_counter()
    results = await engine.run_many([check] * n)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu, wall, sum(r.state is State.UP for r in results)


def rounds(paths: dict[str, Target], n: int, count: int) -> None:
    cpu: dict[str, list[float]] = {"rip": [], "vip": []}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    asyncio.run(one_round(paths["vip"], 50))  # warm-up (ARP, the server's workers)
    for r in range(count):
        for name in ("rip", "vip"):
            c, w, up = asyncio.run(one_round(paths[name], n))
            cpu[name].append(c / n)
            print(f"  round {r + 1} {name}: {n} checks {w:6.2f} s  CPU {c / n * 1e6:7.1f} us/check  up {up}")
    rip, vip = statistics.median(cpu["rip"]), statistics.median(cpu["vip"])
    print(f"median CPU per check: rip {rip * 1e6:.1f} us, vip {vip * 1e6:.1f} us, vip/rip {vip / rip:.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def host(n: int, count: int) -> None:
    """Loopback nginx: the same connection, marked or not (the director-side cost alone)."""
    import tempfile

    from tests.peers.nginx import start_nginx

    with tempfile.TemporaryDirectory(prefix="lvscheck-bench-") as tmp, start_nginx(Path(tmp) / "nginx") as ng:
        port = ng.http_port
        rounds(
            {
                "rip": Target("127.0.0.1", port),
                "vip": Target("127.0.0.1", port, via="127.0.0.1", mark=MARK),
            },
            n,
            count,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="checks per round (default 2000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    ap.add_argument("--host", action="store_true", help="loopback nginx on the host, no IPVS (see above)")
    args = ap.parse_args()
    if args.host:
        host(args.n, args.rounds)
        return 0
    if not os.path.exists("/proc/net/ip_vs") or os.geteuid() != 0:
        print("needs root and IPVS: run it in ../shared/ipvs-guest (or --host)", file=sys.stderr)
        return 2
    topology()
    real = RealApache("r1", RIP, NS)
    real.start()
    try:
        rounds(
            {
                "rip": Target(RIP, 80, forwarding="gate"),
                "vip": Target(RIP, 80, forwarding="gate", via=VIP, mark=MARK),
            },
            args.n,
            args.rounds,
        )
    finally:
        real.cleanup()
        quiet(f"ipvsadm -D -f {MARK}; ip netns del {NS}; ip link del {BRIDGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
