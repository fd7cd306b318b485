"""Operating the daemon as a real process (``--ipvs none`` on the host): systemd notify and
watchdog, ``lvscheck status``, Prometheus metrics, the JSON event log, the notify command,
alert mail, ``--check``, and the OCF resource agent under Debian's ``ocf-tester``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port, require_binary
from tests.peers.nginx import RealNginx

ROOT = Path(__file__).resolve().parents[2]
LVSCHECK = [sys.executable, "-m", "lvscheck"]


def config(reals: list[int], extra: str = "") -> str:
    lines = [
        "checktimeout=1",
        "checkinterval=1",
        "failurecount=1",
        "quiescent=yes",
        extra,
        "#lvscheck: rise=1 interval=0.3 fastinterval=0.1",
        "",
        "virtual=10.9.0.1:80",
    ]
    lines += [f"\treal=127.0.0.1:{p} masq 4" for p in reals]
    lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    return "\n".join(lines)


def wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNginx]:
    r = RealNginx("ops", "127.0.0.1", free_port(), tmp_path_factory.mktemp("ops"))
    r.start()
    yield r
    r.stop()


def test_systemd_notify_status_metrics_events(real: RealNginx, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(str(notify_path))
    ns.settimeout(10)
    cf = tmp_path / "ops.cf"
    cf.write_text(config([real.port]))
    sock = tmp_path / "ctl.sock"
    mport = free_port()
    events = tmp_path / "events.jsonl"
    hook_out = tmp_path / "hook.out"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $2 $3 $LVSCHECK_WEIGHT" >> {hook_out}\ncat >> {hook_out}\n')
    hook.chmod(0o755)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="400000")
    proc = subprocess.Popen(
        [
            *LVSCHECK,
            "daemon",
            "--config",
            str(cf),
            "--ipvs",
            "none",
            "--control",
            str(sock),
            "--metrics",
            f"127.0.0.1:{mport}",
            "--event-log",
            str(events),
            "--notify-command",
            str(hook),
        ],
        env=env,
        stderr=open(tmp_path / "daemon.log", "wb"),  # noqa: SIM115
    )
    try:
        got: list[str] = []

        def recv_until(word: str) -> None:
            while not any(word in m for m in got):
                got.append(ns.recv(4096).decode())

        recv_until("READY=1")
        recv_until("WATCHDOG=1")
        wait(
            lambda: (
                json.loads(
                    subprocess.run(
                        [*LVSCHECK, "status", "--control", str(sock), "--json"], capture_output=True
                    ).stdout
                )["virtuals"][0]["reals"][0]["state"]
                == "up"
            ),
            10,
            "real up in status",
        )
        out = subprocess.run([*LVSCHECK, "status", "--control", str(sock)], capture_output=True, text=True)
        assert out.returncode == 0
        assert f"127.0.0.1:{real.port}" in out.stdout
        assert "up" in out.stdout
        assert "10.9.0.1:80" in out.stdout

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert 'lvscheck_checks_total{result="up"}' in metrics
        assert f'lvscheck_real_weight{{virtual="10.9.0.1:80",real="127.0.0.1:{real.port}"}} 4' in metrics
        assert 'lvscheck_start_lag_seconds{quantile="0.99"}' in metrics
        assert "lvscheck_ipvs_write_errors_total 0" in metrics

        real.stop()
        wait(lambda: hook_out.exists() and "down" in hook_out.read_text(), 10, "notify command ran")
        lines = hook_out.read_text().splitlines()
        assert lines[0] == f"up 10.9.0.1:80 127.0.0.1:{real.port} 4"  # the first verdict (was unknown)
        i = next(i for i, x in enumerate(lines) if x.startswith("down "))
        line, payload = lines[i : i + 2]
        assert line == f"down 10.9.0.1:80 127.0.0.1:{real.port} 0"
        assert json.loads(payload)["reason"] == "connection refused"
        real.start()
        wait(lambda: '"event":"up"' in events.read_text().split('"event":"down"', 1)[-1], 10, "up event")

        proc.send_signal(signal.SIGHUP)
        recv_until("RELOADING=1")
        got.clear()
        recv_until("READY=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        recv_until("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
        ns.close()
    kinds = [json.loads(x)["event"] for x in events.read_text().splitlines()]
    assert kinds[0] == "start"
    assert "down" in kinds
    assert "reload" in kinds
    assert kinds[-1] == "stop"


def test_alert_mail_goes_to_a_real_smtp_server(tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd")
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[object] = []

    class Keep(Message):
        def handle_message(self, message: object) -> None:
            received.append(message)

    port = free_port()
    ctl = Controller(Keep(), hostname="127.0.0.1", port=port)
    ctl.start()
    cf = tmp_path / "mail.cf"
    dead = free_port()
    cf.write_text(
        config(
            [dead],
            extra='emailalert="ops@example.test"\nemailalertfrom=lvs@example.test\nemailalertfreq=1',
        )
    )
    proc = subprocess.Popen(
        [
            *LVSCHECK,
            "daemon",
            "--config",
            str(cf),
            "--ipvs",
            "none",
            "--control",
            str(tmp_path / "c.sock"),
            "--loop",
            "uvloop",  # the optional faster event loop, exercised here
            "--smtp",
            f"127.0.0.1:{port}",
        ],
        stderr=open(tmp_path / "daemon.log", "wb"),  # noqa: SIM115
    )
    try:
        wait(lambda: len(received) >= 2, 15, "alert mail and one emailalertfreq repeat received")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        ctl.stop()
    msg = received[0]
    assert "Inaccessible real server" in msg["Subject"]  # type: ignore[index]
    assert msg["To"] == "ops@example.test"  # type: ignore[index]
    assert "Inaccessible real server" in received[1]["Subject"]  # type: ignore[index]
    assert "repeat: True" in received[1].get_payload()  # type: ignore[attr-defined]


def test_check_flag_names_file_and_line(tmp_path: Path) -> None:
    cf = tmp_path / "bad.cf"
    cf.write_text("virtual=10.9.0.1:80\n\treal=127.0.0.1:80 bogus 1\n")
    out = subprocess.run(
        [*LVSCHECK, "daemon", "--check", "--config", str(cf)], capture_output=True, text=True
    )
    assert out.returncode == 3
    assert f"{cf}:2:" in out.stderr
    cf.write_text(config([80]))
    out = subprocess.run(
        [*LVSCHECK, "daemon", "--check", "--config", str(cf)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "1 virtual services, 1 real servers" in out.stdout


def test_status_reload_refused_says_why(real: RealNginx, tmp_path: Path) -> None:
    cf = tmp_path / "reload.cf"
    cf.write_text(config([real.port]))
    sock = tmp_path / "ctl.sock"
    proc = subprocess.Popen(
        [*LVSCHECK, "daemon", "--config", str(cf), "--ipvs", "none", "--control", str(sock)],
        stderr=open(tmp_path / "daemon.log", "wb"),  # noqa: SIM115
    )
    try:
        wait(lambda: "up" in query_states(sock), 10, "the real is up")
        cf.write_text(config([real.port]).replace("masq 4", "bogus 4"))
        out = subprocess.run(
            [*LVSCHECK, "status", "--reload", "--control", str(sock)], capture_output=True, text=True
        )
        assert out.returncode == 1
        assert "reload refused, the running config stays" in out.stderr
        assert f"{cf}:9:" in out.stderr  # the real= line with the bad forwarding method
        assert query_states(sock) == ["up"]
        cf.write_text(config([real.port]))
        out = subprocess.run(
            [*LVSCHECK, "status", "--reload", "--control", str(sock)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "reloaded" in out.stdout
    finally:
        proc.terminate()
        proc.wait(10)


def test_status_without_a_daemon(tmp_path: Path) -> None:
    out = subprocess.run(
        [*LVSCHECK, "status", "--control", str(tmp_path / "none.sock")], capture_output=True, text=True
    )
    assert out.returncode == 3
    assert "no daemon answers" in out.stderr


@pytest.mark.parametrize(
    "ipvs",
    [
        "none",
        pytest.param(
            "netlink",
            marks=[
                pytest.mark.ipvs,
                pytest.mark.skipif(
                    not os.path.exists("/proc/net/ip_vs"), reason="no IPVS (run in ipvs-guest)"
                ),
            ],
        ),
    ],
)
def test_ocf_agent_passes_ocf_tester(tmp_path: Path, ipvs: str) -> None:
    tester = require_binary("ocf-tester", "/usr/sbin/ocf-tester")
    require_binary("xmllint")
    cf = tmp_path / "ocf.cf"
    cf.write_text(config([free_port()]))
    lvscheck = Path(sys.executable).parent / "lvscheck"
    agent = ROOT / "contrib" / "ocf" / "lvscheck"
    out = subprocess.run(
        [
            tester,
            "-n",
            "lvs1",
            "-o",
            f"configfile={cf}",
            "-o",
            f"binary={lvscheck}",
            "-o",
            f"control={tmp_path}/ocf.sock",
            "-o",
            f"pidfile={tmp_path}/ocf.pid",
            "-o",
            f"options=--ipvs {ipvs}",
            str(agent),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OCF_ROOT="/usr/lib/ocf"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed all tests" in out.stdout
    if ipvs == "netlink":  # cleanstop=yes (default): the agent's stop removed the virtual again
        table = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True).stdout
        assert "10.9.0.1:80" not in table


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    unit = (ROOT / "contrib" / "systemd" / "lvscheck.service").read_text()
    unit = unit.replace("/usr/bin/lvscheck", str(Path(sys.executable).parent / "lvscheck"))
    (tmp_path / "lvscheck.service").write_text(unit)
    out = subprocess.run(
        [analyze, "verify", str(tmp_path / "lvscheck.service")], capture_output=True, text=True
    )
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "lvscheck.service" in line]
    assert not problems, problems
    assert "Type=notify" in unit
    assert "WatchdogSec=" in unit


def test_out_of_file_descriptors_does_not_drain_the_pool(real: RealNginx, tmp_path: Path) -> None:
    """A real EMFILE: the running daemon's RLIMIT_NOFILE is cut with prlimit(1), so every check's
    socket() fails.  No real goes down, the pool is guarded (an ERROR event), and when the limit
    comes back the checks go on."""
    prlimit = require_binary("prlimit")
    others = [RealNginx(f"fd{i}", "127.0.0.1", free_port(), tmp_path) for i in range(2)]
    for r in others:
        r.start()
    cf = tmp_path / "fd.cf"
    cf.write_text(config([real.port, *(r.port for r in others)]))
    events = tmp_path / "events.jsonl"
    sock = tmp_path / "fd.sock"
    proc = subprocess.Popen(
        [
            *LVSCHECK,
            "daemon",
            "--config",
            str(cf),
            "--ipvs",
            "none",
            "--control",
            str(sock),
            "--event-log",
            str(events),
        ],
        stderr=open(tmp_path / "daemon.log", "wb"),  # noqa: SIM115
    )
    try:
        wait(lambda: events.read_text().count('"event":"up"') == 3, 10, "three reals up")
        nfd = len(os.listdir(f"/proc/{proc.pid}/fd"))
        soft = subprocess.run(
            [prlimit, f"--pid={proc.pid}", "--nofile", "--output=SOFT", "--noheadings", "--raw"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run([prlimit, f"--pid={proc.pid}", f"--nofile={nfd}:"], check=True)  # soft limit only
        wait(lambda: '"event":"guard"' in events.read_text(), 10, "the pool guard")
        time.sleep(1.0)  # more failing checks (interval 0.3 s, failurecount=1)
        subprocess.run([prlimit, f"--pid={proc.pid}", f"--nofile={soft}:"], check=True)
        wait(lambda: '"event":"guard-cleared"' in events.read_text(), 10, "guard cleared")
        states = query_states(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        for r in others:
            r.stop()
    kinds = [json.loads(x)["event"] for x in events.read_text().splitlines()]
    assert "down" not in kinds
    assert states == ["up", "up", "up"]
    guard = next(json.loads(x) for x in events.read_text().splitlines() if '"event":"guard"' in x)
    assert guard["reals"] == 3
    assert "NOT draining" in guard["message"]


def query_states(sock: Path) -> list[str]:
    from lvscheck.daemon.control import query

    return [str(r["state"]) for r in query(str(sock))["virtuals"][0]["reals"]]
