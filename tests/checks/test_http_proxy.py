"""The http_proxy check through a real Debian tinyproxy (tests/peers/tinyproxy.py) to a real nginx origin.

The origin is the nginx of tests/peers/nginx.py (``/test.html`` says "Still
alive", ``/down`` is 503, ``/redirect`` is a 302).  A hand-written server stands in
only for hostile proxies.  http_proxy has no credentials, so there is no
wrong-credentials case; an origin the proxy cannot reach is the nearest thing
(the proxy answers 5xx).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.hostile import endless_line, open_fds, paused, script, serve, stall
from tests.peers.nginx import Nginx, start_nginx
from tests.peers.tinyproxy import Tinyproxy, start_tinyproxy
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

import lvscheck
from lvscheck import OptionError, State

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    with start_tinyproxy(tmp_path_factory.mktemp("tinyproxy")) as tp:
        yield tp


def url(origin: Nginx, path: str) -> str:
    return f"http://127.0.0.1:{origin.http_port}{path}"


def test_fetch_through_the_proxy(proxy: Tinyproxy, origin: Nginx, check: Checks) -> None:
    r = check("http_proxy", proxy.port, request=url(origin, "/test.html"), receive="Still alive")
    assert r.state is State.UP
    assert r.reason == "HTTP 200 OK, 'Still alive' found"
    log = (proxy.server.workdir / "tinyproxy.log").read_text()
    assert f"GET {url(origin, '/test.html')} HTTP/1.1" in log  # absolute form, through the proxy


def test_origin_status_is_judged(proxy: Tinyproxy, origin: Nginx, check: Checks) -> None:
    r = check("http_proxy", proxy.port, request=url(origin, "/down"))
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 503")
    r = check("http_proxy", proxy.port, request=url(origin, "/redirect"))
    assert r.state is State.DOWN
    assert "redirect to" in r.reason
    assert "not followed" in r.reason


def test_receive_not_found(proxy: Tinyproxy, origin: Nginx, check: Checks) -> None:
    r = check("http_proxy", proxy.port, request=url(origin, "/test.html"), receive="Gone")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 200 OK, but 'Gone' not found in the body")


def test_unreachable_origin_is_the_proxys_5xx(proxy: Tinyproxy, check: Checks) -> None:
    r = check("http_proxy", proxy.port, request=f"http://127.0.0.1:{free_port()}/")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 500")


def test_option_errors(check: Checks) -> None:
    with pytest.raises(OptionError, match="needs request=http://"):
        check("http_proxy", 3128)
    with pytest.raises(OptionError, match="absolute http:// URL"):
        check("http_proxy", 3128, request="/test.html")
    with pytest.raises(OptionError, match="https:// through a proxy is not supported"):
        check("http_proxy", 3128, request="https://example.test/")
    with pytest.raises(OptionError, match="has no option 'cafile'"):
        check("http_proxy", 3128, request="http://example.test/", cafile="/x")


def test_default_port_is_3128() -> None:
    assert lvscheck.PluginHost().check_type("http_proxy").default_port == 3128


def test_refused(check: Checks) -> None:
    assert check("http_proxy", free_port(), request="http://example.test/").reason == "connection refused"


def test_stalled_real_proxy(proxy: Tinyproxy, origin: Nginx, check: Checks) -> None:
    with paused(proxy.server.pid):
        r, took = check.timed(
            "http_proxy", proxy.port, request=url(origin, "/test.html"), negotiatetimeout="1"
        )
    assert r.reason == "timed out after 1 s waiting for the response headers"
    assert_at_deadline(took, 1)


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    while True:
        writer.write(b"z" * 4096)
        await writer.drain()


HOSTILE: list[tuple[str, Any, str]] = [
    ("stall", stall, "timed out after 1 s waiting for the response headers"),
    ("garbage", script(None, b"\x00\xff not HTTP at all\r\n\r\n"), "not a valid HTTP response"),
    (
        "truncated",
        script(None, b"HTTP/1.1 200 OK\r\nContent-Le", then="close"),
        "connection closed by the server waiting for the response headers",
    ),
    ("endless-headers", endless_line(b"HTTP/1.1 200 OK\r\nX-Junk: "), "not a valid HTTP response"),
    ("endless-body", endless_body, "HTTP 200 OK, but 'alive' not found in the first 64 KiB of the body"),
]


@pytest.mark.parametrize(("handler", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_proxies(handler: Any, reason: str, check: Checks) -> None:
    with serve(handler) as port:
        r, took = check.timed(
            "http_proxy", port, request="http://origin.example.test/", receive="alive", negotiatetimeout="1"
        )
    assert r.state is State.DOWN
    assert r.reason.startswith(reason)
    assert_by_deadline(took, 1)


def test_no_socket_leak(proxy: Tinyproxy, origin: Nginx, check: Checks) -> None:
    check("http_proxy", proxy.port, request=url(origin, "/test.html"))
    before = open_fds()
    for _ in range(3):
        check("http_proxy", proxy.port, request=url(origin, "/test.html"), receive="Still alive")
        check("http_proxy", proxy.port, request=url(origin, "/down"))
        check("http_proxy", free_port(), request="http://example.test/")
        for _, handler, _ in HOSTILE:
            with serve(handler) as port:
                check(
                    "http_proxy",
                    port,
                    request="http://origin.example.test/",
                    receive="alive",
                    negotiatetimeout="0.3",
                )
    assert open_fds() <= before
