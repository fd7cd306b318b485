"""The status page's listener under uvloop: `--loop uvloop --metrics PORT` starts, serves and stops
(uvloop's Server does not allow its close() to be replaced; a wrapper closes the live streams)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.web.daemon import Daemon


def test_uvloop_daemon_serves_metrics_and_stops(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    cf = tmp_path / "u.cf"
    cf.write_text(f"virtual=10.9.0.1:80\n\treal=127.0.0.1:{free_port()} masq\n\tchecktype=connect\n")
    daemon = Daemon(tmp_path, cf, "--loop", "uvloop", "--logfile", "none").start()
    try:
        with urllib.request.urlopen(daemon.url + "/metrics", timeout=5) as r:
            assert b"lvscheck_" in r.read(), daemon.log.read_text()
    finally:
        assert daemon.proc is not None
        proc = daemon.proc
        daemon.stop()
        assert proc.returncode == 0, daemon.log.read_text()
    assert "Traceback" not in daemon.log.read_text()
