"""A real Debian unbound on 127.0.0.1 (UDP and TCP on one port) with local records for the dns check.

Records (zone ``example.test``, ``local-zone static``, so unknown names get NXDOMAIN)::

    www.example.test.   A    127.0.0.9
    www.example.test.   TXT  "hello lvscheck"
    big.example.test.   TXT  x 40 strings of 100 bytes (4 KiB: truncated over UDP, TC set)
    9.0.0.127.in-addr.arpa. PTR www.example.test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.peers import Server, free_port, require_binary, running

__all__ = ["BIG_TXT_STRINGS", "start_unbound"]

BIG_TXT_STRINGS = 40


def unbound_conf(workdir: Path, port: int) -> str:
    big = " ".join(f'"{i:03d}{"x" * 97}"' for i in range(BIG_TXT_STRINGS))
    return f"""server:
  interface: 127.0.0.1
  port: {port}
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{workdir}"
  pidfile: "{workdir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  module-config: "iterator"
  max-udp-size: 1232
  edns-buffer-size: 1232
  local-zone: "example.test." static
  local-data: "www.example.test. 60 IN A 127.0.0.9"
  local-data: 'www.example.test. 60 IN TXT "hello lvscheck"'
  local-data: 'big.example.test. 60 IN TXT {big}'
  local-data-ptr: "127.0.0.9 www.example.test."
remote-control:
  control-enable: no
"""


@contextlib.contextmanager
def start_unbound(workdir: Path) -> Iterator[Server]:
    binary = require_binary("unbound", "/usr/sbin/unbound")
    port = free_port()
    (workdir / "unbound.conf").write_text(unbound_conf(workdir, port))
    with running([binary, "-d", "-c", str(workdir / "unbound.conf")], port, workdir) as server:
        yield server
