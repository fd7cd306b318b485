"""Real servers for the daemon tests: one small Debian nginx per real (host, or a guest netns).

Each answers ``/test.html`` with "Still alive" and ``/`` with its own name, so a
client going through the VIP can tell which real it reached.  ``stop()`` and
``start()`` take one real out of and back into service for real.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.peers import require_binary, spawn, wait_for_port

__all__ = ["RealNginx"]


class RealNginx:
    def __init__(self, name: str, addr: str, port: int, workdir: Path, netns: str | None = None) -> None:
        self.name = name
        self.addr = addr
        self.port = port
        self.dir = workdir / name
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = require_binary("nginx", "/usr/sbin/nginx")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "root").mkdir(exist_ok=True)
        (self.dir / "root" / "test.html").write_text("Still alive\n")
        (self.dir / "root" / "index.html").write_text(f"{name}\n")
        user = "user root;" if os.geteuid() == 0 else ""
        d = self.dir
        (d / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_timeout 0;
    server {{ listen {addr}:{port}; root {d}/root; }}
}}
""")

    def start(self, timeout: float = 30.0) -> None:
        argv = [self.binary, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-g", "daemon off;"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.netns is None:
            wait_for_port(self.port, self.addr, timeout=timeout, proc=self.proc)
        else:
            end = time.monotonic() + timeout
            while not (self.dir / "nginx.pid").exists() and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.2)

    def _pids(self) -> list[int]:
        assert self.proc is not None
        pid = self.proc.pid
        with contextlib.suppress(OSError):
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return [pid, *map(int, kids)]
        return [pid]

    def pause(self) -> None:
        """SIGSTOP master and workers: connections are accepted by the kernel, never answered."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in reversed(self._pids()):
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "nginx.pid").unlink()
