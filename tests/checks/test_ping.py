"""The ping check: ICMP echo to 127.0.0.1 / ::1 on the host, and inside private network namespaces.

Everything that is not a plain loopback echo runs in a fresh network namespace
(``unshare --net``, root only), so no packet ever leaves this machine: a silent
address (a route into ``lo`` for a non-local /24, and 127.0.0.1 with
``icmp_echo_ignore_all``), unreachable / blackhole / prohibit routes, the
unprivileged datagram socket (``ping_group_range`` is per namespace), and a user
who may open neither kind of ICMP socket.  The real peer is the Linux kernel's
own ICMP echo responder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.peers.hostile import open_fds
from tests.runcheck import Checks

import lvscheck
from lvscheck import CheckSpec, State, Target
from lvscheck.checks.ping import PingCheck, checksum
from lvscheck.errors import CheckFailed, OptionError

ROOT = os.geteuid() == 0


def in_netns(setup: str, *args: str, user: str | None = None) -> tuple[int, dict[str, object]]:
    """``lvscheck run --json ping ARGS`` in a new network namespace, after the ``setup`` shell lines."""
    if not ROOT:
        pytest.skip("network namespaces need root")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare (util-linux) and ip (iproute2) are needed")
    cmd = [sys.executable, "-m", "lvscheck", "run", "--json", "ping", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    script = f"set -e; ip link set lo up; {setup}; exec {' '.join(map(_quote, cmd))}"
    out = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script], capture_output=True, text=True, timeout=30
    )
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_answers(host: str, check: Checks) -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    if not ROOT and not low <= os.getgid() <= high:
        pytest.skip("neither a raw nor an unprivileged ICMP socket is allowed here")
    r = check("ping", host=host)
    assert r.state is State.UP, r.reason
    assert r.reason.startswith("echo reply from ")
    assert "ICMP socket" in r.reason
    assert r.details["rtt_ms"] < 100


def test_unprivileged_datagram_socket_where_ping_group_range_allows() -> None:
    rc, out = in_netns("sysctl -qw net.ipv4.ping_group_range='0 2147483647'", "127.0.0.1", "icmpsocket=dgram")
    assert rc == 0, out
    assert "(dgram ICMP socket)" in str(out["reason"])
    rc, out = in_netns("sysctl -qw net.ipv4.ping_group_range='0 2147483647'", "::1", "icmpsocket=dgram")
    assert rc == 0, out


def test_auto_falls_back_to_raw_as_root() -> None:
    rc, out = in_netns("sysctl -qw net.ipv4.ping_group_range='1 0'", "127.0.0.1")
    assert rc == 0, out
    assert "(raw ICMP socket)" in str(out["reason"])


def test_no_icmp_socket_allowed_is_a_clear_director_fault() -> None:
    rc, out = in_netns("sysctl -qw net.ipv4.ping_group_range='1 0'", "127.0.0.1", user="65534")
    assert rc == 2
    assert out["reason"] == (
        "cannot open an ICMP socket: unprivileged ICMP sockets are not allowed for group 65534 "
        "(net.ipv4.ping_group_range = 1 0); a raw ICMP socket needs root or CAP_NET_RAW"
    )
    assert out["details"] == {"fault": "director"}


@pytest.mark.parametrize(
    ("setup", "host"),
    [
        ("ip route add 10.200.0.0/24 dev lo", "10.200.0.2"),  # routed into lo, not local: dropped
        ("sysctl -qw net.ipv4.icmp_echo_ignore_all=1", "127.0.0.1"),  # the kernel will not answer
    ],
    ids=["silent-address", "echo-ignored"],
)
def test_silence_is_down_at_the_deadline_after_repeated_echoes(setup: str, host: str) -> None:
    t0 = time.monotonic()
    rc, out = in_netns(setup, host, "checktimeout=1", "interval=0.3")
    assert rc == 2
    sent = r"\([34] echo requests sent\)"  # at 0, 0.3, 0.6 and (unless the machine is busy) 0.9 s
    expected = rf"timed out after 1 s waiting for an ICMP echo reply from {re.escape(host)} {sent}"
    assert re.fullmatch(expected, str(out["reason"])), out["reason"]
    assert 0.95 < float(out["latency_ms"]) / 1000 < 2  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("route", "why"),
    [
        ("unreachable", "No route to host"),
        ("blackhole", "Invalid argument (a blackhole route?)"),
        ("prohibit", "Permission denied (a prohibit route or a firewall rule?)"),
    ],
)
def test_unroutable_is_down_at_once(route: str, why: str) -> None:
    rc, out = in_netns(f"ip route add {route} 10.201.0.0/24", "10.201.0.1", "checktimeout=3")
    assert rc == 2
    assert out["reason"] == f"cannot send an ICMP echo to 10.201.0.1: {why}"
    assert float(out["latency_ms"]) < 500  # type: ignore[arg-type]


def test_icmp_unreachable_for_our_echo_is_down() -> None:
    # an ICMP host unreachable quoting our echo (as a router sends it), fed to the matcher
    payload = b"lvscheck" + os.urandom(8)
    echo = struct.pack("!BBHHH", 8, 0, 0, 77, 1) + payload
    quoted_ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(echo), 0, 0, 64, 1, 0, b"\x7f\0\0\1", b"\x0a\0\0\2"
    )
    icmp = struct.pack("!BBHI", 3, 1, 0, 0) + quoted_ip + echo[:8] + payload[:8]
    outer_ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, b"\x0a\0\0\1", b"\x7f\0\0\1"
    )
    with pytest.raises(
        CheckFailed, match=re.escape("ICMP destination unreachable from 10.0.0.2: host unreachable")
    ):
        PingCheck._match(outer_ip + icmp, True, "raw", 77, payload, {1: 0.0}, "10.0.0.2")
    # someone else's echo reply (other id) and junk are ignored, not fatal
    reply = struct.pack("!BBHHH", 0, 0, 0, 78, 1) + payload
    assert PingCheck._match(outer_ip[:20] + reply, True, "raw", 77, payload, {1: 0.0}, "x") is None
    assert PingCheck._match(b"\x45" + b"\0" * 5, True, "raw", 77, payload, {1: 0.0}, "x") is None


def test_checksum_is_rfc1071() -> None:
    packet = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"abc"
    c = checksum(packet)
    assert checksum(packet[:2] + struct.pack("!H", c) + packet[4:]) == 0


def test_bad_options(check: Checks) -> None:
    for options in ({"icmpsocket": "stream"}, {"interval": "0"}):
        with pytest.raises(OptionError):
            check("ping", **options)


def test_unresolvable_name_is_down(check: Checks) -> None:
    r = check("ping", host="no-such-host.invalid")
    assert r.state is State.DOWN
    assert "cannot resolve" in r.reason


def test_no_socket_leak() -> None:
    if not ROOT:
        pytest.skip("needs a raw ICMP socket")
    before = open_fds()
    results = lvscheck.run_checks(
        [CheckSpec("ping", Target("127.0.0.1"), {}) for _ in range(30)], per_host=30
    )
    assert all(r.state is State.UP for r in results)
    assert open_fds() <= before
    # a raw socket sees every echo reply on the host: 30 at once must each find their own
