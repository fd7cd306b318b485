"""``http_proxy``: fetch ``request`` (an absolute ``http://`` URL) through the real server as a proxy.

The dialogue: connect to the real server (the proxy, default port 3128) and
send one HTTP/1.1 request in absolute form, ``GET http://origin/path HTTP/1.1``
with ``Host: <origin>`` and ``Connection: close``; judge the reply exactly as
the ``http`` check does (accepted ``status``, ``receive`` in at most ``maxbody``
bytes of body, ``weightfrom``).  Redirects are not followed.

As in ldirectord, only ``http://`` URLs can be fetched (an ``https://`` URL
would need a CONNECT tunnel and a TLS session with the origin, which checks the
origin more than the proxy).  HTTP is parsed by httptools (llhttp), like the http check.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lvscheck.checks.http import HttpCheck
from lvscheck.errors import OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["HttpProxyCheck"]

_NOT_FOR_PROXY = frozenset({"virtualhost", "tlsverify", "cafile", "certfile", "keyfile", "redirects"})


class HttpProxyCheck(HttpCheck):
    name = "http_proxy"
    summary = "HTTP GET of an absolute http:// URL through the real server as a proxy; status and body decide"
    default_port = 3128
    tls = False
    options = tuple(
        Option("request", "absolute http:// URL to fetch through the proxy (required)", None)
        if o.name == "request"
        else o
        for o in HttpCheck.options
        if o.name not in _NOT_FOR_PROXY
    )

    def setup(self) -> None:
        request: str | None = self.opts["request"]
        if not request:
            raise OptionError("check type 'http_proxy' needs request=http://HOST/PATH (the URL to fetch)")
        url = urlsplit(request)
        if url.scheme != "http" or not url.hostname:
            raise OptionError(
                f"request={request!r}: http_proxy fetches an absolute http:// URL with a host "
                "(https:// through a proxy is not supported)"
            )
        self.use_tls = False
        self.tls_context = None
        self.connect_host = self.spec.target.host
        self.server_name = self.connect_host
        self.target_path = url.geturl()
        self._setup_reply()
        self.redirects = 0
        self.request = self._build_request(url.netloc.rpartition("@")[2], self.target_path)

    def describe(self) -> str:
        return f"{self.name} {self.method} {self.target_path} via {self.connect_host}:{self.port}"


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(HttpProxyCheck)
