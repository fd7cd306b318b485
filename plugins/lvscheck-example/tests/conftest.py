"""Real redis-server processes for the tests, on free ports of 127.0.0.1.

Each server runs in the foreground (``--daemonize no``) in a temporary
directory, without persistence, and is stopped when the test module ends.
Without Debian's ``redis-server`` the tests skip; lvscheck's CI installs it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One running ``redis-server``: its port and how to talk to it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    def info(self, section: str) -> str:
        """``INFO <section>`` through redis-cli, for tests that wait for a state."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-auth-warning", "INFO", section],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def wait_for(self, section: str, text: str, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.info(section):
            if time.monotonic() > end:
                raise RuntimeError(f"{text!r} not in INFO {section} after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


StartRedis = Callable[..., RedisServer]


@pytest.fixture(scope="module")
def start_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartRedis]:
    """A factory: ``start_redis("--requirepass", "s3cret")`` starts one more server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    started: list[RedisServer] = []

    def start(*config: str) -> RedisServer:
        port = free_port()
        workdir = tmp_path_factory.mktemp("redis")
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir), *config]
        log = workdir / "redis.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        server = RedisServer(proc, port, log)
        started.append(server)
        end = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return server
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"redis-server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)

    yield start
    for server in started:
        server.stop()
