"""Starting real servers for tests: free ports, waiting for readiness, clean stops.

Each real peer (nginx, MariaDB, slapd, ...) has a module here with a function
that starts it in a temporary directory on 127.0.0.1 and returns a handle; the
test modules wrap them in fixtures.  A peer whose binary is missing makes its
tests skip (``require_binary``); ``.ci/run`` installs all of them, so in CI
nothing skips.  Recipes: ../shared/reference/test-peers.md.

Every server is started through :func:`spawn`, so a test run that is killed
(SIGKILL, a CI timeout) takes its servers with it instead of leaving them for
the next run; and every server gets fresh ports and a fresh directory, so what
an earlier run left behind cannot get in the way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "Server",
    "free_port",
    "own_tmpdir",
    "require_binary",
    "running",
    "spawn",
    "sweep_leftovers",
    "wait_for_port",
]

#: Every directory a peer makes outside pytest's own temp dirs starts so (see :func:`own_tmpdir`).
TMP_PREFIX = "lvscheck-peer-"
#: A peer directory this old is a leftover of a killed run (a CI run lasts at most 90 minutes).
LEFTOVER_AGE = 6 * 3600


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``Popen(argv)``, with the kernel told to SIGKILL the child when this test process dies.

    ``setpriv --pdeathsig KILL`` sets the parent-death signal and then executes
    ``argv`` in the same process (same pid, so signals and ``wait`` work as with
    a plain Popen).  Without setpriv (util-linux) the server simply starts.
    """
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
    return subprocess.Popen([*prefix, *argv], **popen)


def own_tmpdir(name: str, *, written_by_others: bool = False) -> Path:
    """A fresh directory under /tmp for one server (mode 0700; the caller opens it up as needed).

    For servers that drop privileges: pytest's temp dirs sit under a 0700 directory
    they could not enter.  Each peer removes its directory when it stops; what a
    killed run left is removed by :func:`sweep_leftovers` at the next start.

    ``written_by_others``: the server makes directories there under another user and
    then writes into them (PostgreSQL's initdb, dovecot's mailboxes).  In the IPVS
    guest, whose root is the host's through hostfs, such a directory is made owned
    by root and its maker cannot write into it ("Permission denied"), so there the
    directory is on the guest's own tmpfs (/dev/shm, gone when the guest stops).
    """
    parent = "/dev/shm" if written_by_others and _root_is_hostfs() and os.path.isdir("/dev/shm") else None
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=parent))


def _root_is_hostfs() -> bool:
    """Whether / is the host's own root seen from a User-Mode-Linux guest (../shared/ipvs-guest)."""
    with open("/proc/mounts") as mounts:
        return any(line.split()[1:3] == ["/", "hostfs"] for line in mounts)


def sweep_leftovers(older_than: float = LEFTOVER_AGE) -> list[Path]:
    """Remove the peer directories of runs that ended without cleaning up; returns them.

    Only directories older than ``older_than`` seconds, so those of a run going on
    beside this one (another checkout on the same machine) are left alone.
    """
    removed = []
    limit = time.time() - older_than
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < limit:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def require_binary(*candidates: str) -> str:
    """Path of the first binary found (PATH or absolute); skip the test if none is installed."""
    for name in candidates:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    pytest.skip(f"{' / '.join(candidates)} not installed (.ci/run installs it)")


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until ``host:port`` accepts TCP connections, or fail the test."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout} s")


class Server:
    """A started server process: its port, its directory, and how to stop it."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, workdir: Path, stop_signal: int = signal.SIGTERM
    ) -> None:
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.stop_signal = stop_signal

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)  # a test may have SIGSTOPped it
            self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    port: int,
    workdir: Path,
    *,
    stop_signal: int = signal.SIGTERM,
    ready_timeout: float = 20.0,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``argv`` (in the foreground, not daemonised), wait for ``port``, stop it afterwards."""
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    server = Server(proc, port, workdir, stop_signal)
    try:
        try:
            wait_for_port(port, timeout=ready_timeout, proc=proc)
        except RuntimeError as exc:
            log.flush()
            raise RuntimeError(
                f"{exc}; log:\n{(workdir / 'server.log').read_text(errors='replace')[-2000:]}"
            ) from None
        yield server
    finally:
        server.stop()
        log.close()
