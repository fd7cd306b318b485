"""A two-director Pacemaker/Corosync cluster inside the IPVS guest, for tests/cluster.

::

                             guest (one vCPU, IPVS; its root file system is the host's)
      client netns 10.0.0.99 ─┐
      node1 netns  10.0.0.11 ─┤  VIP 10.0.0.10 on eth0 while active; its own IPVS table
      node2 netns  10.0.0.12 ─┼── br0 (a bridge in the guest's root netns)
      rs1..rs3 10.0.0.21-23 ──┘  LVS-DR reals: VIP on lo, arp_ignore=1, arp_announce=2; nginx :80

Each director node is PID 1 (``node.sh``) of its own network, mount, UTS, IPC and PID
namespaces, with private /run, /dev/shm, /etc/corosync, /var/lib/corosync and
/var/lib/pacemaker; it runs corosync (knet, two_node) and pacemakerd without systemd.
Every Pacemaker or corosync command runs in *all* of a node's namespaces (``nsenter -a``):
libqb's IPC sockets are per network namespace, its ring buffers are files in /dev/shm.

The CIB is written before the nodes start and copied to both: properties, ``director``
(ocf:lvscheck:lvscheck) and ``vip`` (ocf:heartbeat:IPaddr2) -- in the layout docs/pacemaker.md
recommends (``LAYOUT``: the VIP starts after the director's table is complete, and leaves the old
director only once the new one's table is), or as a plain group --, the clone ``sync-backup``
(ocf:lvscheck:lvscheck-sync, state=backup), a location preference for node1 and a resource
stickiness above it (no fail-back).

A *crash* pulls the node's cable and SIGKILLs its PID namespace (no fencing in the lab);
a *reboot* gives it a fresh network namespace (no VIP, empty IPVS table) and starts it again.
Addresses exist only inside the guest's namespaces.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from tests import netns
from tests.peers.nginx import RealNginx

__all__ = ["VIP", "WANT", "Lab"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VIP = "10.0.0.10"
NODES = {"node1": "10.0.0.11", "node2": "10.0.0.12"}
REALS = {"rs1": ("10.0.0.21", 3), "rs2": ("10.0.0.22", 2), "rs3": ("10.0.0.23", 1)}
#: the table every active director must have: rs3 fails its check (no test.html), so weight 0
WANT = "10.0.0.21:80=3 10.0.0.22:80=2 10.0.0.23:80=0"
SYNC_ID = 7
BIG = 6 * 1024 * 1024  # the download's size (bytes)

_REAL_LINES = "".join(f"\treal={a}:80 gate {w}\n" for a, w in REALS.values())
LDIRECTORD_CF = (
    "checktimeout=4\nnegotiatetimeout=4\ncheckinterval=2\nfailurecount=2\nquiescent=yes\ncleanstop=no\n\n"
    f"virtual={VIP}:80\n{_REAL_LINES}"
    '\tservice=http\n\trequest="test.html"\n\treceive="Still alive"\n'
    "\tscheduler=wrr\n\tprotocol=tcp\n\tchecktype=negotiate\n"
)

COROSYNC_CONF = """\
totem {
    version: 2
    cluster_name: lvscheck
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        name: node1
        nodeid: 1
        ring0_addr: 10.0.0.11
    }
    node {
        name: node2
        nodeid: 2
        ring0_addr: 10.0.0.12
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_syslog: no
    to_stderr: no
    timestamp: hires
}
"""


#: "handover" (the recommended layout, docs/pacemaker.md): director and VIP as two primitives, the VIP
#: colocated with the director, its start after the director's start, and -- on a move -- its stop on
#: the old node after the director's start on the new one, so the old director keeps serving with its
#: table while the new one checks.  "group": the group lvs = director, vip (for comparison figures).
LAYOUT = os.environ.get("LVSCHECK_CLUSTER_LAYOUT", "handover")
#: what crm_resource --move moves, and what the location preference names
MOVED = "lvs" if LAYOUT == "group" else "director"


def resources_xml(config: Path, lvscheck: Path, events: str) -> str:
    """The director, the VIP and the sync-backup clone, as cibadmin takes them."""
    director = f"""<primitive id="director" class="ocf" provider="lvscheck" type="lvscheck">
      <instance_attributes id="director-ia">
        <nvpair id="director-configfile" name="configfile" value="{config}"/>
        <nvpair id="director-binary" name="binary" value="{lvscheck}"/>
        <nvpair id="director-eventlog" name="eventlog" value="{events}"/>
        <nvpair id="director-syncinterface" name="syncinterface" value="eth0"/>
        <nvpair id="director-syncid" name="syncid" value="{SYNC_ID}"/>
      </instance_attributes>
      <operations>
        <op id="director-start" name="start" interval="0s" timeout="60s"/>
        <op id="director-stop" name="stop" interval="0s" timeout="60s"/>
        <op id="director-monitor" name="monitor" interval="20s" timeout="90s"/>
      </operations>
    </primitive>"""
    vip = f"""<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
      <instance_attributes id="vip-ia">
        <nvpair id="vip-ip" name="ip" value="{VIP}"/>
        <nvpair id="vip-cidr" name="cidr_netmask" value="24"/>
        <nvpair id="vip-nic" name="nic" value="eth0"/>
      </instance_attributes>
      <operations>
        <op id="vip-start" name="start" interval="0s" timeout="60s"/>
        <op id="vip-stop" name="stop" interval="0s" timeout="60s"/>
        <op id="vip-monitor" name="monitor" interval="20s" timeout="90s"/>
      </operations>
    </primitive>"""
    pair = f'<group id="lvs">{director}{vip}</group>' if LAYOUT == "group" else director + vip
    return f"""<resources>
  {pair}
  <clone id="sync-backup-clone">
    <primitive id="sync-backup" class="ocf" provider="lvscheck" type="lvscheck-sync">
      <instance_attributes id="sync-backup-ia">
        <nvpair id="sync-backup-state" name="state" value="backup"/>
        <nvpair id="sync-backup-interface" name="interface" value="eth0"/>
        <nvpair id="sync-backup-syncid" name="syncid" value="{SYNC_ID}"/>
        <nvpair id="sync-backup-binary" name="binary" value="{lvscheck}"/>
      </instance_attributes>
      <operations>
        <op id="sync-backup-monitor" name="monitor" interval="30s" timeout="90s"/>
      </operations>
    </primitive>
  </clone>
</resources>"""


def constraints_xml() -> str:
    prefer = f'<rsc_location id="prefers-node1" rsc="{MOVED}" node="node1" score="100"/>'
    if LAYOUT == "group":
        return f"<constraints>{prefer}</constraints>"
    return f"""<constraints>
  {prefer}
  <rsc_colocation id="vip-with-director" rsc="vip" with-rsc="director" score="INFINITY"/>
  <rsc_order id="table-before-vip" first="director" then="vip" kind="Mandatory" symmetrical="false"/>
  <rsc_order id="vip-leaves-after-new-table" first="director" first-action="start"
             then="vip" then-action="stop" kind="Mandatory" symmetrical="false"/>
</constraints>"""


def sh(cmd: str, check: bool = True, timeout: float = 120) -> str:
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def wait_until(cond: Callable[[], object], timeout: float, every: float, what: str) -> float:
    """Poll ``cond`` until it is true; the time it became true, or AssertionError."""
    end = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, RuntimeError, ET.ParseError, subprocess.TimeoutExpired):
            if cond():
                return time.time()
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


class Lab:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.lvscheck = Path(sys.executable).parent / "lvscheck"
        self.config = work / "ldirectord.cf"
        self.state = Path("/run/lvscheck-cluster")
        self.unshare: dict[str, subprocess.Popen[bytes]] = {}
        self.observers: list[subprocess.Popen[bytes]] = []
        self.reals: list[RealNginx] = []
        self.t_nodes = 0.0  # when both nodes were started

    # -- set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """The config, corosync.conf and the CIB, written before any node starts."""
        self.config.write_text(LDIRECTORD_CF)
        os.chmod(self.work, 0o755)
        cib = self.work / "cib.xml"
        env = dict(os.environ, CIB_file=str(cib))
        cib.write_text(sh("cibadmin --empty"))
        for name, value in (("stonith-enabled", "false"), ("dc-deadtime", "5s")):
            subprocess.run(
                ["crm_attribute", "-t", "crm_config", "-n", name, "-v", value], env=env, check=True
            )
        # above the location preference (100): a group that failed over stays (no fail-back)
        stickiness = (
            '<rsc_defaults><meta_attributes id="rsc-options">'
            '<nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="200"/>'
            "</meta_attributes></rsc_defaults>"
        )
        subprocess.run(["cibadmin", "-C", "-o", "configuration", "-X", stickiness], env=env, check=True)
        events = "/var/log/pacemaker/lvscheck-events.jsonl"
        subprocess.run(
            ["cibadmin", "-R", "-o", "resources", "-X", resources_xml(self.config, self.lvscheck, events)],
            env=env,
            check=True,
        )
        subprocess.run(["cibadmin", "-R", "-o", "constraints", "-X", constraints_xml()], env=env, check=True)
        subprocess.run(["crm_verify", "--xml-file", str(cib)], check=True)

    def network(self) -> None:
        netns.bridge("br0")
        self._plug("client", "c0", "10.0.0.99")
        for name, (addr, _weight) in REALS.items():
            self._plug(name, f"h{name}", addr)
            sh(
                f"ip -n {name} addr add {VIP}/32 dev lo && ip netns exec {name} sysctl -qw"
                " net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
                " net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2"
            )
            real = RealNginx(name, "0.0.0.0", 80, self.work, netns=name)
            if name == "rs3":
                (real.dir / "root" / "test.html").unlink()  # fails its check: weight 0
            with open(real.dir / "root" / "big.bin", "wb") as fh:
                fh.write(bytes(range(256)) * (BIG // 256))
            real.start()
            self.reals.append(real)
        for node, addr in NODES.items():
            self._plug(node, f"n{node[-1]}", addr)

    def _plug(self, ns: str, host_side: str, addr: str) -> None:
        netns.plug(ns, "br0", host_side, f"{addr}/24")

    def start_node(self, node: str) -> None:
        state = self.state / node
        logs = self.work / node
        for d in ("etc-corosync", "lib-corosync", "lib-pacemaker/cib", "lib-pacemaker/pengine"):
            (state / d).mkdir(parents=True, exist_ok=True)
        for d in ("lib-pacemaker/blackbox", "lib-pacemaker/cores"):
            (state / d).mkdir(parents=True, exist_ok=True)
        for d in ("corosync", "pacemaker"):
            (logs / d).mkdir(parents=True, exist_ok=True)
        (state / "etc-corosync" / "corosync.conf").write_text(COROSYNC_CONF)
        cib = state / "lib-pacemaker" / "cib" / "cib.xml"
        if not cib.exists():
            shutil.copyfile(self.work / "cib.xml", cib)
            cib.chmod(0o600)
        sh(f"chown -R hacluster:haclient {state}/lib-pacemaker {logs}/pacemaker")
        sh(f"chmod 750 {state}/lib-pacemaker/*")
        unshare = ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc"]
        init = [str(HERE / "node.sh"), node, str(state), str(logs), str(ROOT / "contrib" / "ocf")]
        self.unshare[node] = subprocess.Popen(
            ["ip", "netns", "exec", node, *unshare, *init],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.watch(node)

    def watch(self, node: str) -> None:
        self.observe(node, "watch", VIP, str(self.work / f"{node}-watch.log"))

    def observe(self, ns: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-I", "-S", str(HERE / "observers.py"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.observers.append(proc)
        return proc

    def init_pid(self, node: str) -> int:
        pid = self.unshare[node].pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not kids:
            raise RuntimeError(f"{node}: no init process yet")
        return int(kids[0])

    # -- looking ------------------------------------------------------------------------------

    def on(self, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in all of ``node``'s namespaces."""
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid(node)), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def crm_mon(self, node: str) -> ET.Element:
        return ET.fromstring(self.on(node, "crm_mon", "-1", "--output-as=xml").stdout)

    def group_on(self, ask: str, node: str) -> bool:
        """``director`` and ``vip`` Started on ``node``, nothing pending, neither failed."""
        root = self.crm_mon(ask)
        members = [r for r in root.iter("resource") if r.get("id") in ("director", "vip")]
        if len(members) != 2:
            return False
        return all(
            r.get("role") == "Started"
            and not r.get("pending")
            and r.get("failed") != "true"
            and [n.get("name") for n in r.iterfind("node")] == [node]
            for r in members
        )

    def failures(self, ask: str) -> list[str]:
        return [
            f"{f.get('op_key')}@{f.get('node')}: {f.get('exitreason') or f.get('exitstatus')}"
            for f in self.crm_mon(ask).findall("./failures/failure")
        ]

    def backups_on(self, ask: str) -> set[str]:
        """The nodes where the sync-backup clone runs."""
        root = self.crm_mon(ask)
        return {
            n.get("name", "")
            for r in root.iterfind("./resources/clone[@id='sync-backup-clone']/resource")
            if r.get("role") == "Started"
            for n in r.iterfind("node")
        }

    def online(self, ask: str) -> set[str]:
        return {
            n.get("name", "") for n in self.crm_mon(ask).iterfind("./nodes/node") if n.get("online") == "true"
        }

    def events(self, name: str) -> list[tuple[float, str, str]]:
        """``(time, kind, rest)`` lines of an observer's log (``node1-watch``, ``client``, ...)."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in (self.work / f"{name}.log").read_text().splitlines():
                parts = line.split(" ", 2)
                if len(parts) >= 2:
                    out.append((float(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
        return out

    def table_since(self, node: str, since: float, want: str = WANT) -> float | None:
        """When ``node``'s IPVS table became ``want`` at or after ``since``."""
        for t, kind, rest in self.events(f"{node}-watch"):
            if kind == "table" and rest == want and t >= since:
                return t
        return None

    def table_at(self, node: str, when: float) -> str:
        """``node``'s IPVS table as its watcher last saw it at ``when``."""
        found = [rest for t, kind, rest in self.events(f"{node}-watch") if kind == "table" and t <= when]
        return found[-1] if found else ""

    def vip_since(self, node: str, since: float) -> float | None:
        """When the VIP became local to ``node`` at or after ``since``."""
        for t, kind, rest in self.events(f"{node}-watch"):
            if kind == "vip" and rest == "1" and t >= since:
                return t
        return None

    def table(self, node: str) -> str:
        found = [rest for _t, kind, rest in self.events(f"{node}-watch") if kind == "table"]
        return found[-1] if found else ""

    def has_vip(self, node: str) -> bool:
        found = [rest for _t, kind, rest in self.events(f"{node}-watch") if kind == "vip"]
        return bool(found) and found[-1] == "1"

    def sync_daemons(self, node: str) -> str:
        return sh(f"ip netns exec {node} ipvsadm -L --daemon", check=False).strip()

    def synced_connections(self, node: str) -> str:
        return sh(f"ip netns exec {node} ipvsadm -Lnc", check=False)

    def pacemaker_log(self, node: str, pattern: str, since: float) -> float | None:
        """Epoch of the first pacemaker log line matching ``pattern`` stamped at or after ``since``."""
        path = self.work / node / "pacemaker" / "pacemaker.log"
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text(errors="replace").splitlines():
                if not re.search(pattern, line):
                    continue
                stamp = " ".join(line.split()[:3])
                with contextlib.suppress(ValueError):
                    t = time.mktime(
                        time.strptime(f"{time.localtime().tm_year} {stamp[:15]}", "%Y %b %d %H:%M:%S")
                    )
                    frac = re.match(r"[A-Z][a-z]{2} +\d+ [\d:]+(\.\d+)", stamp)
                    t += float(frac.group(1)) if frac else 0.0
                    if t >= since:
                        return t
        return None

    # -- faults -------------------------------------------------------------------------------

    def crash(self, node: str) -> float:
        """Pull the cable, then SIGKILL every process of the node at once (what fencing would do)."""
        pid = self.init_pid(node)
        t0 = time.time()
        sh(f"ip link set n{node[-1]} down")
        os.kill(pid, signal.SIGKILL)
        self.unshare[node].wait(30)
        return t0

    def reboot(self, node: str) -> None:
        """The crashed node comes back: a fresh network namespace (no VIP, empty IPVS table)."""
        sh(f"ip netns del {node}; ip link del n{node[-1]}", check=False)
        for _ in range(50):  # the old netns goes away once nothing holds it
            if f"n{node[-1]}" not in sh("ip -o link show", check=False):
                break
            time.sleep(0.1)
        self._plug(node, f"n{node[-1]}", NODES[node])
        self.start_node(node)

    # -- tear-down ----------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self.observers:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for node, proc in self.unshare.items():
            with contextlib.suppress(RuntimeError, OSError):
                os.kill(self.init_pid(node), signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for real in self.reals:
            real.stop()
