"""The status page's listener under uvloop: `--loop uvloop --metrics PORT` starts, serves and stops
(uvloop's Server does not allow its close() to be replaced; a wrapper closes the live streams)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.peers import free_port

LVSCHECK = [sys.executable, "-m", "lvscheck"]


def test_uvloop_daemon_serves_metrics_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    cf = tmp_path / "u.cf"
    cf.write_text(f"virtual=10.9.0.1:80\n\treal=127.0.0.1:{free_port()} masq\n\tchecktype=connect\n")
    port = free_port()
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(
        [
            *LVSCHECK,
            "daemon",
            "--config",
            str(cf),
            "--ipvs",
            "none",
            "--control",
            "",
            "--loop",
            "uvloop",
            "--metrics",
            f"127.0.0.1:{port}",
            "--logfile",
            "none",
        ],
        stderr=open(log, "wb"),  # noqa: SIM115
    )
    try:
        body = b""
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.05)
        assert b"lvscheck_" in body, log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
