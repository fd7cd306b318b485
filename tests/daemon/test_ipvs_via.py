"""The seed how-to's LVS-DR topology end to end, and checks through the VIP (``via=vip``).

Inside ../shared/ipvs-guest: a client namespace, the director (the guest itself)
and real servers in namespaces on one bridge, set up as the how-to says: each real
holds the VIP on ``lo`` with ``arp_ignore=1``/``arp_announce=2`` and runs Debian's
Apache serving ``test.html`` "Still alive" and a page naming the real.  The
director runs ``lvscheck daemon`` on the how-to's ldirectord.cf (``gate``,
``quiescent=yes``, ``wlc``; its ``fallback=127.0.0.1:80`` left out: no local web
server here).  Each fault is shown twice, on two virtuals over the same reals:
``via=vip`` takes the real out and every client request succeeds; ``via=rip``
(ldirectord's way) keeps it in and clients through that VIP are dropped.  The
addresses (the how-to's own 192.168.0.x) exist only inside the guest.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import netns
from tests.daemon.apache import APACHE, RealApache
from tests.daemon.ipvstable import table, wait
from tests.netns import quiet, sh

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
    pytest.mark.skipif(not os.path.exists(APACHE), reason="no apache2 (Debian package apache2)"),
]

DIP = "192.168.0.10"  # the director's own address on the bridge
CLIENT = "192.168.0.50"
VIP_DR, VIP_DR_RIP = "192.168.0.200", "192.168.0.202"  # via=vip, and the via=rip control
VIP_TUN, VIP_TUN_RIP = "192.168.0.201", "192.168.0.203"
R1, R2, T1 = "192.168.0.110", "192.168.0.120", "192.168.0.140"
NETNS = {"via-r1": R1, "via-r2": R2, "via-t1": T1, "via-client": CLIENT}
BRIDGE = "br-via"

HOWTO = """\
# the seed how-to's /etc/ha.d/ldirectord.cf (checkinterval 1 s instead of 5: a faster test)
checktimeout=2
checkinterval=1
autoreload=no
quiescent=yes
#lvscheck: fastinterval=0.3

virtual={dr}:80
	real={r1}:80 gate
	real={r2}:80 gate
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wlc
	protocol=tcp
	checktype=negotiate
	#lvscheck: via={via}

# the control: the same reals checked on their own addresses, as ldirectord does (rr: every
# other client request reaches r2, so a blackhole there shows)
virtual={dr_rip}:80
	real={r1}:80 gate
	real={r2}:80 gate
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=rr
	protocol=tcp
	checktype=negotiate

virtual={tun}:80
	real={t1}:80 ipip
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wlc
	#lvscheck: via={via}

virtual={tun_rip}:80
	real={t1}:80 ipip
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wlc
"""


def config(via: str = "vip") -> str:
    return HOWTO.format(
        dr=VIP_DR, dr_rip=VIP_DR_RIP, tun=VIP_TUN, tun_rip=VIP_TUN_RIP, r1=R1, r2=R2, t1=T1, via=via
    )


def clear_leftovers() -> None:
    """Namespaces, links and addresses an earlier (killed) run may have left."""
    netns.remove(NETNS, [BRIDGE, *(f"h-{ns}" for ns in NETNS)])


@pytest.fixture(scope="module")
def reals() -> Iterator[dict[str, RealApache]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the ipvs guest)")
    if subprocess.run(["modprobe", "ipip"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no ipip module (LVS-TUN)")
    clear_leftovers()
    netns.bridge(BRIDGE, f"{DIP}/24")
    for ns, addr in NETNS.items():
        netns.plug(ns, BRIDGE, f"h-{ns}", f"{addr}/24")
    # the director: the VIPs on its interface; replies through the VIP come back from a real
    # holding the VIP, so the director must accept packets with one of its own addresses as source
    for vip in (VIP_DR, VIP_DR_RIP, VIP_TUN, VIP_TUN_RIP):
        sh(f"ip addr add {vip}/32 dev {BRIDGE}")
    sh(f"sysctl -qw net.ipv4.conf.{BRIDGE}.accept_local=1 net.ipv4.conf.all.rp_filter=0")
    sh(f"sysctl -qw net.ipv4.conf.{BRIDGE}.rp_filter=0 net.ipv4.vs.conntrack=1")
    # the how-to's reals: the VIP on lo, no ARP for it
    for ns in ("via-r1", "via-r2"):
        arp = "net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1"
        arp += " net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_announce=2"
        sh(f"ip netns exec {ns} sysctl -qw {arp}")
        add_vips(ns)
    # LVS-TUN real: the VIPs on tunl0 (ipip), rp_filter off there
    sh("ip netns exec via-t1 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")
    sh("ip -n via-t1 link set tunl0 up && ip netns exec via-t1 sysctl -qw net.ipv4.conf.all.rp_filter=0")
    sh("ip netns exec via-t1 sysctl -qw net.ipv4.conf.tunl0.rp_filter=0")
    for vip in (VIP_TUN, VIP_TUN_RIP):
        sh(f"ip -n via-t1 addr add {vip}/32 dev tunl0")
    servers = {
        ns: RealApache(ns.removeprefix("via-"), NETNS[ns], ns) for ns in ("via-r1", "via-r2", "via-t1")
    }
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.cleanup()
        clear_leftovers()
        for vip in (VIP_DR, VIP_DR_RIP, VIP_TUN, VIP_TUN_RIP):
            quiet(f"ip addr del {vip}/32 dev {BRIDGE}")


def add_vips(ns: str) -> None:
    for vip in (VIP_DR, VIP_DR_RIP):
        quiet(f"ip -n {ns} addr add {vip}/32 dev lo")


def del_vips(ns: str) -> None:
    for vip in (VIP_DR, VIP_DR_RIP):
        quiet(f"ip -n {ns} addr del {vip}/32 dev lo")


def weight(vip: str, real: str) -> int | None:
    return table().get(f"{vip}:80", {}).get(f"{real}:80")


def private() -> dict[str, dict[str, int]]:
    return {k: v for k, v in table().items() if k.startswith("FWM ")}


CLIENT_SCRIPT = """
import json, socket, sys
vip, n = sys.argv[1], int(sys.argv[2])
got = {}
for _ in range(n):
    try:
        with socket.create_connection((vip, 80), timeout=0.7) as s:
            s.settimeout(1.5)
            s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        name = data.split(b"\\r\\n\\r\\n", 1)[-1].decode().strip() or "empty"
    except OSError as exc:
        name = "FAILED"
    got[name] = got.get(name, 0) + 1
print(json.dumps(got))
"""


def clients(vip: str, n: int) -> dict[str, int]:
    """``n`` client requests through ``vip`` from the client namespace: {real name or FAILED: count}."""
    out = sh(f"ip netns exec via-client {sys.executable} -c '{CLIENT_SCRIPT}' {vip} {n}")
    answer: dict[str, int] = json.loads(out)
    return answer


class Daemon:
    def __init__(self, d: Path) -> None:
        self.dir = d
        self.config = d / "ldirectord.cf"
        self.sock = d / "ctl.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "lvscheck", "daemon", "--config", str(self.config)]
        argv += [
            "--control",
            str(self.sock),
            "--reconcile",
            "1",
            "--event-log",
            str(self.dir / "events.jsonl"),
        ]
        with open(self.dir / "daemon.log", "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        wait(self.sock.exists, 30, "daemon control socket")

    def status(self) -> dict[str, object]:
        from lvscheck.daemon.control import query

        return query(str(self.sock))

    def reason(self, vip: str, real: str) -> str:
        for v in self.status()["virtuals"]:  # type: ignore[attr-defined]
            if v["virtual"] == f"{vip}:80":
                for r in v["reals"]:
                    if r["real"] == f"{real}:80":
                        return str(r["reason"])
        return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.proc = None


def all_up() -> bool:
    t = table()
    wanted = {
        f"{VIP_DR}:80": {f"{R1}:80", f"{R2}:80"},
        f"{VIP_DR_RIP}:80": {f"{R1}:80", f"{R2}:80"},
        f"{VIP_TUN}:80": {f"{T1}:80"},
        f"{VIP_TUN_RIP}:80": {f"{T1}:80"},
    }
    return all(set(t.get(v, {})) == rs and all(w == 1 for w in t[v].values()) for v, rs in wanted.items())


@pytest.fixture(scope="module")
def daemon(reals: dict[str, RealApache], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sh("ipvsadm -C")
    d = Daemon(tmp_path_factory.mktemp("via"))
    d.config.write_text(config("vip"))
    d.start()
    try:
        wait(all_up, 30, "every real up")
        yield d
    finally:
        d.stop()
        with contextlib.suppress(OSError):
            print((d.dir / "daemon.log").read_text()[-3000:])


HOLD = 4.0  # seconds: several check intervals, to show via=rip does NOT take the real out


def test_clients_through_the_vip_reach_both_reals(daemon: Daemon) -> None:
    assert clients(VIP_DR, 10).keys() == {"r1", "r2"}
    assert clients(VIP_TUN, 3) == {"t1": 3}
    via = daemon.status()["via_services"]
    assert {(s["real"], s["forwarding"], s["in_kernel"]) for s in via} == {  # type: ignore[attr-defined]
        (R1, "gate", True),
        (R2, "gate", True),
        (T1, "ipip", True),
    }
    assert len(private()) == 3
    assert all(len(dests) == 1 for dests in private().values())


def test_vip_alias_removed_via_vip_takes_the_real_out(daemon: Daemon, reals: dict[str, RealApache]) -> None:
    del_vips("via-r2")
    try:
        wait(lambda: weight(VIP_DR, R2) == 0, 15, "r2 at weight 0 through the VIP")
        time.sleep(HOLD)
        # the RIP check still says up: ldirectord's way keeps the blackhole in rotation
        assert weight(VIP_DR_RIP, R2) == 1
        assert weight(VIP_DR, R2) == 0
        assert weight(VIP_DR, R1) == 1
        # the connect through the VIP fails: a timeout, a refusal, or whatever ICMP the guest's
        # kernel answered with (CI once saw an errno there: "... connecting to VIP (through the VIP")
        why = daemon.reason(VIP_DR, R2)
        assert (
            "timed out" in why or "refused" in why or f"connecting to {VIP_DR}:80 (through the VIP" in why
        ), why
        assert clients(VIP_DR, 12) == {"r1": 12}  # every client request succeeds
        assert clients(VIP_DR_RIP, 8).get("FAILED", 0) > 0  # via=rip: clients sent to r2 are lost
    finally:
        add_vips("via-r2")
    wait(lambda: weight(VIP_DR, R2) == 1, 15, "r2 back after the VIP alias is restored")
    assert "r2" in clients(VIP_DR, 10)  # (wlc: r1's recent connections send these to r2 first)


def test_server_on_the_rip_only_is_down_through_the_vip(daemon: Daemon, reals: dict[str, RealApache]) -> None:
    reals["via-r2"].restart(f"{R2}:80")
    try:
        wait(lambda: weight(VIP_DR, R2) == 0, 15, "r2 (RIP-only listener) at weight 0 through the VIP")
        time.sleep(HOLD)
        assert weight(VIP_DR_RIP, R2) == 1  # the RIP check is happy
        assert clients(VIP_DR, 12) == {"r1": 12}
        assert clients(VIP_DR_RIP, 8).get("FAILED", 0) > 0
    finally:
        reals["via-r2"].restart("80")
    wait(lambda: weight(VIP_DR, R2) == 1, 15, "r2 back once it listens on every address")


def test_tunnel_down_is_down_through_the_vip(daemon: Daemon) -> None:
    sh("ip -n via-t1 link set tunl0 down")
    try:
        wait(lambda: weight(VIP_TUN, T1) == 0, 15, "t1 (tunl0 down) at weight 0 through the VIP")
        time.sleep(HOLD)
        assert weight(VIP_TUN_RIP, T1) == 1  # the RIP check is happy
        assert clients(VIP_TUN_RIP, 3) == {"FAILED": 3}  # and every client through it is lost
    finally:
        sh("ip -n via-t1 link set tunl0 up")
        for vip in (VIP_TUN, VIP_TUN_RIP):
            quiet(f"ip -n via-t1 addr add {vip}/32 dev tunl0")
    wait(lambda: weight(VIP_TUN, T1) == 1, 15, "t1 back once its tunnel is up")
    assert clients(VIP_TUN, 3) == {"t1": 3}


def conns() -> dict[str, int]:
    """Connections scheduled per service (``ipvsadm -Ln --stats``)."""
    out: dict[str, int] = {}
    for line in sh("ipvsadm -Ln --stats").splitlines():
        m = re.match(r"^(?:TCP|UDP)\s+(\S+)\s+(\d+)|^FWM\s+(\d+)\s+(\d+)", line)
        if m:
            out[m.group(1) or f"FWM {m.group(3)}"] = int(m.group(2) or m.group(4))
    return out


def test_private_services_never_take_client_traffic(daemon: Daemon) -> None:
    time.sleep(2.5)  # the kernel folds its per-cpu counters into these every 2 s
    before = conns()
    assert clients(VIP_DR, 30).keys() == {"r1", "r2"}
    key = f"{VIP_DR}:80"
    # the kernel's estimator runs late in a busy one-vCPU guest: give it time
    wait(
        lambda: conns()[key] - before[key] >= 30,
        30,
        f"the 30 client connections counted by {key} (a private service took some?)",
    )
    time.sleep(2.5)
    # every client connection was scheduled by the client service: none by a private one
    assert conns()[key] - before[key] == 30


def test_private_services_restored_removed_and_cleaned(daemon: Daemon) -> None:
    mark = next(iter(private())).split()[1]
    sh(f"ipvsadm -D -f {mark}")
    wait(lambda: f"FWM {mark}" in private(), 10, "the private service deleted by hand is restored")
    # the option goes (reload): the private services go, the checks go back to the RIP
    daemon.config.write_text(config("rip"))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait(lambda: not private(), 10, "private services removed with via=rip")
    assert daemon.status()["via_services"] == []
    daemon.config.write_text(config("vip"))
    daemon.proc.send_signal(signal.SIGHUP)
    wait(lambda: len(private()) == 3, 10, "private services back with via=vip")
    marks = set(private())
    # a restart (kill -9: no cleanup) finds the same marks and keeps every real in
    daemon.stop(signal.SIGKILL)
    daemon.start()
    time.sleep(3)
    assert set(private()) == marks
    assert all_up()
    # cleanstop (the default): every private service goes at stop
    daemon.stop()
    assert private() == {}
    daemon.start()
    wait(all_up, 30, "every real up again")
