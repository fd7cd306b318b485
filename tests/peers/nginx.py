"""Real Debian nginx (``nginx-light``): the test web server of the http checks, and the reals of the daemon.

Both are one :class:`NginxProcess` (``nginx -c CONF -p DIR -g "daemon off;"``,
optionally inside a network namespace, that can be started, paused, resumed and
stopped); they differ only in the configuration written for it:

:class:`RealNginx`
    one small server per real (host, or a guest netns) that answers
    ``/test.html`` with "Still alive" and ``/`` with its own name, so a client
    going through the VIP can tell which real it reached.

:func:`start_nginx` writes a config, a document root and certificates from a test CA
(trustme) into a directory, starts nginx in the foreground (``daemon off``) and
returns a handle with the ports and PEM paths.  Listeners:

``http_port`` / ``https_port``
    the default server (``localhost``, ``127.0.0.1``) and a virtual host
    ``www.example.test``, over HTTP and HTTPS.  The HTTPS certificate names
    ``localhost``, ``www.example.test`` and IP ``127.0.0.1``.
``wrongname_port``
    HTTPS with a certificate from the same CA for ``wrong.example.test`` only.
``clientcert_port``
    HTTPS that requires a client certificate (``ssl_verify_client on``) from the
    client CA; the test client certificate is ``client_cert``/``client_key``.

Locations of the default server (both ports): ``/test.html`` (the seed's
"Still alive"), ``/down`` (503), ``/redirect`` (302 to /test.html),
``/redirect-away`` (302 to other.example.test), ``/redirect-loop`` (307 to itself),
``/weight`` (200 with ``X-LVS-Weight: 5``), ``/weight-body`` (body ``weight=7``),
``/large.html`` (96 KiB, ``MARKER-AFTER-64K`` after the first 64 KiB),
``/whoami`` (``host=$host sni=$ssl_server_name``, proves Host and SNI).
The ``www.example.test`` server answers ``/test.html`` with "www vhost alive"
and ``/whoami`` with ``vhost=www``; its ``/redirect-vhost`` is a 301 to its own
``/whoami`` by name (www.example.test, same port).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import free_port, require_binary, spawn, wait_for_port
from tests.peers.hostile import process_tree

__all__ = ["LARGE_MARKER", "Nginx", "NginxProcess", "RealNginx", "nginx_conf", "start_nginx", "write_certs"]

#: Written after the first 64 KiB of /large.html.
LARGE_MARKER = "MARKER-AFTER-64K"


class NginxProcess:
    """One nginx master (and its worker) in ``workdir``, running ``conf``; ready when ``listens`` accept.

    Inside ``netns`` the ports cannot be polled from here: ready when nginx wrote its pid file.
    """

    def __init__(
        self,
        workdir: Path,
        conf: str,
        listens: list[tuple[str, int]],
        *,
        netns: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.dir = workdir
        self.listens = listens
        self.netns = netns
        self.stop_signal = stop_signal
        self.binary = require_binary("nginx", "/usr/sbin/nginx")
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "nginx.conf").write_text(conf)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "nginx is not running"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        argv = [self.binary, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-g", "daemon off;"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "nginx.pid").unlink()
        with open(self.dir / "server.log", "wb") as log:
            self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            if self.netns is None:
                for host, port in self.listens:
                    wait_for_port(port, host, timeout=timeout, proc=self.proc)
            else:
                end = time.monotonic() + timeout
                while not (self.dir / "nginx.pid").exists():
                    if self.proc.poll() is not None or time.monotonic() > end:
                        raise RuntimeError("nginx did not start")
                    time.sleep(0.05)
                time.sleep(0.2)
        except RuntimeError as exc:
            self.stop()
            log_text = (self.dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; log:\n{log_text}") from None

    def pause(self) -> None:
        """SIGSTOP master and workers: connections are accepted by the kernel, never answered."""
        for pid in process_tree(self.pid):
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in reversed(process_tree(self.pid)):
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.resume()  # a test may have paused it
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "nginx.pid").unlink()


def _conf(
    d: Path, servers: str, *, error_level: str = "warn", connections: int = 4096, keepalive: int = 5
) -> str:
    """The nginx.conf around ``servers``: every path in ``d``, root's workers when run as root."""
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log {error_level};
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/html;
    keepalive_timeout {keepalive};
{servers}
}}
"""


class RealNginx(NginxProcess):
    """A real server ``name`` on ``addr:port``: "Still alive" at /test.html, its name at /."""

    def __init__(self, name: str, addr: str, port: int, workdir: Path, netns: str | None = None) -> None:
        d = workdir / name
        (d / "root").mkdir(parents=True, exist_ok=True)
        (d / "root" / "test.html").write_text("Still alive\n")
        (d / "root" / "index.html").write_text(f"{name}\n")
        server = f"    server {{ listen {addr}:{port}; root {d}/root; }}"
        conf = _conf(d, server, error_level="error", connections=1024, keepalive=0)
        super().__init__(d, conf, [(addr, port)], netns=netns)
        self.name = name
        self.addr = addr
        self.port = port


@dataclass
class Nginx:
    """The test web server of :func:`start_nginx`: its ports and PEM files."""

    workdir: Path
    http_port: int
    https_port: int
    wrongname_port: int
    clientcert_port: int
    cafile: Path  # CA that signed every server certificate (and the client one)
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA nobody used: verifying against it must fail
    server: NginxProcess | None = None

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def pause(self) -> None:
        assert self.server is not None
        self.server.pause()

    def resume(self) -> None:
        assert self.server is not None
        self.server.resume()


def write_certs(d: Path) -> dict[str, Path]:
    """Server, wrong-name and client certificates from a test CA; returns the PEM paths."""
    import trustme

    ca = trustme.CA()
    other = trustme.CA()
    files = {
        "ca": d / "ca.pem",
        "other_ca": d / "other-ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "wrong_cert": d / "wrong.pem",
        "wrong_key": d / "wrong.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    other.cert_pem.write_to_path(str(files["other_ca"]))
    server = ca.issue_cert("localhost", "www.example.test", "127.0.0.1")
    server.private_key_pem.write_to_path(str(files["key"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    wrong = ca.issue_cert("wrong.example.test")
    wrong.private_key_pem.write_to_path(str(files["wrong_key"]))
    wrong.cert_chain_pems[0].write_to_path(str(files["wrong_cert"]))
    client = ca.issue_cert("lvscheck-client.example.test")
    client.private_key_pem.write_to_path(str(files["client_key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    return files


def _docroot(d: Path) -> Path:
    root = d / "html"
    (root / "www").mkdir(parents=True, exist_ok=True)
    (root / "test.html").write_text("Still alive\n")  # the seed's exact case
    (root / "www" / "test.html").write_text("www vhost alive\n")
    filler = ("x" * 1023 + "\n") * 64  # exactly 64 KiB
    (root / "large.html").write_text(filler + LARGE_MARKER + "\n" + ("y" * 1023 + "\n") * 32)
    return root


def nginx_conf(d: Path, ng: Nginx, files: dict[str, Path], root: Path) -> str:
    tls = f"ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};"
    servers = f"""
    server {{
        listen 127.0.0.1:{ng.http_port} default_server;
        listen 127.0.0.1:{ng.https_port} ssl default_server;
        server_name localhost 127.0.0.1;
        {tls}
        root {root};
        location = /down {{ return 503 "down for maintenance\\n"; }}
        location = /redirect {{ return 302 /test.html; }}
        location = /redirect-away {{ return 302 http://other.example.test/test.html; }}
        location = /redirect-loop {{ return 307 /redirect-loop; }}
        location = /weight {{ add_header X-LVS-Weight 5; return 200 "weighted\\n"; }}
        location = /weight-body {{ return 200 "Still alive weight=7\\n"; }}
        location = /whoami {{ return 200 "host=$host sni=$ssl_server_name\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{ng.http_port};
        listen 127.0.0.1:{ng.https_port} ssl;
        server_name www.example.test;
        {tls}
        root {root}/www;
        location = /whoami {{ return 200 "vhost=www host=$host sni=$ssl_server_name\\n"; }}
        location = /redirect-vhost {{ return 301 http://www.example.test:$server_port/whoami; }}
    }}
    server {{
        listen 127.0.0.1:{ng.wrongname_port} ssl;
        ssl_certificate {files["wrong_cert"]}; ssl_certificate_key {files["wrong_key"]};
        root {root};
    }}
    server {{
        listen 127.0.0.1:{ng.clientcert_port} ssl;
        {tls}
        ssl_client_certificate {files["ca"]};
        ssl_verify_client on;
        root {root};
    }}"""
    return _conf(d, servers)


@contextlib.contextmanager
def start_nginx(workdir: Path) -> Iterator[Nginx]:
    """Start nginx in ``workdir``; stop it (SIGQUIT) when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = write_certs(workdir)
    root = _docroot(workdir)
    ports = [free_port() for _ in range(4)]
    while len(set(ports)) < 4:
        ports = [free_port() for _ in range(4)]
    ng = Nginx(
        workdir,
        *ports,
        cafile=files["ca"],
        client_cert=files["client_cert"],
        client_key=files["client_key"],
        other_ca=files["other_ca"],
    )
    server = NginxProcess(
        workdir,
        nginx_conf(workdir, ng, files, root),
        [("127.0.0.1", port) for port in ports],
        stop_signal=signal.SIGQUIT,
    )
    server.start()
    ng.server = server
    try:
        yield ng
    finally:
        server.stop()
