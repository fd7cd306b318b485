"""``lvscheck daemon --shadow`` beside Debian's real ldirectord on the same file (in the IPVS guest).

ldirectord manages the kernel table; the shadow daemon checks the same reals and writes
nothing.  Two virtuals: one on a healthy nginx, where the two agree throughout, and
one on a server that answers "Still alive" with no HTTP status line, a reply
ldirectord's LWP wrongly accepts (HTTP/0.9): ldirectord keeps it at weight 5, lvscheck
would take it out.  That disagreement must show in ``lvscheck status``, in the metrics
and in the event log with both verdicts and lvscheck's reason, and the kernel table must
be the same before and after the shadow ran.  The HTTP/0.9 server is hand-written
(tests/peers/hostile.py): no real server answers so on demand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.hostile import script, serve
from tests.peers.ldirectord import decided, ipvs_weights, running_ldirectord
from tests.peers.nginx import start_nginx

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]

BIN = Path(sys.executable).parent


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_shadow_beside_ldirectord(tmp_path: Path) -> None:
    with (
        start_nginx(tmp_path / "nginx") as ng,
        serve(script(None, b"Still alive\r\n", then="close")) as http09,
    ):
        cf = tmp_path / f"shadow-{os.getpid()}.cf"  # ldirectord keys its pid file on the name
        cf.write_text(
            f'logfile="{tmp_path}/ldirectord.log"\n'
            "checktimeout=3\nnegotiatetimeout=3\ncheckinterval=1\nquiescent=yes\ncleanstop=yes\n"
            f"virtual=10.0.0.1:80\n\treal=127.0.0.1:{ng.http_port} masq 5\n\tservice=http\n"
            '\trequest="test.html"\n\treceive="Still alive"\n\tscheduler=wrr\n'
            f"virtual=10.0.0.2:80\n\treal=127.0.0.1:{http09} masq 5\n\tservice=http\n"
            '\trequest="test.html"\n\treceive="Still alive"\n\tscheduler=wrr\n'
        )
        with running_ldirectord(cf, tmp_path) as output:
            before = decided(output, 2, most=120)
            assert set(before.values()) == {5}, before  # ldirectord: both up
            sock = tmp_path / "ctl.sock"
            log = tmp_path / "events.jsonl"
            port = free_port()
            argv = [
                str(BIN / "lvscheck"),
                "daemon",
                "--shadow",
                "--config",
                str(cf),
                "--control",
                str(sock),
                "--event-log",
                str(log),
                "--metrics",
                str(port),
                "--reconcile",
                "1",
            ]
            with open(tmp_path / "shadow.err", "wb") as err:
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            try:
                wait(lambda: any(e["event"] == "shadow-disagree" for e in events(log)), 30, "a disagreement")
                time.sleep(3)  # several more comparisons: the healthy virtual must stay in agreement
                status_json = json.loads(
                    subprocess.run(
                        [BIN / "lvscheck", "status", "--control", str(sock), "--json"],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=30,
                    ).stdout
                )
                status_text = subprocess.run(
                    [BIN / "lvscheck", "status", "--control", str(sock)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=30,
                ).stdout
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                    metrics = reply.read().decode()
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            after = ipvs_weights()
    assert after == before  # the shadow never wrote the table ldirectord keeps
    assert status_json["shadow"] is True
    assert status_json["ipvs_writes"] == 0
    assert status_json["shadow_disagreements"] == 1
    good, bad = (v["reals"][0] for v in status_json["virtuals"])
    assert (good["ldirectord_weight"], good["lvscheck_weight"], good["disagree_since"]) == (5, 5, None)
    assert (bad["ldirectord_weight"], bad["lvscheck_weight"]) == (5, 0)
    assert "shadow mode: 1 reals disagree with ldirectord now" in status_text
    assert "ldirectord lvscheck" in status_text
    assert "DIFFERS for" in status_text
    assert "lvscheck_shadow_disagreements 1" in metrics
    assert "lvscheck_shadow_disagreements_total 1" in metrics
    assert f'real="127.0.0.1:{http09}",ldirectord="up, weight 5",lvscheck="down (weight 0)"}} 1' in metrics
    all_events = events(log)
    disagreements = [e for e in all_events if e["event"] == "shadow-disagree"]
    assert len(disagreements) == 1  # the healthy virtual agreed throughout
    [d] = disagreements
    assert (d["virtual"], d["ldirectord"], d["lvscheck"]) == (
        "10.0.0.2:80",
        "up, weight 5",
        "down (weight 0)",
    )
    assert "no HTTP status line" in str(d["reason"])
    [summary] = [e for e in all_events if e["event"] == "shadow-summary"]
    assert summary["disagreements"] == 1
    assert summary["still_open"] == 1
    assert summary["reals"] == [f"10.0.0.2:80 real 127.0.0.1:{http09}: 1"]
    assert not [e for e in all_events if e["event"] in ("restore", "ipvs-error")]
