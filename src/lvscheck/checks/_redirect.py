"""Where an HTTP redirect leads, and whether the check may follow it (pure).

ldirectord's LWP follows 301, 302, 303, 307 and 308 for GET and HEAD, at most 7
times (``max_redirect``), to any URL the ``Location`` header names, with a new
``Host`` header taken from that URL.  lvscheck follows the same codes and the
same count, but **never leaves the real server**: a redirect is followed only
when its host is the real's own address or the name the check sends as ``Host``
(``virtualhost=``, or the host of a full-URL request), and the next request goes
to the real's address whatever that name resolves to.  A redirect anywhere else
ends the check with the 3xx judged as it is (down, unless ``status=`` accepts
it), and the reason says where it pointed: a check that silently measured
another machine would keep a dead real in the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REDIRECT_CODES", "Hop", "next_hop"]

#: The status codes LWP follows (LWP::UserAgent::request).
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Hop:
    """The next request of a followed redirect: scheme, host, port, Host header, target, URL."""

    tls: bool
    host: str
    port: int
    host_header: str
    target: str
    url: str


def next_hop(location: str, base: str, real_names: frozenset[str]) -> Hop | str:
    """The request that follows ``Location: location`` of the response to ``base``.

    ``real_names`` holds the lower-case names and addresses that mean the real
    server.  Returns a :class:`Hop`, or why the redirect is not followed.
    """
    from urllib.parse import urljoin, urlsplit

    try:
        url = urlsplit(urljoin(base, location.strip()))
        port = url.port
    except ValueError:
        return "not a valid URL"
    if url.scheme not in ("http", "https"):
        return f"a {url.scheme or 'schemeless'} URL, not http or https"
    host = (url.hostname or "").lower()
    if host not in real_names:
        return f"another host ({host or '?'}): lvscheck does not leave the real server"
    tls = url.scheme == "https"
    default = 443 if tls else 80
    port = port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return Hop(tls, host, port, host_header, target, f"{url.scheme}://{host_header}{target}")
