"""The http, https and connect checks against a real Debian nginx (tests/peers/nginx.py).

Every outcome is checked through the library (``lvscheck.run_checks``) and the
important ones also through the ``lvscheck run`` command as ldirectord or Nagios
would start it: exit code, status line, ``--json`` and ``--exit-codes misc-dynamic``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import LARGE_MARKER, Nginx, start_nginx
from tests.runcheck import Checks
from tests.timing import assert_at_deadline

from lvscheck import OptionError, State
from lvscheck.plugin.check import DEFAULT_TIMEOUT

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
SEED = {"request": "/test.html", "receive": "Still alive"}


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LVSCHECK, *args], capture_output=True, text=True, timeout=timeout)


def tls(ng: Nginx, **extra: str) -> dict[str, str]:
    return {"cafile": str(ng.cafile), **extra}


# -- plain HTTP: the seed's case and the status/receive verdicts ------------------------------------


def test_seed_case_is_up(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, **SEED)
    assert r.state is State.UP
    assert r.weight == 1
    assert r.reason == "HTTP 200 OK, 'Still alive' found"
    assert 0 < r.latency < 1
    assert r.details["status"] == 200


def test_cli_seed_case_nagios_line(nginx: Nginx) -> None:
    p = cli("run", "http", f"127.0.0.1:{nginx.http_port}", "request=/test.html", "receive=Still alive")
    assert p.returncode == 0, p
    line = p.stdout.strip()
    assert line.startswith(
        f"HTTP OK - 127.0.0.1:{nginx.http_port} weight 1: HTTP 200 OK, 'Still alive' found"
    )
    assert "| time=" in line
    assert "weight=1;;;0" in line
    assert p.stderr == ""


def test_cli_json_fields(nginx: Nginx) -> None:
    p = cli(
        "run", "http", f"127.0.0.1:{nginx.http_port}", "request=/test.html", "receive=Still alive", "--json"
    )
    assert p.returncode == 0, p
    out = json.loads(p.stdout)
    assert {"check", "target", "state", "weight", "reason", "latency_ms"} <= out.keys()
    assert out["check"] == "http"
    assert out["target"] == f"127.0.0.1:{nginx.http_port}"
    assert out["state"] == "up"
    assert out["weight"] == 1
    assert "Still alive" in out["reason"]
    assert isinstance(out["latency_ms"], float)
    assert 0 < out["latency_ms"] < 1000


def test_receive_not_found(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/test.html", receive="Dead already")
    assert r.state is State.DOWN
    assert r.weight == 0
    assert r.reason == "HTTP 200 OK, but 'Dead already' not found in the body (12 bytes)"
    p = cli("run", "http", f"127.0.0.1:{nginx.http_port}", "request=/test.html", "receive=Dead", "--json")
    assert p.returncode == 2
    assert json.loads(p.stdout)["state"] == "down"


def test_receive_is_a_regex(nginx: Nginx, check: Checks) -> None:
    assert (
        check("http", nginx.http_port, request="/test.html", receive=r"^Still\s+al[iI]ve\Z").state
        is State.DOWN
    )
    r = check("http", nginx.http_port, request="/test.html", receive=r"(?m)^Still\s+al[iI]ve$")
    assert r.state is State.UP


def test_503_is_down(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/down")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 503 Service Temporarily Unavailable")
    assert "accepted: 200-299" in r.reason
    p = cli("run", "http", f"127.0.0.1:{nginx.http_port}", "request=/down")
    assert p.returncode == 2
    assert p.stdout.startswith("HTTP CRITICAL - ")
    assert "503" in p.stdout
    # an operator who expects a 503 can say so
    assert check("http", nginx.http_port, request="/down", status="503").state is State.UP


def test_redirect_is_not_followed(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/redirect", receive="Still alive")
    assert r.state is State.DOWN
    assert "HTTP 302" in r.reason
    assert f"redirect to http://127.0.0.1:{nginx.http_port}/test.html, not followed" in r.reason
    # accepted when the operator lists 3xx; the body of the redirect is then searched, not the target
    assert check("http", nginx.http_port, request="/redirect", status="2xx,3xx").state is State.UP
    r = check("http", nginx.http_port, request="/redirect", status="302", receive="Still alive")
    assert r.state is State.DOWN
    assert "not found" in r.reason


def test_missing_page_404(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/nope.html")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 404 Not Found")


def test_head(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/test.html", httpmethod="HEAD")
    assert r.state is State.UP
    assert r.reason == "HTTP 200 OK"
    assert check("http", nginx.http_port, request="/down", httpmethod="head").state is State.DOWN
    with pytest.raises(OptionError, match="HEAD"):
        check("http", nginx.http_port, request="/test.html", httpmethod="HEAD", receive="x")


def test_large_body_read_is_bounded(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/large.html", receive=LARGE_MARKER)
    assert r.state is State.DOWN
    assert r.reason == f"HTTP 200 OK, but '{LARGE_MARKER}' not found in the first 64 KiB of the body"
    r = check("http", nginx.http_port, request="/large.html", receive=LARGE_MARKER, maxbody="128k")
    assert r.state is State.UP


def test_request_without_slash_and_full_url(nginx: Nginx, check: Checks) -> None:
    # ldirectord writes request=test.html; a full URL replaces the real's address and port
    assert check("http", nginx.http_port, request="test.html", receive="Still alive").state is State.UP
    r = check("http", 1, request=f"http://localhost:{nginx.http_port}/test.html", receive="Still alive")
    assert r.state is State.UP, r.reason
    r = check(
        "http",
        1,
        **tls(nginx),
        request=f"https://localhost:{nginx.https_port}/whoami",
        receive="sni=localhost",
    )
    assert r.state is State.UP, r.reason


def test_host_header_defaults_to_the_real(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/whoami", receive=r"^host=127\.0\.0\.1 sni=\n")
    assert r.state is State.UP, r.reason


# -- virtual hosts: Host header and SNI --------------------------------------------------------------


def test_virtualhost_sets_host(nginx: Nginx, check: Checks) -> None:
    # nginx routes on the Host header: only the www.example.test server has "www vhost alive"
    r = check(
        "http",
        nginx.http_port,
        request="/test.html",
        receive="www vhost alive",
        virtualhost="www.example.test",
    )
    assert r.state is State.UP, r.reason
    assert check("http", nginx.http_port, request="/test.html", receive="www vhost alive").state is State.DOWN


def test_virtualhost_sets_sni_over_https(nginx: Nginx, check: Checks) -> None:
    r = check(
        "https",
        nginx.https_port,
        **tls(nginx),
        request="/whoami",
        virtualhost="www.example.test",
        receive=r"vhost=www host=www\.example\.test sni=www\.example\.test",
    )
    assert r.state is State.UP, r.reason
    # a host-name target is its own SNI; an IP target sends none (RFC 6066)
    r = check(
        "https", nginx.https_port, host="localhost", **tls(nginx), request="/whoami", receive="sni=localhost"
    )
    assert r.state is State.UP, r.reason
    r = check("https", nginx.https_port, **tls(nginx), request="/whoami", receive=r"sni=\n")
    assert r.state is State.UP, r.reason


# -- TLS ----------------------------------------------------------------------------------------------


def test_https_verified_with_cafile(nginx: Nginx, check: Checks) -> None:
    r = check("https", nginx.https_port, **tls(nginx), **SEED)
    assert r.state is State.UP
    assert r.reason == "HTTP 200 OK, 'Still alive' found"
    p = cli(
        "run",
        "https",
        f"127.0.0.1:{nginx.https_port}",
        f"cafile={nginx.cafile}",
        *[f"{k}={v}" for k, v in SEED.items()],
    )
    assert p.returncode == 0, p
    assert p.stdout.startswith("HTTPS OK - ")


def test_unknown_ca_is_down(nginx: Nginx, check: Checks) -> None:
    r = check("https", nginx.https_port, **SEED)  # system store: our test CA is not in it
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: ")
    assert "unable to get local issuer certificate" in r.reason
    r = check("https", nginx.https_port, cafile=str(nginx.other_ca), **SEED)
    assert r.state is State.DOWN
    assert "certificate" in r.reason
    p = cli("run", "https", f"127.0.0.1:{nginx.https_port}", "request=/test.html")
    assert p.returncode == 2
    assert "certificate" in p.stdout


def test_tlsverify_no(nginx: Nginx, check: Checks) -> None:
    assert check("https", nginx.https_port, tlsverify="no", **SEED).state is State.UP
    assert check("https", nginx.wrongname_port, tlsverify="no", **SEED).state is State.UP
    with pytest.raises(OptionError, match="tlsverify"):
        check("https", nginx.https_port, tlsverify="maybe")


def test_wrong_name_certificate_is_down(nginx: Nginx, check: Checks) -> None:
    r = check("https", nginx.wrongname_port, **tls(nginx), **SEED)
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted: ")
    assert "mismatch" in r.reason or "match" in r.reason
    # the same certificate is fine for the name it was issued to
    r = check("https", nginx.wrongname_port, **tls(nginx), virtualhost="wrong.example.test", **SEED)
    assert r.state is State.UP, r.reason


def test_client_certificate(nginx: Nginx, check: Checks) -> None:
    r = check("https", nginx.clientcert_port, **tls(nginx), **SEED)
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 400")
    r = check(
        "https",
        nginx.clientcert_port,
        **tls(nginx, certfile=str(nginx.client_cert), keyfile=str(nginx.client_key)),
        **SEED,
    )
    assert r.state is State.UP, r.reason
    with pytest.raises(OptionError, match="certfile"):
        check("https", nginx.clientcert_port, cafile=str(nginx.cafile), certfile="/nonexistent.pem")


def test_https_on_a_plain_http_port(nginx: Nginx, check: Checks) -> None:
    r = check("https", nginx.http_port, **tls(nginx), **SEED, negotiatetimeout="2")
    assert r.state is State.DOWN
    assert "TLS" in r.reason


def test_http_on_a_tls_port(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.https_port, **SEED)
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 400")


# -- weights ------------------------------------------------------------------------------------------


def test_weight_from_header(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, weight=10, request="/weight", weightfrom="header:X-LVS-Weight")
    assert r.state is State.DEGRADED
    assert r.weight == 5
    assert "weight 5 from header X-LVS-Weight" in r.reason
    # asking for exactly the configured weight is up
    r = check("http", nginx.http_port, weight=5, request="/weight", weightfrom="header:x-lvs-weight")
    assert r.state is State.UP
    assert r.weight == 5


def test_weight_clamping(nginx: Nginx, check: Checks) -> None:
    # maxweight defaults to the configured weight: the server cannot ask for more
    r = check("http", nginx.http_port, weight=3, request="/weight", weightfrom="header:X-LVS-Weight")
    assert r.state is State.UP
    assert r.weight == 3
    assert "asked 5, clamped to 0..3" in r.reason
    r = check(
        "http", nginx.http_port, weight=10, request="/weight", weightfrom="header:X-LVS-Weight", minweight="7"
    )
    assert r.state is State.DEGRADED
    assert r.weight == 7
    assert "clamped to 7..10" in r.reason
    r = check(
        "http", nginx.http_port, weight=10, request="/weight", weightfrom="header:X-LVS-Weight", maxweight="2"
    )
    assert r.state is State.DEGRADED
    assert r.weight == 2


def test_weight_from_group(nginx: Nginx, check: Checks) -> None:
    opts = {"request": "/weight-body", "receive": r"Still alive weight=(?P<w>\d+)", "weightfrom": "group:w"}
    r = check("http", nginx.http_port, weight=10, **opts)
    assert r.state is State.DEGRADED
    assert r.weight == 7
    assert "weight 7 from group w" in r.reason
    r = check("http", nginx.http_port, weight=10, **opts, maxweight="4")
    assert r.state is State.DEGRADED
    assert r.weight == 4
    r = check("http", nginx.http_port, weight=7, **opts)
    assert r.state is State.UP
    assert r.weight == 7
    with pytest.raises(OptionError, match="group:x"):
        check("http", nginx.http_port, request="/", receive="alive", weightfrom="group:x")


def test_weight_header_missing_keeps_configured_weight(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, weight=4, **SEED, weightfrom="header:X-LVS-Weight")
    assert r.state is State.DEGRADED
    assert r.weight == 4
    assert "header X-LVS-Weight missing" in r.reason


def test_cli_weight_and_misc_dynamic(nginx: Nginx) -> None:
    base = ["run", "http", f"127.0.0.1:{nginx.http_port}"]
    weighted = [*base, "request=/weight", "weightfrom=header:X-LVS-Weight"]
    p = cli(*weighted, "-w", "10", "--json")
    assert p.returncode == 1, p  # degraded = Nagios WARNING
    out = json.loads(p.stdout)
    assert (out["state"], out["weight"]) == ("degraded", 5)
    p = cli(*weighted, "-w", "10")
    assert p.stdout.startswith("HTTP WARNING - ")
    assert "weight=5;;;0" in p.stdout
    # keepalived misc_dynamic: 0 up at the configured weight, 1 down, 2+N weight N
    assert cli(*weighted, "-w", "10", "--exit-codes", "misc-dynamic").returncode == 2 + 5
    assert cli(*weighted, "-w", "5", "--exit-codes", "misc-dynamic").returncode == 0
    assert cli(*base, "request=/test.html", "--exit-codes", "misc-dynamic").returncode == 0
    assert cli(*base, "request=/down", "--exit-codes", "misc-dynamic").returncode == 1


# -- connect ------------------------------------------------------------------------------------------


def test_connect_up_and_refused(nginx: Nginx, check: Checks) -> None:
    r = check("connect", nginx.http_port)
    assert r.state is State.UP
    assert r.reason == "TCP connect succeeded"
    r = check("connect", free_port())
    assert r.state is State.DOWN
    assert r.reason == "connection refused"
    assert check("connect", 1, checkport=str(nginx.https_port)).state is State.UP
    p = cli("run", "connect", f"127.0.0.1:{nginx.http_port}", "--json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["state"] == "up"
    p = cli("run", "connect", f"127.0.0.1:{free_port()}")
    assert p.returncode == 2
    assert "connection refused" in p.stdout


# -- nginx stopped or frozen (own instance, so the shared one stays up) --------------------------------


@pytest.fixture
def own_nginx(tmp_path: Path) -> Iterator[Nginx]:
    with start_nginx(tmp_path / "nginx") as ng:
        yield ng


def test_nginx_stopped_is_connection_refused(own_nginx: Nginx, check: Checks) -> None:
    ng = own_nginx
    assert check("http", ng.http_port, **SEED).state is State.UP
    assert ng.server is not None
    ng.server.stop()
    r = check("http", ng.http_port, **SEED)
    assert r.state is State.DOWN
    assert r.reason == "connection refused"
    r = check("https", ng.https_port, **tls(ng), **SEED)
    assert r.state is State.DOWN
    assert r.reason == "connection refused"
    p = cli("run", "http", f"127.0.0.1:{ng.http_port}", "request=/test.html", "receive=Still alive")
    assert p.returncode == 2
    assert p.stdout.startswith(f"HTTP CRITICAL - 127.0.0.1:{ng.http_port} weight 0: connection refused |")


def test_nginx_frozen_is_down_at_the_deadline(own_nginx: Nginx, check: Checks) -> None:
    ng = own_nginx
    ng.pause()  # the kernel still accepts connections into the backlog; nobody answers
    try:
        r, took = check.timed("http", ng.http_port, **SEED, negotiatetimeout="1")
        assert r.state is State.DOWN
        assert r.reason == "timed out after 1 s waiting for the response headers"
        assert_at_deadline(took, 1, "http")
        r, took = check.timed("https", ng.https_port, **tls(ng), **SEED, negotiatetimeout="0.5")
        assert r.reason == "timed out after 0.5 s in the TLS handshake"
        assert_at_deadline(took, 0.5, "https")
        t0 = time.monotonic()
        p = cli("run", "http", f"127.0.0.1:{ng.http_port}", "request=/test.html", "checktimeout=1")
        took = time.monotonic() - t0
        assert p.returncode == 2
        assert "timed out after 1 s waiting for the response headers" in p.stdout
        # the reason names the 1 s deadline; the wall bound (a process start on top) only has to
        # tell it from the default deadline, which an ignored checktimeout would wait for
        assert took < DEFAULT_TIMEOUT, took
    finally:
        ng.resume()
    assert check("http", ng.http_port, **SEED).state is State.UP
