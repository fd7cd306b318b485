"""``lvscheck status --watch``: in a terminal (a pty) it redraws in place with colours; into a pipe
it prints plain frames, and a reader that goes away (``| head``) ends it without a traceback."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import LVSCHECK, Daemon, config, wait


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = tmp_path_factory.mktemp("watch")
    real = RealNginx("w", "127.0.0.1", free_port(), d)
    real.start()
    cf = d / "w.cf"
    cf.write_text(config([real.port, free_port()]))
    dm = Daemon(d, cf).start()
    wait(lambda: dm.real(real.port)["state"] == "up", 15, "up")
    try:
        yield dm
    finally:
        dm.stop()
        real.stop()


def test_watch_in_a_terminal_redraws_in_place_with_colours(daemon: Daemon) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: lvscheck on the pty
        os.environ.pop("NO_COLOR", None)
        os.execv(
            LVSCHECK[0], [*LVSCHECK, "status", "--watch", "--interval", "0.3", "--control", str(daemon.sock)]
        )
    out = b""
    end = time.monotonic() + 15
    try:
        while out.count(b"\x1b[H\x1b[2J") < 3 and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGINT)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert out.count(b"\x1b[H\x1b[2J") >= 3, out[-500:]  # home + clear before each frame
    assert b"\x1b[32mup" in out  # green "up"
    assert b"\x1b[31mdown" in out  # red "down"
    assert os.waitstatus_to_exitcode(status) == 0  # Ctrl-C: a clean exit, no traceback


def test_watch_into_a_pipe_is_plain_and_a_closed_pipe_is_quiet(daemon: Daemon, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*LVSCHECK, "status", "--watch", "--interval", "0.2", "--control", str(daemon.sock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(b"every 0.2s")
    proc.stdout.close()  # the reader goes away, as `| head -1` does
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert err == b""
    plain = subprocess.run(
        [*LVSCHECK, "status", "--control", str(daemon.sock)], capture_output=True, timeout=30
    ).stdout
    assert b"\x1b[" not in plain
    assert b" up " in plain
