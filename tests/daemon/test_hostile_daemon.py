"""``lvscheck daemon`` beside hostile reals: healthy reals stay up, status answers, SIGTERM stops it.

The hostile servers are the hand-written ones of tests/peers/hostile_protocols.py, served
from a child process (a remote server has its own CPU); the healthy real is a real nginx.
bench/soak_daemon.py runs the same mix longer and ten times over.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.hostile_protocols import BY_NAME, serving_elsewhere
from tests.peers.nginx import RealNginx

from lvscheck.daemon.control import query

HOSTILE = ["pg-parameter-stream", "ldap-huge-ber", "ldap-endless-entries", "mysql-endless-continuation"]
HOSTILE += ["pg-notices-after-login", "smtp-endless-banner", "smtp-control-bytes"]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNginx]:
    r = RealNginx("calm", "127.0.0.1", free_port(), tmp_path_factory.mktemp("calm"))
    r.start()
    yield r
    r.stop()


def _config(healthy_port: int, hostile: dict[str, list[int]]) -> str:
    lines = ["checktimeout=2", "negotiatetimeout=2", "failurecount=1", "quiescent=yes"]
    lines += ["#lvscheck: rise=1 interval=0.3 fastinterval=0.1", ""]
    lines += ["virtual=10.9.0.1:80", f"\treal=127.0.0.1:{healthy_port} masq 4"]
    lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    for i, name in enumerate(HOSTILE):
        case = BY_NAME[name]
        lines += [f"virtual=10.9.1.{i + 1}:80", f"\treal=127.0.0.1:{hostile[name][0]} masq 1"]
        lines.append(f"\tservice={case.check}")
        if case.options:
            lines.append("\t#lvscheck: " + " ".join(shlex.quote(f"{k}={v}") for k, v in case.options.items()))
        lines.append("")
    return "\n".join(lines)


def test_hostile_reals_leave_the_daemon_healthy_and_stoppable(real: RealNginx, tmp_path: Path) -> None:
    sock = tmp_path / "ctl.sock"
    events = tmp_path / "events.jsonl"
    with serving_elsewhere(HOSTILE) as ports:
        cf = tmp_path / "hostile.cf"
        cf.write_text(_config(real.port, ports))
        log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "lvscheck", "daemon", "--config", str(cf), "--ipvs", "none"),
                *("--control", str(sock), "--event-log", str(events), "--reconcile", "0"),
            ],
            stderr=log,
        )
        try:
            end = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(4.0)  # each hostile real checked ~10 times
            status = query(str(sock))
            states = {r["real"]: r["state"] for v in status["virtuals"] for r in v["reals"]}
            assert states.pop(f"127.0.0.1:{real.port}") == "up", states
            assert set(states.values()) == {"down"}, states
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(10)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    assert rc == 0
    assert took < 3.0, took  # Scheduler.close() gives up on a check after 2 s
    downs = [json.loads(line) for line in events.read_text().splitlines() if '"event":"down"' in line]
    assert not [e for e in downs if str(real.port) in str(e.get("real"))]
    reasons = " ".join(str(r["reason"]) for v in status["virtuals"] for r in v["reals"])
    assert reasons.isprintable()
    assert "\\x1b" in reasons  # the SMTP server's ESC, escaped
