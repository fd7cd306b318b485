"""A real Debian tinyproxy on 127.0.0.1 for the http_proxy check.

:func:`start_tinyproxy` writes a private config into a directory and runs
``tinyproxy -d`` (foreground).  It allows clients from 127.0.0.1 only and proxies
to any origin; the tests point it at the real nginx of ``tests/peers/nginx.py``.
``ConnectPort`` is left empty, so CONNECT tunnels are refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Server, free_port, own_tmpdir, require_binary, running

__all__ = ["Tinyproxy", "start_tinyproxy"]


@dataclass
class Tinyproxy:
    port: int
    server: Server

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)


@contextlib.contextmanager
def _start_tinyproxy(workdir: Path) -> Iterator[Tinyproxy]:
    binary = require_binary("/usr/bin/tinyproxy", "tinyproxy")
    os.chmod(workdir, 0o777)  # it drops to nobody and writes its log here
    port = free_port()
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        f"""\
User nobody
Group nogroup
Port {port}
Listen 127.0.0.1
Timeout 30
LogFile "{workdir}/tinyproxy.log"
LogLevel Info
PidFile "{workdir}/tinyproxy.pid"
MaxClients 20
Allow 127.0.0.1
ViaProxyName "lvscheck-test"
DisableViaHeader No
"""
    )
    with running([binary, "-d", "-c", str(conf)], port, workdir) as server:
        yield Tinyproxy(port, server)


@contextlib.contextmanager
def start_tinyproxy(workdir: Path) -> Iterator[Tinyproxy]:
    """Start it in its own directory under /tmp (``workdir`` is unused but kept for symmetry).

    The server drops privileges, and pytest's temp dirs sit under a 0700 directory
    it could not enter; so the files live in a fresh world-traversable directory,
    removed afterwards.
    """
    own = own_tmpdir("tinyproxy")
    own.chmod(0o755)
    try:
        with _start_tinyproxy(own) as server:
            yield server
    finally:
        shutil.rmtree(own, ignore_errors=True)
