"""``lvscheck daemon --check-cpu-budget S`` reaches the checks, in the daemon's loop and in workers.

The real is the hostile one-byte-chunk HTTP server (tests/peers/hostile.py, fault injection):
its check is down for its CPU, at the budget given on the command line, long before its
20 s deadline; ``0`` turns the meter off and the same check runs to its deadline instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.hostile import serve, tiny_chunks

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")

CONFIG = """\
checktimeout={deadline}
checkinterval=1
virtual=127.0.0.1:{vport}
\treal=127.0.0.1:{rport} masq 1
\tservice=http
\trequest="/"
\treceive="never there"
\t#lvscheck: maxbody=64m
"""


def _reason_of_the_real(sock: Path) -> str | None:
    done = subprocess.run(
        [LVSCHECK, "status", "--json", "--control", str(sock)], capture_output=True, text=True, timeout=10
    )
    if done.returncode != 0:
        return None
    status = json.loads(done.stdout)
    reasons = [r.get("reason") for v in status["virtuals"] for r in v["reals"]]
    return reasons[0] if reasons else None


def _first_reason(tmp_path: Path, flags: list[str], within: float, deadline: int = 20) -> str:
    with serve(tiny_chunks()) as rport:
        config = tmp_path / "ldirectord.cf"
        config.write_text(CONFIG.format(vport=free_port(), rport=rport, deadline=deadline))
        sock = tmp_path / "d.sock"
        argv = [LVSCHECK, "daemon", "--config", str(config), "--ipvs", "none", "--control", str(sock), *flags]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            give_up = time.monotonic() + within
            while time.monotonic() < give_up:
                if proc.poll() is not None:
                    pytest.fail(
                        f"the daemon exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
                    )
                reason = _reason_of_the_real(sock) if sock.exists() else None
                if reason:
                    return reason
                time.sleep(0.2)
            pytest.fail(f"no verdict on the real within {within} s")
        finally:
            proc.terminate()
            proc.wait(20)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_flag_sets_the_budget_of_every_check(tmp_path: Path, workers: str) -> None:
    reason = _first_reason(tmp_path, ["--workers", workers, "--check-cpu-budget", "0.05"], within=15)
    assert "used more than 50 ms of CPU" in reason, reason


def test_zero_turns_the_meter_off(tmp_path: Path) -> None:
    reason = _first_reason(tmp_path, ["--check-cpu-budget", "0"], within=15, deadline=3)
    assert "timed out after 3 s" in reason, reason
