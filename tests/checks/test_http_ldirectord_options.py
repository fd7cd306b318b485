"""The http/https options that give ldirectord's semantics, against a real Debian nginx.

``redirects=N`` (LWP follows 301/302/303/307/308, at most 7, but lvscheck never leaves
the real), ``maxbody=`` (ldirectord reads the whole body) and ``tlsverify=chain``
(LWP's ``verify_hostname => 0``: the chain is verified, the name is not).  Their
defaults from a shell stay lvscheck's own (no redirects, 64 KiB, full verification);
tests/config/test_ldirectord_semantics.py shows the ldirectord.cf road sets
ldirectord's values.
"""

from __future__ import annotations

import pytest
from tests.peers.nginx import LARGE_MARKER, Nginx
from tests.runcheck import Checks

from lvscheck import OptionError, State
from lvscheck.checks._redirect import Hop, next_hop

pytestmark = pytest.mark.peer


def test_redirect_followed_on_the_real(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/redirect", receive="Still alive", redirects="7")
    assert r.state is State.UP, r.reason
    assert r.reason == (
        f"HTTP 200 OK, 'Still alive' found (after 1 redirect, at http://127.0.0.1:{nginx.http_port}/test.html)"
    )
    # the shell default stays lvscheck's: not followed
    assert check("http", nginx.http_port, request="/redirect", receive="Still alive").state is State.DOWN


def test_redirect_to_another_host_is_not_followed(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/redirect-away", redirects="7")
    assert r.state is State.DOWN
    assert r.reason == (
        "HTTP 302 redirect to http://other.example.test/test.html not followed: "
        "another host (other.example.test): lvscheck does not leave the real server"
    )


def test_redirect_to_the_virtualhost_goes_to_the_real(nginx: Nginx, check: Checks) -> None:
    r = check(
        "http",
        nginx.http_port,
        request="/redirect-vhost",
        virtualhost="www.example.test",
        receive="vhost=www host=www.example.test",
        redirects="1",
    )
    assert r.state is State.UP, r.reason
    assert r.reason.endswith(f"(after 1 redirect, at http://www.example.test:{nginx.http_port}/whoami)")


def test_redirect_limit_is_lwps(nginx: Nginx, check: Checks) -> None:
    r = check("http", nginx.http_port, request="/redirect-loop", redirects="7")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 307 after 7 redirects (the limit: redirects=7)")
    with pytest.raises(OptionError, match="redirects"):
        check("http", nginx.http_port, redirects="21")


def test_maxbody_reads_past_64k(nginx: Nginx, check: Checks) -> None:
    assert check("http", nginx.http_port, request="/large.html", receive=LARGE_MARKER).state is State.DOWN
    r = check("http", nginx.http_port, request="/large.html", receive=LARGE_MARKER, maxbody="1m")
    assert r.state is State.UP, r.reason


def test_tlsverify_chain_accepts_a_name_that_does_not_match(nginx: Nginx, check: Checks) -> None:
    ca = str(nginx.cafile)
    r = check("https", nginx.wrongname_port, request="/test.html", cafile=ca)
    assert r.state is State.DOWN
    assert "certificate" in r.reason
    r = check("https", nginx.wrongname_port, request="/test.html", cafile=ca, tlsverify="chain")
    assert r.state is State.UP, r.reason
    # chain still verifies the chain: another CA fails
    r = check("https", nginx.wrongname_port, cafile=str(nginx.other_ca), tlsverify="chain")
    assert r.state is State.DOWN
    assert "unable to get local issuer certificate" in r.reason
    with pytest.raises(OptionError, match="expected full, chain or no"):
        check("https", nginx.wrongname_port, tlsverify="maybe")


def test_next_hop_rules() -> None:
    names = frozenset({"10.0.0.2", "www.example.test"})
    hop = next_hop("/a?b=1#frag", "http://10.0.0.2:8080/x", names)
    assert hop == Hop(False, "10.0.0.2", 8080, "10.0.0.2:8080", "/a?b=1", "http://10.0.0.2:8080/a?b=1")
    hop = next_hop("https://www.example.test/s", "http://10.0.0.2/", names)
    assert isinstance(hop, Hop)
    assert hop.tls
    assert hop.port == 443
    assert hop.host_header == "www.example.test"
    assert next_hop("ftp://10.0.0.2/", "http://10.0.0.2/", names) == "a ftp URL, not http or https"
    assert "another host (10.0.0.3)" in str(next_hop("http://10.0.0.3/", "http://10.0.0.2/", names))
    assert next_hop("http://10.0.0.2:99999/", "http://10.0.0.2/", names) == "not a valid URL"
