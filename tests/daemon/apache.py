"""Debian's Apache (the seed how-to's web server) as a real server in a network namespace.

Each instance has its own config, ServerRoot and document root in a temp dir and
runs in the foreground (never the system service).  It serves ``/test.html``
("Still alive") and ``/`` (its own name), as the how-to's real servers do.
``listen`` picks the address it binds: ``"80"`` (every address, the VIP on
``lo`` included) or ``"RIP:80"`` (a real that forgot the VIP).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["APACHE", "RealApache"]

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"


class RealApache:
    def __init__(self, name: str, addr: str, netns: str) -> None:
        self.name = name
        self.addr = addr
        self.netns = netns
        # readable by www-data (pytest's own temp dirs are 0700)
        self.dir = Path(tempfile.mkdtemp(prefix=f"lvscheck-apache-{name}-"))
        self.dir.chmod(0o755)
        htdocs = self.dir / "htdocs"
        htdocs.mkdir()
        htdocs.chmod(0o755)
        (htdocs / "test.html").write_text("Still alive\n")
        (htdocs / "index.html").write_text(f"{name}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self, listen: str) -> Path:
        d = self.dir
        conf = d / "httpd.conf"
        conf.write_text(f"""\
ServerRoot {d}
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule dir_module {MODULES}/mod_dir.so
ServerName {self.name}
Listen {listen}
PidFile {d}/httpd.pid
DefaultRuntimeDir {d}
Mutex file:{d} default
ErrorLog {d}/error.log
LogLevel warn
User www-data
Group www-data
KeepAlive Off
DocumentRoot {d}/htdocs
DirectoryIndex index.html
<Directory {d}/htdocs>
    Require all granted
</Directory>
""")
        return conf

    def start(self, listen: str = "80", timeout: float = 30.0) -> None:
        conf = self._config(listen)
        (self.dir / "httpd.pid").unlink(missing_ok=True)
        argv = ["ip", "netns", "exec", self.netns, APACHE, "-f", str(conf), "-DFOREGROUND"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while True:  # the director reaches the real's own address
            with contextlib.suppress(OSError), socket.create_connection((self.addr, 80), timeout=0.5):
                return
            if self.proc.poll() is not None:
                log = (self.dir / "error.log").read_text() if (self.dir / "error.log").exists() else ""
                raise RuntimeError(f"apache2 {self.name} exited {self.proc.returncode}: {log[-2000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"apache2 {self.name} not listening on {self.addr}:80 within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, listen: str) -> None:
        self.stop()
        self.start(listen)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
