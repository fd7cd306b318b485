"""Debian's real ldirectord runs lvscheck-ldirectord as its checkcommand and programs a real IPVS table.

Runs inside ../shared/ipvs-guest (``.ci/run`` runs ``pytest -m ipvs`` there): two
real servers (python http.server on 127.0.0.2 and 127.0.0.3, guest-local), a
virtual with ``checktype=external`` and ``checkcommand=`` our console script,
``quiescent=yes``.  One real is stopped and started again: its IPVS weight
goes to 0 and back to the configured weight, while the other keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import require_binary, wait_for_port

pytestmark = [
    pytest.mark.ipvs,
    pytest.mark.skipif(not os.path.exists("/proc/net/ip_vs"), reason="no IPVS table (/proc/net/ip_vs)"),
]

BIN = Path(sys.executable).parent
PORT = 8080
CHECKTIMEOUT = 15
CHECKINTERVAL = 1
#: One ldirectord round at worst: it checks the two reals one after the other, each for at most
#: CHECKTIMEOUT.
ROUND = 2 * CHECKTIMEOUT + CHECKINTERVAL
#: The first weights: the first calls import lvscheck in the one-vCPU guest (the first in process,
#: while the check server it spawned starts beside it); a liveness bound, not what is measured.
FIRST_UP = 3 * ROUND
#: A stopped real once the server is warm: refused at once, so seconds, whatever CHECKTIMEOUT is.
DOWN_WITHIN = 30


def _ipvsadm() -> str:
    return subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True, timeout=30).stdout


def _weight(table: str, rip: str) -> int | None:
    m = re.search(rf"-> {re.escape(rip)}:{PORT}\s+\S+\s+(\d+)\s", table)
    return int(m[1]) if m else None


def _wait_weight(rip: str, weight: int, timeout: float = FIRST_UP) -> float:
    start = time.monotonic()
    table = ""
    while time.monotonic() - start < timeout:
        table = _ipvsadm()
        if _weight(table, rip) == weight:
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"{rip} never got weight {weight} in {timeout} s:\n{table}")


class _Web:
    def __init__(self, ip: str, root: Path) -> None:
        self.ip = ip
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(PORT), "--bind", self.ip, "-d", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(PORT, host=self.ip, timeout=30, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def webs(tmp_path: Path) -> Iterator[tuple[_Web, _Web]]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "alive.html").write_text("Still alive\n")
    a, b = _Web("127.0.0.2", root), _Web("127.0.0.3", root)
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_real_ldirectord_with_lvscheck_checkcommand(tmp_path: Path, webs: tuple[_Web, _Web]) -> None:
    ldirectord = require_binary("/usr/sbin/ldirectord", "ldirectord")
    require_binary("ipvsadm")
    checker = BIN / "lvscheck-ldirectord"
    assert checker.exists()
    cf = tmp_path / "lvs.cf"
    cf.write_text(
        # checktimeout: the first call starts Python (and the check server) in a one-vCPU guest
        # that may share its host with other work; a stopped real still fails at once (refused)
        f"""checktimeout={CHECKTIMEOUT}
checkinterval={CHECKINTERVAL}
quiescent=yes
logfile="{tmp_path}/ldirectord.log"
virtual=10.0.0.1:80
\treal=127.0.0.2:{PORT} masq 5
\treal=127.0.0.3:{PORT} masq 8
\tchecktype=external
\tcheckcommand={checker}
\tservice=http
\trequest="alive.html"
\treceive="Still alive"
\tscheduler=wlc
"""
    )
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    env = dict(os.environ, LVSCHECK_LDIRECTORD_RUNDIR=str(rundir), LVSCHECK_LDIRECTORD_IDLE="30")
    env.pop("LVSCHECK_LDIRECTORD_CONFIG", None)  # the config must come from ldirectord's command line
    log = open(tmp_path / "ldirectord.out", "wb")  # noqa: SIM115 - closed below
    ld = subprocess.Popen(
        [ldirectord, "-d", str(cf), "start"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
    )
    _, b = webs
    try:
        # ldirectord adds each real with its weight and quiesces it at once, before the first check:
        # a weight seen before the first checkcommand call (which starts the check server) is that
        # moment, not a verdict
        for _ in range(int(FIRST_UP / 0.25)):
            if (rundir / "server.sock").exists():
                break
            time.sleep(0.25)
        assert (rundir / "server.sock").exists(), "the first checkcommand call started no check server"
        _wait_weight("127.0.0.2", 5)
        _wait_weight("127.0.0.3", 8)
        b.stop()
        took = _wait_weight("127.0.0.3", 0)  # quiescent: weight 0, the entry stays
        assert _weight(_ipvsadm(), "127.0.0.2") == 5
        b.start()
        _wait_weight("127.0.0.3", 8)
        assert _weight(_ipvsadm(), "127.0.0.2") == 5
        assert took < DOWN_WITHIN, took
        assert (rundir / "server.sock").exists()  # the calls after the first went to the check server
    except AssertionError as exc:
        server = "running" if (rundir / "server.sock").exists() else "not running"
        # ldirectord -d logs to its stdout, block-buffered into the file: stop it to read it all
        subprocess.run([ldirectord, str(cf), "stop"], capture_output=True, timeout=60, check=False, env=env)
        with contextlib.suppress(subprocess.TimeoutExpired):
            ld.wait(15)
        log.flush()
        lines = (tmp_path / "ldirectord.out").read_text(errors="replace").splitlines()
        said = [ln for ln in lines if not ln.startswith(("DEBUG2: ", "Use of uninitialized"))]
        tail = "\n".join(said[-60:])
        raise AssertionError(f"{exc}\ncheck server {server}; ldirectord said:\n{tail}") from None
    finally:
        subprocess.run([ldirectord, str(cf), "stop"], capture_output=True, timeout=60, check=False, env=env)
        try:
            ld.wait(15)
        except subprocess.TimeoutExpired:
            ld.kill()
            ld.wait()
        log.close()
        pid = rundir / "server.pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), 15)
        shutil.rmtree(rundir, ignore_errors=True)
