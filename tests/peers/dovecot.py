"""A real Debian dovecot (``dovecot-imapd``, ``dovecot-pop3d``) on 127.0.0.1.

:func:`start_dovecot` writes a private config into a directory and runs
``dovecot -F`` (foreground) with four listeners: IMAP, IMAPS, POP3 and POP3S.
The TLS ports and STARTTLS/STLS use a certificate from a test CA (trustme) for
``localhost``, ``mail.example.test`` and IP ``127.0.0.1``.  One user,
:data:`USER` / :data:`PASSWORD`, from a passwd-file (no system accounts);
plaintext logins are allowed without TLS so both paths can be tested.  A failed
login is answered after 1 s (``auth_failure_delay``); anvil's growing per-IP
penalty is off, so one failing test does not slow the next.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from tests.peers import Server, free_port, own_tmpdir, require_binary, running, wait_for_port
from tests.peers.hostile import process_tree

__all__ = ["PASSWORD", "USER", "Dovecot", "start_dovecot"]

USER = "lvs"
PASSWORD = "lvs-mail-pw"


@dataclass
class Dovecot:
    imap_port: int
    imaps_port: int
    pop_port: int
    pops_port: int
    cafile: Path
    other_ca: Path
    server: Server

    def pause(self) -> None:
        """SIGSTOP the master and every child (login processes accept, then nothing answers)."""
        for pid in process_tree(self.server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in reversed(process_tree(self.server.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def _start_dovecot(workdir: Path) -> Iterator[Dovecot]:
    binary = require_binary("/usr/sbin/dovecot", "dovecot")
    require_binary("/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3")
    os.chmod(workdir, 0o755)
    for sub in ("run", "state", "mail"):
        (workdir / sub).mkdir()
    os.chown(workdir / "mail", 65534, 65534)  # nobody:nogroup, the static userdb's uid
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "mail.example.test", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(workdir / "other-ca.pem"))
    (workdir / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    imap, imaps, pop, pops = (free_port() for _ in range(4))
    conf = workdir / "dovecot.conf"
    conf.write_text(
        f"""\
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = lvscheck-{imap}
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{workdir}/cert.pem
ssl_key = <{workdir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {workdir}/dovecot.log
mail_location = maildir:{workdir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {workdir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={workdir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop}
  }}
  inet_listener pop3s {{
    port = {pops}
    ssl = yes
  }}
}}
auth_failure_delay = 1 secs
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
    )
    with running([binary, "-F", "-c", str(conf)], imap, workdir) as server:
        for port in (imaps, pop, pops):
            wait_for_port(port)
        yield Dovecot(imap, imaps, pop, pops, workdir / "ca.pem", workdir / "other-ca.pem", server)


@contextlib.contextmanager
def start_dovecot(workdir: Path) -> Iterator[Dovecot]:
    """Start it in its own directory under /tmp (``workdir`` is unused but kept for symmetry).

    The server drops privileges, and pytest's temp dirs sit under a 0700 directory
    it could not enter; so the files live in a fresh world-traversable directory,
    removed afterwards.
    """
    own = own_tmpdir("dovecot", written_by_others=True)
    own.chmod(0o755)
    try:
        with _start_dovecot(own) as server:
            yield server
    finally:
        shutil.rmtree(own, ignore_errors=True)
