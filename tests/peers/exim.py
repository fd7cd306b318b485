"""A real Debian exim (``exim4-daemon-light``) on 127.0.0.1 for the smtp and submission checks.

:func:`start_exim` writes a private configuration (``exim4 -C``) into a directory
and runs the daemon in the foreground (``-bdf``) on two ports:

``port``
    advertises STARTTLS with a certificate from a test CA (trustme) for
    ``localhost``, ``mx.example.test`` and IP ``127.0.0.1``, and AUTH PLAIN/LOGIN
    for :data:`USER` / :data:`PASSWORD` (plaintext authenticators with a fixed
    condition; no system accounts involved).
``plain_port``
    offers neither STARTTLS nor AUTH (``tls_advertise_hosts`` and
    ``auth_advertise_hosts`` test ``$received_port``).

No mail is accepted (no routers), nothing is delivered: the checks only talk.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from tests.peers import Server, free_port, require_binary, running, wait_for_port

__all__ = ["PASSWORD", "USER", "Exim", "start_exim"]

USER = "lvs"
PASSWORD = "lvs-smtp-pw"
HOSTNAME = "mx.example.test"


@dataclass
class Exim:
    port: int
    plain_port: int
    cafile: Path
    other_ca: Path
    server: Server

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)


def _config(d: Path, port: int, plain_port: int, cert: Path, key: Path) -> str:
    auth = f"${{if and {{{{eq{{$auth2}}{{{USER}}}}}{{eq{{$auth3}}{{{PASSWORD}}}}}}}}}"
    auth_login = f"${{if and {{{{eq{{$auth1}}{{{USER}}}}}{{eq{{$auth2}}{{{PASSWORD}}}}}}}}}"
    only_main = f"${{if eq{{$received_port}}{{{port}}}{{*}}{{}}}}"
    return f"""\
primary_hostname = {HOSTNAME}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
daemon_smtp_ports = {port} : {plain_port}
local_interfaces = 127.0.0.1
exim_user = root
exim_group = root
never_users =
tls_advertise_hosts = {only_main}
auth_advertise_hosts = {only_main}
tls_certificate = {cert}
tls_privatekey = {key}
acl_smtp_rcpt = acl_rcpt
host_lookup = :
rfc1413_hosts = :

begin acl

acl_rcpt:
  deny message = no relaying from a test server

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = {auth}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = {auth_login}
  server_set_id = $auth1
"""


@contextlib.contextmanager
def start_exim(workdir: Path) -> Iterator[Exim]:
    binary = require_binary("/usr/sbin/exim4", "exim4", "exim")
    (workdir / "spool").mkdir()
    (workdir / "log").mkdir()
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", HOSTNAME, "127.0.0.1")
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        with open(workdir / "cert.pem", "ab") as f:
            f.write(extra.bytes())
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(workdir / "other-ca.pem"))
    port, plain_port = free_port(), free_port()
    conf = workdir / "exim.conf"
    conf.write_text(_config(workdir, port, plain_port, workdir / "cert.pem", workdir / "key.pem"))
    argv = [binary, "-C", str(conf), "-bdf"]
    with running(argv, port, workdir) as server:
        wait_for_port(plain_port)
        yield Exim(port, plain_port, workdir / "ca.pem", workdir / "other-ca.pem", server)
