"""Two lvscheck directors under a real Pacemaker 2.1 / Corosync 3 cluster (in ../shared/ipvs-guest).

One cluster boot, four steps in order (see lab.py for what is built):

1. the director, then the VIP, start on node1; node1's IPVS table has the reals with
   the weights their checks give (rs3 fails its check: weight 0), and it is complete before the
   VIP comes up; the client is served through the VIP (LVS-DR);
2. node1 crashes (cable pulled, every process killed); node2 takes over: table complete, then
   the VIP, then the client is served again;
3. node1 comes back (a fresh network namespace: it rebooted) and director and VIP stay on node2
   (resource stickiness above the location preference: no fail-back);
4. a planned move back to node1 (``crm_resource --move``) loses no request of a client whose
   connect timeout is 10 s, and a slow download through the VIP that started on node2 finishes
   through node1: node1's backup sync daemon knew the connection.

Failover figures are printed at the end (and kept in the work directory as figures.json).
``LVSCHECK_CLUSTER_LAYOUT=group`` runs the same steps with a plain group (director, vip), for
comparison: its planned move leaves no VIP anywhere while the new director starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster.lab import BIG, LAYOUT, MOVED, VIP, WANT, Lab, wait_until

NEEDS = (
    "corosync",
    "pacemakerd",
    "crm_mon",
    "cibadmin",
    "crm_resource",
    "nsenter",
    "unshare",
    "ipvsadm",
    "nginx",
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS (.ci/run runs this in ipvs-guest)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, IPVS)"),
    pytest.mark.skipif(
        any(shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None for b in NEEDS)
        or not Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2").exists(),
        reason="pacemaker, corosync, resource-agents, ipvsadm or nginx missing (.ci/run installs them)",
    ),
]

FIGURES: dict[str, object] = {}


def s(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("cluster"))
    try:
        lab.prepare()
        lab.network()
        lab.t_nodes = time.time()
        lab.start_node("node1")
        lab.start_node("node2")
        yield lab
    finally:
        (lab.work / "figures.json").write_text(json.dumps(FIGURES, indent=2))
        lab.close()


def client_lines(lab: Lab) -> list[tuple[float, float, str, str]]:
    out = []
    path = lab.work / "client.log"
    if path.exists():
        for line in path.read_text().splitlines():
            start, end, result, what = line.split(" ", 3)
            out.append((float(start), float(end), result, what))
    return out


def served(lab: Lab, since: float, until: float) -> tuple[list[str], list[str]]:
    ok = [w for st, _e, r, w in client_lines(lab) if since <= st < until and r == "ok"]
    bad = [w for st, _e, r, w in client_lines(lab) if since <= st < until and r != "ok"]
    return ok, bad


# Linux sends a SYN at 0, 1, 3 and 7 s after connect(); the next, at 15 s, is past the client's
# 10 s connect timeout.
SYN_AT = (0.0, 1.0, 3.0, 7.0)


def losses_after_path(lab: Lab, since: float, until: float, t_path: float) -> list[str]:
    """Failed requests that had a SYN leave after the path through the new director worked.

    When the VIP moves, the client keeps sending to the old director's MAC (or keeps resolving
    it) until the new one's gratuitous ARP reaches it: a request whose every SYN left before the
    first answer through the new director failed because of the move itself.  A request that
    sent a SYN later (and before it ended) found a working path and must not fail.
    """
    return [
        f"{round(st - since, 2)}s:{w}"
        for st, e, r, w in client_lines(lab)
        if since <= st < until and r != "ok" and any(t_path + 0.5 < st + d < e for d in SYN_AT)
    ]


def test_1_group_starts_on_node1_table_before_vip(lab: Lab) -> None:
    t_nodes = lab.t_nodes
    wait_until(lambda: lab.table("node1") == WANT, 300, 1, f"node1's IPVS table is {WANT}")
    wait_until(lambda: lab.group_on("node1", "node1"), 120, 3, "group lvs started on node1")
    t_table = lab.table_since("node1", t_nodes)
    t_vip = lab.vip_since("node1", t_nodes)
    assert t_table is not None
    assert t_vip is not None
    FIGURES["start: nodes started -> node1 table complete (s)"] = s(t_table, t_nodes)
    FIGURES["start: nodes started -> node1 VIP up (s)"] = s(t_vip, t_nodes)
    assert t_vip > t_table, "the VIP came up before the director's table was complete"
    assert lab.has_vip("node1")
    assert not lab.has_vip("node2")
    assert lab.table("node2") == ""
    wait_until(lambda: lab.backups_on("node1") == {"node1", "node2"}, 90, 3, "sync-backup runs on both")
    assert "master sync daemon (mcast=eth0, syncid=7" in lab.sync_daemons("node1")
    assert "master" not in lab.sync_daemons("node2")
    lab.observe("client", "client", VIP, str(lab.work / "client.log"), "10")
    wait_until(lambda: len(client_lines(lab)) >= 20, 90, 1, "the client's first 20 requests")
    ok, bad = served(lab, 0, time.time())
    assert ok
    assert not bad, bad
    assert set(ok) <= {"rs1", "rs2"}, "rs3 (weight 0) got a request"


def test_2_node1_crashes_node2_takes_over(lab: Lab) -> None:
    t0 = lab.crash("node1")
    wait_until(lambda: lab.table_since("node2", t0) is not None, 150, 0.5, f"node2's table is {WANT}")
    wait_until(lambda: lab.has_vip("node2"), 60, 0.5, "the VIP on node2")
    wait_until(lambda: lab.group_on("node2", "node2"), 90, 3, "group lvs started on node2")
    t_table = lab.table_since("node2", t0)
    t_vip = lab.vip_since("node2", t0)
    assert t_table is not None
    assert t_vip is not None
    time.sleep(12)  # the client's requests started after the switch have finished
    lines = client_lines(lab)
    # downtime counts from the first failed request: requests under way at the crash can succeed
    t_fail = min((st for st, _e, r, _w in lines if st >= t0 and r != "ok"), default=t0)
    t_served = min((e for st, e, r, _w in lines if st >= t_fail and r == "ok"), default=None)
    t_path = min((e for _st, e, r, _w in lines if e > t_vip and r == "ok"), default=None)
    assert t_path is not None, "no answer through node2 after the crash"
    ok_after, _bad = served(lab, t_path, time.time() - 10.5)
    bad_after = losses_after_path(lab, t0, time.time() - 10.5, t_path)
    FIGURES["crash: -> node2 table complete (s)"] = s(t_table, t0)
    FIGURES["crash: -> node2 VIP up (s)"] = s(t_vip, t0)
    FIGURES["crash: VIP up after the table by (s)"] = round(t_vip - t_table, 2)
    FIGURES["crash: -> client served again (first answer after the first failure) (s)"] = s(t_served, t0)
    FIGURES["crash: requests started during the failover that failed"] = sum(
        1 for st, _e, r, _w in lines if t0 <= st < t_vip and r != "ok"
    )
    FIGURES["crash: VIP up on node2 -> first answer through node2 (ARP) (s)"] = round(t_path - t_vip, 2)
    FIGURES["crash: requests lost although the path through node2 worked at one of their SYNs"] = len(
        bad_after
    )
    start = lab.pacemaker_log("node2", r"Initiating start operation director_start_0", t0)
    done = lab.pacemaker_log("node2", r"Result of start operation for director on node2: ok", t0)
    FIGURES["crash: director start on node2 (agent, s)"] = (
        None if not (start and done) else round(done - start, 2)
    )
    assert t_vip > t_table, "the VIP came up on node2 before its table was complete"
    assert t_served is not None
    assert ok_after
    assert not bad_after, f"requests lost after the path through node2 worked: {bad_after}"
    assert set(ok_after) <= {"rs1", "rs2"}
    assert "master sync daemon (mcast=eth0, syncid=7" in lab.sync_daemons("node2")


def test_3_node1_comes_back_and_the_group_stays_on_node2(lab: Lab) -> None:
    t_back = time.time()
    lab.reboot("node1")
    wait_until(lambda: "node1" in lab.online("node2"), 180, 3, "node1 online again")
    wait_until(lambda: lab.backups_on("node2") == {"node1", "node2"}, 120, 3, "sync-backup on node1 again")
    FIGURES["rejoin: node1 restarted -> its sync backup runs (s)"] = s(time.time(), t_back)
    time.sleep(10)  # a fail-back would have started by now
    assert lab.group_on("node2", "node2"), "the group left node2 when node1 came back (no stickiness?)"
    left = [t for t, k, r in lab.events("node2-watch") if k == "vip" and r == "0" and t >= t_back]
    assert not left, "the VIP left node2 while node1 came back"
    assert not lab.has_vip("node1")
    assert lab.table("node1") == ""
    failures = lab.failures("node2")
    FIGURES["rejoin: failed actions"] = failures
    assert not [f for f in failures if "director" in f or "sync-backup" in f], failures
    assert "backup sync daemon (mcast=eth0, syncid=7" in lab.sync_daemons("node1")


def test_4_planned_move_loses_nothing_and_a_download_survives(lab: Lab) -> None:
    lab.observe("client", "download", VIP, "/big.bin", str(lab.work / "download.log"), "45")
    wait_until(lambda: any(k == "got" for _t, k, _r in lab.events("download")), 30, 0.5, "download under way")
    time.sleep(4)  # the master syncs the connection after a few packets
    synced = lab.synced_connections("node1")
    FIGURES["move: node1 (backup) knows the download's connection before the move"] = f"{VIP}:80" in synced
    t_move = time.time()
    out = lab.on("node2", "crm_resource", "--move", "--resource", MOVED, "--node", "node1")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: lab.table_since("node1", t_move) is not None, 120, 0.5, f"node1's table is {WANT}")
    wait_until(lambda: lab.has_vip("node1"), 60, 0.5, "the VIP on node1")
    wait_until(lambda: lab.group_on("node1", "node1"), 90, 3, "group lvs started on node1")
    assert lab.on("node1", "crm_resource", "--clear", "--resource", MOVED).returncode == 0
    t_table = lab.table_since("node1", t_move)
    t_vip = lab.vip_since("node1", t_move)
    t_gone = next(
        (t for t, k, r in lab.events("node2-watch") if k == "vip" and r == "0" and t >= t_move), None
    )
    assert t_table is not None
    assert t_vip is not None
    assert t_gone is not None
    wait_until(
        lambda: any(k in ("done", "fail") for _t, k, _r in lab.events("download")),
        120,
        1,
        "download finished",
    )
    time.sleep(12)  # requests started during the move have had their 10 s connect timeout
    ok, lost = served(lab, t_move - 1, time.time() - 11)
    end = next(r for _t, k, r in lab.events("download") if k in ("done", "fail"))
    want_sha = hashlib.sha256(bytes(range(256)) * (BIG // 256)).hexdigest()
    FIGURES["move: -> VIP gone from node2 (s)"] = s(t_gone, t_move)
    FIGURES["move: -> node1 table complete (s)"] = s(t_table, t_move)
    FIGURES["move: -> node1 VIP up (s)"] = s(t_vip, t_move)
    FIGURES["move: no VIP anywhere for (s)"] = round(t_vip - t_gone, 2)
    FIGURES["move: requests (10 s connect timeout) answered / lost"] = f"{len(ok)} / {len(lost)}"
    FIGURES["move: download through the VIP"] = "completed, sha256 ok" if end == f"{BIG} {want_sha}" else end
    assert t_vip > t_table, "the VIP came up on node1 before its table was complete"
    assert lab.table_at("node2", t_gone) == WANT, "node2 had lost its table before its VIP left"

    # When the VIP moves, clients keep sending to the old director's MAC until the new one's
    # gratuitous ARP (IPaddr2's send_arp) reaches them: the path through node1 works from the first
    # answer that came through it.  From then on no request may fail: a request is lost for a reason
    # other than the VIP's own move only if one of its SYNs (Linux: at 0, 1, 3 and 7 s; the next, at
    # 15 s, is past the 10 s connect timeout) left after that moment.
    lines = client_lines(lab)
    t_path = min((e for _st, e, r, _w in lines if e > t_vip and r == "ok"), default=None)
    assert t_path is not None, "no answer through node1 after the move"
    avoidable = losses_after_path(lab, t_move - 1, time.time() - 11, t_path)
    FIGURES["move: VIP up on node1 -> first answer through node1 (ARP) (s)"] = round(t_path - t_vip, 2)
    FIGURES["move: clients' outage, VIP gone from node2 -> path through node1 (s)"] = round(
        t_path - t_gone, 2
    )
    FIGURES["move: requests lost although the path through node1 worked at one of their SYNs"] = len(
        avoidable
    )
    assert avoidable == [], (
        f"requests lost after the path through node1 worked (s after the move): {avoidable}"
    )
    if t_path - t_gone < 6.0:  # every request then had a SYN after the path was back: none may be lost
        assert lost == [], f"{len(lost)} requests lost during the planned move"
    assert set(ok) <= {"rs1", "rs2"}
    assert end == f"{BIG} {want_sha}", f"the download did not survive the move: {end}"


def test_5_figures(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\nCLUSTER FIGURES (layout {LAYOUT}; one-vCPU guest; seconds; load {os.getloadavg()[0]:.1f})")
        for k, v in FIGURES.items():
            print(f"  {k}: {v}")
        print(f"  (logs and figures.json in {lab.work})")
