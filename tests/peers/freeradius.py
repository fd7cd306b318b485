"""A real Debian FreeRADIUS 3 on 127.0.0.1 (UDP auth port), from a private minimal config dir.

:func:`start_freeradius` writes ``radiusd.conf`` (one client 127.0.0.1 with
:data:`SECRET`, the ``files`` and ``pap`` modules, one auth listener,
``reject_delay = 0`` so a wrong password is answered at once instead of after
1 s), a ``users`` file (:data:`USER` / :data:`PASSWORD`, with a Reply-Message)
and a ``dictionary`` that includes Debian's; then runs ``freeradius -f`` (the
foreground, as root, no privilege drop) and waits for "Ready to process
requests" in its log (it listens on UDP only, so no TCP poll).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.peers import Server, free_port, require_binary, spawn

__all__ = ["PASSWORD", "REPLY_MESSAGE", "SECRET", "USER", "start_freeradius"]

SECRET = "lvs-shared-s3cret"
USER = "lvs"
PASSWORD = "lvs-pa55"
REPLY_MESSAGE = "hello from freeradius"


def radiusd_conf(d: Path, port: int) -> str:
    return f"""prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 5
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}}
proxy_requests = no
client lvscheck {{
  ipaddr = 127.0.0.1
  secret = {SECRET}
}}
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 2
}}
modules {{
  files {{
    filename = {d}/users
  }}
  pap {{
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
}}
"""


@contextlib.contextmanager
def start_freeradius(workdir: Path) -> Iterator[Server]:
    binary = require_binary("freeradius", "/usr/sbin/freeradius")
    port = free_port()
    (workdir / "radiusd.conf").write_text(radiusd_conf(workdir, port))
    (workdir / "users").write_text(
        f'{USER} Cleartext-Password := "{PASSWORD}"\n\tReply-Message := "{REPLY_MESSAGE}"\n'
    )
    (workdir / "dictionary").write_text("$INCLUDE /usr/share/freeradius/dictionary\n")
    logpath = workdir / "server.log"
    with open(logpath, "wb") as log:
        proc = spawn([binary, "-f", "-l", "stdout", "-d", str(workdir)], stdout=log, stderr=subprocess.STDOUT)
        server = Server(proc, port, workdir)
        try:
            end = time.monotonic() + 20
            while b"Ready to process requests" not in logpath.read_bytes():
                if proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(
                        f"freeradius did not start:\n{logpath.read_text(errors='replace')[-2000:]}"
                    )
                time.sleep(0.02)
            yield server
        finally:
            server.stop()
