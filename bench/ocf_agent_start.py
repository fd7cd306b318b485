"""How long the OCF agent's ``start`` takes, and whether the table is complete when it returns.

Two agents in turn, A B A B (``--old`` and ``--new``, default the checkout's
``contrib/ocf/lvscheck``), each started and stopped ``--rounds`` times on the same
ldirectord.cf: two reals on loopback (Debian nginx), one passing its check and one
failing it (its test.html is missing, so it must end at weight 0).  After each
``start`` returns, one ``status`` request says whether every real was already decided
(phase up/down, not unknown) -- that is what a cluster needs before it brings up the VIP.

On the host (``--ipvs none``; reals on 127.0.0.1 only)::

    git show ef0797a:contrib/ocf/lvscheck > /tmp/agent-before
    .venv/bin/python bench/ocf_agent_start.py --old /tmp/agent-before

In the guest, against its kernel table::

    ../shared/ipvs-guest/run-in-ipvs-guest -t 600 \\
        '.venv/bin/python bench/ocf_agent_start.py --old /tmp/agent-before --ipvs netlink'
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers import free_port
from tests.peers.nginx import RealNginx

ROOT = Path(__file__).resolve().parents[1]


def status(sock: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(b"status\n")
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    answer: dict[str, object] = json.loads(data)
    return answer


def run(agent: str, action: str, work: Path, cf: Path, ipvs: str) -> float:
    env = dict(
        os.environ,
        OCF_ROOT="/usr/lib/ocf",
        OCF_RESOURCE_INSTANCE="bench",
        OCF_RESKEY_configfile=str(cf),
        OCF_RESKEY_binary=str(Path(sys.executable).parent / "lvscheck"),
        OCF_RESKEY_control=f"{work}/ctl.sock",
        OCF_RESKEY_pidfile=f"{work}/d.pid",
        OCF_RESKEY_readyfile=f"{work}/d.ready",
        OCF_RESKEY_options=f"--ipvs {ipvs}",
        OCF_RESKEY_CRM_meta_timeout="60000",
        HA_RSCTMP=str(work),
    )
    t0 = time.perf_counter()
    out = subprocess.run([agent, action], env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{agent} {action}: exit {out.returncode}: {out.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the agent before (a file)")
    ap.add_argument("--new", default=str(ROOT / "contrib" / "ocf" / "lvscheck"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--ipvs", choices=("none", "netlink"), default="none")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocf-bench-"))
    good = RealNginx("good", "127.0.0.1", free_port(), work)
    bad = RealNginx("bad", "127.0.0.1", free_port(), work)
    (bad.dir / "root" / "test.html").unlink()
    good.start()
    bad.start()
    cf = work / "ld.cf"
    cf.write_text(
        "checktimeout=2\ncheckinterval=5\nquiescent=yes\ncleanstop=yes\n\nvirtual=10.9.0.1:80\n"
        f"\treal=127.0.0.1:{good.port} masq 3\n\treal=127.0.0.1:{bad.port} masq 2\n"
        '\tservice=http\n\trequest="test.html"\n\treceive="Still alive"\n\tscheduler=wrr\n'
    )
    agents = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    times: dict[str, list[float]] = {"old": [], "new": []}
    decided: dict[str, list[bool]] = {"old": [], "new": []}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    try:
        for i in range(args.rounds):
            for name in ("old", "new"):
                took = run(agents[name], "start", work, cf, args.ipvs)
                answer = status(f"{work}/ctl.sock")
                phases = [r["state"] for v in answer["virtuals"] for r in v["reals"]]  # type: ignore[attr-defined]
                decided[name].append("unknown" not in phases)
                times[name].append(took)
                run(agents[name], "stop", work, cf, args.ipvs)
                done = decided[name][-1]
                print(f"round {i + 1} {name}: start {took:.2f} s, every real decided at return: {done}")
    finally:
        good.stop()
        bad.stop()
    for name in ("old", "new"):
        t = times[name]
        print(
            f"{name}: start median {statistics.median(t):.2f} s (min {min(t):.2f}, max {max(t):.2f}); "
            f"table complete at return {sum(decided[name])}/{len(t)}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
