"""A real Debian nginx (``nginx-light``) on 127.0.0.1 for the http/https checks.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Server, free_port, require_binary, running, wait_for_port

__all__ = ["LARGE_MARKER", "Nginx", "nginx_conf", "start_nginx", "write_certs"]

#: Written after the first 64 KiB of /large.html.
LARGE_MARKER = "MARKER-AFTER-64K"


@dataclass
class Nginx:
    workdir: Path
    http_port: int
    https_port: int
    wrongname_port: int
    clientcert_port: int
    cafile: Path  # CA that signed every server certificate (and the client one)
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA nobody used: verifying against it must fail
    server: Server | None = None

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        for child in _children(self.pid):
            os.kill(child, signal.SIGSTOP)

    def resume(self) -> None:
        for child in _children(self.pid):
            os.kill(child, signal.SIGCONT)
        os.kill(self.pid, signal.SIGCONT)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


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
    user = "user root;" if os.geteuid() == 0 else ""
    tls = f"ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};"
    return f"""
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/html;
    keepalive_timeout 5;
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
    }}
}}
"""


@contextlib.contextmanager
def start_nginx(workdir: Path) -> Iterator[Nginx]:
    """Start nginx in ``workdir``; stop it (SIGQUIT) when the block ends."""
    binary = require_binary("nginx", "/usr/sbin/nginx")
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
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(workdir, ng, files, root))
    argv = [binary, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"]
    with running(argv, ng.http_port, workdir, stop_signal=signal.SIGQUIT) as server:
        for port in ports[1:]:
            wait_for_port(port, proc=server.proc)
        ng.server = server
        yield ng
