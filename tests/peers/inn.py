"""A real INN 2 reader server (``nnrpd`` from Debian's ``inn2``) on 127.0.0.1 for the nntp check.

INN's ``nnrpd`` runs as a standalone daemon (``-D -f``: listen, fork per client,
stay in the foreground) with a private ``inn.conf`` (``INNCONF``) whose every
path points into the test directory: its own ``active`` file, an empty
tradindexed overview made by ``tdx-util -F``, and a ``readers.conf`` that lets
127.0.0.1 read anonymously and authenticates :data:`USER` / :data:`PASSWORD`
with INN's ``ckpasswd`` against a crypt(3) password file.  ``innd`` itself (the
feeder) is not needed for reading, greeting, AUTHINFO and QUIT.

Debian note: inn2's postinst stops when the host name has no domain ("innconfval:
hostname does not resolve or domain not set in inn.conf"); ``.ci/run`` gives
``/etc/news/inn.conf`` a ``domain:`` and finishes the configuration.  The private
inn.conf here sets ``domain`` itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Server, free_port, own_tmpdir, require_binary, running

__all__ = ["PASSWORD", "USER", "Inn", "start_inn"]

USER = "lvs"
PASSWORD = "lvs-news-pw"
INN_BIN = Path("/usr/lib/news/bin")


@dataclass
class Inn:
    port: int
    server: Server

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)


def _inn_conf(d: Path) -> str:
    overrides = {
        "domain": "example.test",
        "pathhost": "news.example.test",
        "pathdb": f"{d}/db",
        "pathspool": f"{d}/spool",
        "patharticles": f"{d}/spool/articles",
        "pathoverview": f"{d}/spool/overview",
        "pathincoming": f"{d}/spool/incoming",
        "pathoutgoing": f"{d}/spool/outgoing",
        "patharchive": f"{d}/spool/archive",
        "pathtmp": f"{d}/tmp",
        "pathrun": f"{d}/run",
        "pathlog": f"{d}/log",
        "ovmethod": "tradindexed",
        "enableoverview": "true",
    }
    base = Path("/etc/news/inn.conf").read_text() if Path("/etc/news/inn.conf").exists() else ""
    kept = [
        line
        for line in base.splitlines()
        if not ((m := re.match(r"\s*([A-Za-z]+)\s*:", line)) and m[1] in overrides)
    ]
    return "\n".join([*kept, *(f"{k}: {v}" for k, v in overrides.items())]) + "\n"


@contextlib.contextmanager
def _start_inn(workdir: Path) -> Iterator[Inn]:
    nnrpd = require_binary(str(INN_BIN / "nnrpd"))
    require_binary(str(INN_BIN / "tdx-util"), str(INN_BIN / "ckpasswd"))
    for sub in (
        "db",
        "spool/articles",
        "spool/overview",
        "spool/incoming",
        "spool/outgoing",
        "spool/archive",
        "tmp",
        "run",
        "log",
    ):
        (workdir / sub).mkdir(parents=True)
    (workdir / "db" / "active").write_text(
        "control 0000000000 0000000001 n\njunk 0000000000 0000000001 n\nlocal.test 0000000000 0000000001 y\n"
    )
    (workdir / "db" / "active.times").write_text("")
    (workdir / "db" / "newsgroups").write_text("local.test\tlvscheck test group\n")
    conf = workdir / "inn.conf"
    conf.write_text(_inn_conf(workdir))
    env = {**os.environ, "INNCONF": str(conf)}
    # nnrpd drops to the news user: it must be able to write its pid file and read the rest.
    os.chmod(workdir, 0o755)
    for path in [workdir, *workdir.rglob("*")]:
        shutil.chown(path, "news", "news")
    # An empty tradindexed overview (group.index); tdx-util also runs as news, and exits 0 on failure.
    done = subprocess.run([str(INN_BIN / "tdx-util"), "-F"], env=env, capture_output=True, text=True)
    if not (workdir / "spool" / "overview" / "group.index").exists():
        raise RuntimeError(f"tdx-util -F made no overview: {done.stderr}")
    crypted = subprocess.run(
        ["openssl", "passwd", "-6", PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    (workdir / "passwd").write_text(f"{USER}:{crypted}\n")
    readers = workdir / "readers.conf"
    readers.write_text(
        f"""\
auth "local" {{
    hosts: "127.0.0.1, localhost"
    auth: "ckpasswd -f {workdir}/passwd"
    default: "<anonymous>"
}}
access "local" {{
    users: "*"
    newsgroups: "*"
    access: RPA
}}
"""
    )
    port = free_port()
    argv = [nnrpd, "-D", "-f", "-b", "127.0.0.1", "-p", str(port), "-n", "-c", str(readers)]
    with running(argv, port, workdir, env=env) as server:
        yield Inn(port, server)


@contextlib.contextmanager
def start_inn(workdir: Path) -> Iterator[Inn]:
    """Start it in its own directory under /tmp (``workdir`` is unused but kept for symmetry).

    The server drops privileges, and pytest's temp dirs sit under a 0700 directory
    it could not enter; so the files live in a fresh world-traversable directory,
    removed afterwards.
    """
    own = own_tmpdir("inn")
    own.chmod(0o755)
    try:
        with _start_inn(own) as server:
            yield server
    finally:
        shutil.rmtree(own, ignore_errors=True)
