"""A healthy check whose process is starved is not cut off by the CPU meter (real MariaDB).

``lvscheck run mysql`` runs in a child process that the test stops and continues for its
whole life (SIGSTOP for 10 ms, SIGCONT for 1 ms): the process gets about a tenth of the
wall clock, as on a machine where other processes take the CPU.  Every step of the check
is stretched about elevenfold on the wall clock; the step that imports aiomysql (about
60 ms of CPU) alone passes the 0.2 s budget given here on the wall clock, so the
wall-clock-only meter cut this healthy check ("used more than 200 ms of CPU").  The meter
confirms on the thread's own CPU clock, which does not run while the process is stopped:
the check is up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.mariadb import PASSWORD, USER, MariaDB, single_server

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDB]:
    with single_server() as db:
        yield db


def _run_starved(argv: list[str], env: dict[str, str], stopped: float, running: float) -> str:
    """Run ``argv``, stopped ``stopped`` s out of every ``stopped + running`` s; its stdout."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        give_up = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < give_up:
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(stopped)
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(running)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
    assert err.strip() == b"", err
    return out.decode()


def test_a_healthy_check_in_a_stopped_and_continued_process_is_not_cut(mariadb: MariaDB) -> None:
    env = {**os.environ, "LVS_TEST_MYSQL_PW": PASSWORD}
    argv = [
        LVSCHECK,
        "run",
        "--json",
        "--check-cpu-budget",
        "0.2",
        "mysql",
        f"127.0.0.1:{mariadb.port}",
        f"login={USER}",
        "passwdenv=LVS_TEST_MYSQL_PW",
        "checktimeout=30",
    ]
    started = time.monotonic()
    result = json.loads(_run_starved(argv, env, stopped=0.01, running=0.001))
    took = time.monotonic() - started
    assert result["state"] == "up", result
    assert "CPU" not in result["reason"], result
    assert result["latency_ms"] > 300, (result, took)  # it was starved: far slower than its ~10 ms
