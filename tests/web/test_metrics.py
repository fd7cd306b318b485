"""``/metrics`` of a running daemon: what operators expect is there, ``promtool check metrics``
(Debian's prometheus package) accepts it, and every metric the Grafana dashboard queries exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import Daemon, config, wait

ROOT = Path(__file__).resolve().parents[2]
VIP = "10.9.0.1:80"


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The metrics text of a daemon with a real up, one drained, one in maintenance, one down."""
    d = tmp_path_factory.mktemp("metrics")
    reals = [RealNginx(f"m{i}", "127.0.0.1", free_port(), d) for i in range(3)]
    for r in reals:
        r.start()
    dead = free_port()
    cf = d / "m.cf"
    cf.write_text(config([*(r.port for r in reals), dead]))
    daemon = Daemon(d, cf).start()
    try:
        wait(lambda: all(daemon.real(r.port)["state"] == "up" for r in reals), 15, "reals up")
        assert daemon.cli("drain", VIP, f"127.0.0.1:{reals[1].port}").returncode == 0
        assert daemon.cli("maintenance", "on", f"127.0.0.1:{reals[2].port}").returncode == 0
        wait(lambda: daemon.real(reals[2].port)["state"] == "down", 5, "maintenance")
        wait(lambda: daemon.real(dead)["state"] == "down", 5, "the dead real down")
        with urllib.request.urlopen(daemon.url + "/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = resp.read().decode()
        yield text
    finally:
        daemon.stop()
        for r in reals:
            r.stop()


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def samples(text: str) -> set[str]:
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and line[0] != "#"}


def test_the_metrics_people_expect(exposition: str) -> None:
    f = families(exposition)
    for name in (
        "lvscheck_build_info",
        "lvscheck_real_check_latency_seconds",
        "lvscheck_real_last_check_age_seconds",
        "lvscheck_real_transitions_total",
        "lvscheck_real_drained",
        "lvscheck_real_maintenance",
        "lvscheck_start_lag_seconds",
    ):
        assert name in f, name
    s = samples(exposition)
    assert {"lvscheck_start_lag_seconds_sum", "lvscheck_start_lag_seconds_count"} <= s
    assert re.search(r'^lvscheck_build_info\{version="[^"]+",python="3\.\d+\.\d+"\} 1$', exposition, re.M)
    assert re.search(
        r'^lvscheck_real_drained\{virtual="10.9.0.1:80",real="127.0.0.1:\d+"\} 1$', exposition, re.M
    )
    assert re.search(r"^lvscheck_real_maintenance\{[^}]+\} 1$", exposition, re.M)
    assert re.search(r"^lvscheck_real_transitions_total\{[^}]+\} [1-9]", exposition, re.M)


def test_promtool_accepts_the_exposition(exposition: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus)")
    out = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "", out.stdout  # no lint complaints either


def test_every_metric_the_dashboard_queries_exists(exposition: str) -> None:
    dash = json.loads((ROOT / "contrib" / "grafana" / "lvscheck.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    used = {m for e in exprs for m in re.findall(r"\blvscheck_[a-z_]+", e)}
    assert len(used) >= 15
    missing = used - samples(exposition)
    assert not missing, f"the dashboard queries metrics the daemon does not export: {sorted(missing)}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
