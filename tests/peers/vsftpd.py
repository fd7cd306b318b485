"""A real Debian vsftpd on 127.0.0.1 for the ftp check.

:func:`start_vsftpd` writes a private config into a directory and starts vsftpd
in the foreground (``background=NO``).  Anonymous login is on (any password) with
``anon_root`` holding :data:`FILE_NAME`; the local user :data:`USER` (created with
``useradd`` if missing, home :data:`HOME` which no run removes, password
:data:`PASSWORD` set with ``chpasswd``, PAM service ``vsftpd``) logs into the
same directory.  A wrong password is answered
after PAM's fail delay (about 3 s), as on a production server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Server, free_port, own_tmpdir, require_binary, running

__all__ = ["FILE_BODY", "FILE_NAME", "PASSWORD", "USER", "Vsftpd", "start_vsftpd"]

USER = "lvsftp"
PASSWORD = "lvs-ftp-pw"
FILE_NAME = "status.txt"
FILE_BODY = b"lvscheck ftp file\nStill alive\n"
#: The local user's home: kept between runs (see :func:`_ensure_user`).
HOME = Path("/var/lib/lvscheck-ftp-home")


@dataclass
class Vsftpd:
    port: int
    root: Path
    server: Server

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)


def _ensure_user() -> None:
    """The local user, whatever an earlier run (or an older version of this module) left.

    Its home is a fixed directory that no run removes: vsftpd changes into the home
    before ``local_root``, so a home that an earlier run deleted fails every local
    login with ``500 OOPS: cannot change directory``.
    """
    HOME.mkdir(mode=0o555, parents=True, exist_ok=True)
    found = subprocess.run(["getent", "passwd", USER], capture_output=True, text=True)
    if found.returncode != 0:
        made = subprocess.run(["useradd", "-M", "-d", str(HOME), "-s", "/bin/sh", USER], capture_output=True)
        if made.returncode not in (0, 9):  # 9: made meanwhile by a run beside this one
            raise RuntimeError(f"useradd {USER}: {made.stderr.decode(errors='replace')}")
    elif found.stdout.split(":")[5] != str(HOME):
        subprocess.run(["usermod", "-d", str(HOME), USER], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n".encode(), check=True)


@contextlib.contextmanager
def start_vsftpd(workdir: Path, *, active: bool = False) -> Iterator[Vsftpd]:
    """Start it; ``active``: allow active-mode data connections (PORT) too, not only passive (PASV)."""
    binary = require_binary("/usr/sbin/vsftpd", "vsftpd")
    # The local user must reach its root after vsftpd drops to its uid, and pytest's
    # temp dirs sit under a 0700 directory: the served files live in their own /tmp dir.
    empty = workdir / "empty"
    empty.mkdir()
    root = own_tmpdir("ftp")
    try:
        (root / FILE_NAME).write_bytes(FILE_BODY)
        (root / "large.bin").write_bytes(b"x" * (200 * 1024) + b"MARKER-AT-THE-END")
        os.chmod(workdir, 0o755)
        os.chmod(root, 0o555)  # vsftpd refuses a writable chroot
        _ensure_user()
        port = free_port()
        pasv = free_port()
        conf = workdir / "vsftpd.conf"
        conf.write_text(
            "\n".join(
                [
                    "listen=YES",
                    "listen_ipv6=NO",
                    "listen_address=127.0.0.1",
                    f"listen_port={port}",
                    "background=NO",
                    "anonymous_enable=YES",
                    f"anon_root={root}",
                    "no_anon_password=YES",
                    "local_enable=YES",
                    f"local_root={root}",
                    "chroot_local_user=YES",
                    "pam_service_name=vsftpd",
                    f"secure_chroot_dir={empty}",
                    "pasv_enable=YES",
                    "pasv_address=127.0.0.1",
                    f"pasv_min_port={pasv}",
                    # a range: two clients in PASV at once (ldirectord beside lvscheck) each need a port
                    f"pasv_max_port={min(pasv + 31, 65535)}",
                    f"port_enable={'YES' if active else 'NO'}",
                    f"vsftpd_log_file={workdir / 'vsftpd.log'}",
                    "xferlog_enable=NO",
                    "max_per_ip=0",
                    "",
                ]
            )
        )
        with running([binary, str(conf)], port, workdir) as server:
            yield Vsftpd(port, root, server)
    finally:
        shutil.rmtree(root, ignore_errors=True)
