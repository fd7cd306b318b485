"""``lvscheck daemon`` against a real IPVS table and a real datapath (run inside ../shared/ipvs-guest).

Two real servers (Debian nginx) live in network namespaces rs2/rs3 (10.0.0.2,
10.0.0.3) behind a bridge; the VIPs 10.0.1.1 and 10.0.1.2 sit on a dummy
interface; IPVS forwards with NAT (masq).  Every address exists only inside the
guest.  The daemon runs as a real process from a real ldirectord.cf.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import netns
from tests.daemon.ipvstable import table, wait
from tests.netns import sh
from tests.peers.nginx import RealNginx

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(
        not os.path.exists("/proc/net/ip_vs"), reason="no IPVS in this kernel (run in ipvs-guest)"
    ),
]

CHECKTIMEOUT = 1
FALL = 2
RISE = 2
FAST = 0.2

CONFIG = """\
checktimeout={timeout}
checkinterval=1
failurecount={fall}
quiescent=yes
cleanstop=no
#lvscheck: rise={rise} fastinterval={fast}

virtual=10.0.1.1:80
	real=10.0.0.2:80 masq 5
	real=10.0.0.3:80 masq 5
	service=http
	request="test.html"
	receive="Still alive"
	scheduler=wrr

virtual=10.0.1.2:80
	real=10.0.0.2:80 masq {w2}
	real=10.0.0.3:80 masq {w2}
	service=http
	request="test.html"
	receive="Still alive"
	scheduler={sched2}
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RealNginx]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the ipvs guest)")
    d = tmp_path_factory.mktemp("ipvsnet")
    with netns.nat_lan("br0", "10.0.0", {"rs2": 2, "rs3": 3}, "d0", ("10.0.1.1", "10.0.1.2")) as lan:
        reals = {ns: RealNginx(ns, addr, 80, d, netns=ns) for ns, addr in lan.items()}
        try:
            for r in reals.values():
                r.start()
            yield reals
        finally:
            for r in reals.values():
                r.stop()


def weight(vip: str, real: str) -> int | None:
    return table().get(vip, {}).get(real)


def hits(n: int, vip: str = "10.0.1.1") -> Counter[str]:
    got: Counter[str] = Counter()
    for _ in range(n):
        with socket.create_connection((vip, 80), timeout=3) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        got[data.split(b"\r\n\r\n", 1)[-1].decode().strip()] += 1
    return got


class Daemon:
    def __init__(self, d: Path, config: Path) -> None:
        self.dir = d
        self.config = config
        self.sock = d / "ctl.sock"
        self.events = d / "events.jsonl"
        self.stderr = d / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.sock.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "lvscheck",
            "daemon",
            "--config",
            str(self.config),
            "--control",
            str(self.sock),
            "--event-log",
            str(self.events),
            "--reconcile",
            "1",
            "--log-level",
            "debug",
        ]
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        wait(lambda: self.sock.exists(), 30, "daemon control socket")

    def status(self) -> dict[str, object]:
        from lvscheck.daemon.control import query

        return query(str(self.sock))

    def log(self) -> str:
        return self.stderr.read_text()

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.proc = None

    def events_of(self, kind: str) -> list[dict[str, object]]:
        if not self.events.exists():
            return []
        return [
            e for line in self.events.read_text().splitlines() if (e := json.loads(line))["event"] == kind
        ]


@pytest.fixture
def daemon(net: dict[str, RealNginx], tmp_path: Path) -> Iterator[Daemon]:
    sh("ipvsadm -C")
    cf = tmp_path / "lvs.cf"
    cf.write_text(CONFIG.format(timeout=CHECKTIMEOUT, fall=FALL, rise=RISE, fast=FAST, w2=2, sched2="wrr"))
    d = Daemon(tmp_path, cf)
    d.start()
    wait(
        lambda: weight("10.0.1.1:80", "10.0.0.2:80") == 5 and weight("10.0.1.1:80", "10.0.0.3:80") == 5,
        20,
        "both reals up",
    )
    yield d
    d.stop()
    for r in net.values():
        if r.proc is None:
            r.start()


def test_real_goes_down_and_comes_back_on_the_datapath(daemon: Daemon, net: dict[str, RealNginx]) -> None:
    assert set(hits(6)) == {"rs2", "rs3"}
    net["rs3"].stop()
    took = wait(lambda: weight("10.0.1.1:80", "10.0.0.3:80") == 0, 15, "rs3 at weight 0")
    print(f"rs3 down -> weight 0 in {took:.2f} s")
    # one check deadline plus the fall count at the fast interval (+ scheduling slack in the slow guest)
    assert took <= CHECKTIMEOUT + FALL * (1 + FAST) + 1.5, took
    assert hits(6) == Counter({"rs2": 6})  # clients no longer reach it
    net["rs3"].start()
    took = wait(lambda: weight("10.0.1.1:80", "10.0.0.3:80") == 5, 15, "rs3 back at weight 5")
    assert took <= RISE * (1 + FAST) + 3.0, took
    assert "rs3" in hits(6)
    downs = daemon.events_of("down")
    assert any(e["real"] == "10.0.0.3:80" for e in downs)
    status = daemon.status()
    v = status["virtuals"][0]  # type: ignore[index]
    assert {r["real"]: r["kernel_weight"] for r in v["reals"]} == {"10.0.0.2:80": 5, "10.0.0.3:80": 5}


def test_kill_9_and_restart_never_drains_a_healthy_real(daemon: Daemon) -> None:
    # The fixture waits for the first virtual only: let the second one's reals rise too, so
    # every real is healthy in the kernel before the kill.
    wait(
        lambda: all(
            w > 0 for vip in ("10.0.1.1:80", "10.0.1.2:80") for w in table().get(vip, {"": 0}).values()
        ),
        20,
        "every real of both virtuals up",
    )
    samples: list[dict[str, dict[str, int]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(table())
            time.sleep(0.02)

    def decided() -> bool:
        """Every real has had RISE checks in the new daemon and it calls them up."""
        try:
            virtuals = daemon.status()["virtuals"]
        except OSError:  # the restarted daemon is not listening yet (its old socket file is there)
            return False
        assert isinstance(virtuals, list)
        return all(r["checks"] >= RISE and r["state"] == "up" for v in virtuals for r in v["reals"])

    t = threading.Thread(target=sample)
    t.start()
    try:
        wait(lambda: len(samples) >= 3, 20, "samples of the table before the kill")
        daemon.stop(signal.SIGKILL)
        killed = len(samples)
        wait(lambda: len(samples) >= killed + 3, 20, "samples while no daemon runs")
        daemon.start()
        # The window in which a restarted daemon could drain a healthy real: from its start until it
        # has judged every real itself, and some samples beyond (its writes after the verdicts).
        wait(decided, 30, "the restarted daemon's own verdicts on every real")
        judged = len(samples)
        wait(lambda: len(samples) >= judged + 10, 30, "10 samples after those verdicts")
    finally:
        stop.set()
        t.join()
    for snap in samples:
        for vip in ("10.0.1.1:80", "10.0.1.2:80"):
            assert set(snap.get(vip, {})) == {"10.0.0.2:80", "10.0.0.3:80"}, f"{vip} lost a real: {snap}"
            for real, w in snap[vip].items():
                assert w > 0, f"{vip} {real} dropped to 0 after the restart: {snap}"


def test_hand_deletions_are_restored(daemon: Daemon) -> None:
    sh("ipvsadm -d -t 10.0.1.1:80 -r 10.0.0.2:80")
    wait(lambda: weight("10.0.1.1:80", "10.0.0.2:80") == 5, 10, "real restored")
    sh("ipvsadm -D -t 10.0.1.2:80")
    wait(lambda: weight("10.0.1.2:80", "10.0.0.3:80") == 2, 10, "virtual restored")
    assert daemon.events_of("restore")
    assert "Masq" in sh("ipvsadm -Ln -t 10.0.1.1:80")


def test_reload_touches_only_the_changed_virtual_and_bad_config_keeps_running(daemon: Daemon) -> None:
    wait(lambda: weight("10.0.1.2:80", "10.0.0.3:80") == 2, 10, "virtual 2 up")
    mark = len(daemon.log())
    daemon.config.write_text(
        CONFIG.format(timeout=CHECKTIMEOUT, fall=FALL, rise=RISE, fast=FAST, w2=7, sched2="rr")
    )
    daemon.send(signal.SIGHUP)
    wait(lambda: weight("10.0.1.2:80", "10.0.0.3:80") == 7, 10, "virtual 2 reweighted")
    assert "10.0.1.2:80 rr" in sh("ipvsadm -Ln").replace("  ", " ")
    writes = [line for line in daemon.log()[mark:].splitlines() if "ipvs write:" in line]
    assert writes
    assert all("10.0.1.2:80" in line for line in writes), writes
    reloads = daemon.events_of("reload")
    assert reloads[-1]["changed"] == "10.0.1.2:80"

    good = daemon.config.read_text()
    daemon.config.write_text(good + "\nvirtual=10.0.1.3:80\n\treal=10.0.0.2:80 bogus 1\n")
    daemon.send(signal.SIGHUP)
    wait(lambda: bool(daemon.events_of("reload-failed")), 10, "reload refused")
    assert re.search(re.escape(str(daemon.config)) + r":\d+", daemon.log()), daemon.log()[-2000:]
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    n = daemon.status()["checks"]
    time.sleep(1.5)
    assert daemon.status()["checks"] > n  # type: ignore[operator]
    assert weight("10.0.1.2:80", "10.0.0.3:80") == 7
    with contextlib.suppress(Exception):
        daemon.config.write_text(good)
