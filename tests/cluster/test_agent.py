"""The OCF agent's ``start`` on the host (``--ipvs none``): it returns once every real is decided.

Reals on loopback: a Debian nginx that passes its check, and a listening socket that
never answers (a hand-written fault: its check times out after ``checktimeout``).  The
agent must not report the director started, and so let a cluster bring up the VIP,
before both are decided and the table written; a config the daemon refuses is
OCF_ERR_CONFIGURED without a separate ``daemon --check`` at start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port, require_binary
from tests.peers.nginx import RealNginx

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "contrib" / "ocf" / "lvscheck"
LVSCHECK = Path(sys.executable).parent / "lvscheck"
OCF_SUCCESS, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 0, 6, 7

pytestmark = pytest.mark.skipif(
    not Path("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs").exists(),
    reason="resource-agents not installed (.ci/run installs it)",
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNginx]:
    r = RealNginx("agent", "127.0.0.1", free_port(), tmp_path_factory.mktemp("agent"))
    r.start()
    yield r
    r.stop()


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def agent(action: str, tmp_path: Path, cf: Path, timeout_ms: int = 30000) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        OCF_ROOT="/usr/lib/ocf",
        OCF_RESOURCE_INSTANCE="director",
        OCF_RESKEY_configfile=str(cf),
        OCF_RESKEY_binary=str(LVSCHECK),
        OCF_RESKEY_control=f"{tmp_path}/ctl.sock",
        OCF_RESKEY_pidfile=f"{tmp_path}/d.pid",
        OCF_RESKEY_readyfile=f"{tmp_path}/d.ready",
        OCF_RESKEY_eventlog=f"{tmp_path}/events.jsonl",
        OCF_RESKEY_options="--ipvs none",
        OCF_RESKEY_CRM_meta_timeout=str(timeout_ms),
        HA_RSCTMP=str(tmp_path),
    )
    return subprocess.run([str(AGENT), action], env=env, capture_output=True, text=True, timeout=120)


def ask(sock: Path, line: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answer: dict[str, object] = json.loads(data)
    return answer


def write_config(path: Path, ports: list[int]) -> None:
    reals = "".join(f"\treal=127.0.0.1:{p} masq {w}\n" for p, w in zip(ports, (3, 2), strict=False))
    path.write_text(
        "checktimeout=2\ncheckinterval=5\nquiescent=yes\n\nvirtual=10.9.0.1:80\n"
        f'{reals}\tservice=http\n\trequest="test.html"\n\treceive="Still alive"\n\tscheduler=wrr\n'
    )


def test_start_returns_when_every_real_is_decided(good: RealNginx, silent: int, tmp_path: Path) -> None:
    require_binary("setsid")
    cf = tmp_path / "ld.cf"
    write_config(cf, [good.port, silent])
    t0 = time.monotonic()
    out = agent("start", tmp_path, cf)
    took = time.monotonic() - t0
    try:
        assert out.returncode == OCF_SUCCESS, out.stdout + out.stderr
        # the silent real is decided only when its check times out (checktimeout=2)
        assert took >= 2.0, f"start returned after {took:.2f} s, before the silent real's check ended"
        assert (tmp_path / "d.ready").exists()
        assert ask(tmp_path / "ctl.sock", "ready") == {"ready": True, "undecided": 0, "reloads": 0}
        status = ask(tmp_path / "ctl.sock", "status")
        assert status["ready"] is True
        reals = {r["real"]: r for v in status["virtuals"] for r in v["reals"]}  # type: ignore[attr-defined]
        assert reals[f"127.0.0.1:{good.port}"]["state"] == "up"
        assert reals[f"127.0.0.1:{good.port}"]["kernel_weight"] == 3
        assert reals[f"127.0.0.1:{silent}"]["state"] == "down"
        assert reals[f"127.0.0.1:{silent}"]["kernel_weight"] == 0
        events = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert "ready" in events
        assert agent("monitor", tmp_path, cf).returncode == OCF_SUCCESS
        assert agent("start", tmp_path, cf).returncode == OCF_SUCCESS  # already running: nothing to do
    finally:
        stop = agent("stop", tmp_path, cf)
    assert stop.returncode == OCF_SUCCESS, stop.stdout + stop.stderr
    assert not (tmp_path / "d.ready").exists()
    assert not (tmp_path / "d.pid").exists()
    assert agent("monitor", tmp_path, cf).returncode == OCF_NOT_RUNNING


def test_start_is_bounded_by_the_operation_timeout(silent: int, tmp_path: Path) -> None:
    """A real that is never decided (here: checktimeout 20 s) cannot hold start past its timeout."""
    cf = tmp_path / "ld.cf"
    write_config(cf, [silent])
    cf.write_text(cf.read_text().replace("checktimeout=2", "checktimeout=20"))
    t0 = time.monotonic()
    out = agent("start", tmp_path, cf, timeout_ms=5000)
    took = time.monotonic() - t0
    try:
        assert out.returncode == OCF_SUCCESS, out.stdout + out.stderr
        assert took < 5.0, f"start took {took:.2f} s with a 5 s timeout"
        assert "still undecided" in out.stderr
        assert ask(tmp_path / "ctl.sock", "ready") == {"ready": False, "undecided": 1, "reloads": 0}
    finally:
        agent("stop", tmp_path, cf)


def test_a_config_the_daemon_refuses_is_err_configured(tmp_path: Path) -> None:
    cf = tmp_path / "bad.cf"
    cf.write_text("virtual=10.9.0.1:80\n\treal=127.0.0.1:1 masq\n\tservice=nonsense\n")
    out = agent("start", tmp_path, cf)
    assert out.returncode == OCF_ERR_CONFIGURED, out.stdout + out.stderr
    assert "daemon --check" in out.stderr
    assert not (tmp_path / "d.pid").exists()
