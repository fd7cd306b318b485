"""Drain, undrain and maintenance through the control socket: kept across reload and restart,
shown in ``/status.json`` and ``lvscheck status``; HTTP actions only with a token; the control
socket refuses a user who is neither root nor in the control group."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import LVSCHECK, Daemon, config, wait

VIP = "10.9.0.1:80"


@pytest.fixture
def reals(tmp_path: Path) -> Iterator[list[RealNginx]]:
    rs = [RealNginx(f"op{i}", "127.0.0.1", free_port(), tmp_path) for i in range(2)]
    for r in rs:
        r.start()
    try:
        yield rs
    finally:
        for r in rs:
            r.stop()


def start(tmp_path: Path, reals: list[RealNginx], *extra: str) -> Daemon:
    cf = tmp_path / "op.cf"
    cf.write_text(config([r.port for r in reals]))
    d = Daemon(tmp_path, cf, *extra).start()
    for r in reals:
        wait(lambda r=r: d.real(r.port)["state"] == "up", 15, f"{r.name} up")
    return d


def test_drain_and_maintenance_survive_reload_and_restart(tmp_path: Path, reals: list[RealNginx]) -> None:
    a, b = reals
    d = start(tmp_path, reals)
    try:
        out = d.cli("drain", VIP, f"127.0.0.1:{a.port}")
        assert out.returncode == 0, out.stderr
        assert d.cli("drain", VIP, f"127.0.0.1:{a.port}").stdout.strip().endswith("(it already was)")
        out = d.cli("maintenance", "on", f"127.0.0.1:{b.port}")
        assert out.returncode == 0, out.stderr
        wait(lambda: d.real(a.port)["kernel_weight"] == 0, 5, "drained: weight 0")
        wait(lambda: d.real(b.port)["maintenance"], 5, "b in maintenance")
        assert d.real(a.port)["state"] == "up"  # checks go on; only the weight is 0
        assert d.real(b.port)["state"] == "down"
        kept = json.loads((d.state / "overrides.json").read_text())
        assert kept == {"drained": [[VIP, f"127.0.0.1:{a.port}"]], "maintenance": [f"127.0.0.1:{b.port}"]}
        text = d.cli("status").stdout
        assert "DRAINED" in text
        assert "MAINTENANCE" in text

        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        wait(lambda: d.status()["reloads"] == 1, 10, "reloaded")
        assert d.real(a.port)["drained"]
        assert d.real(a.port)["kernel_weight"] == 0
        assert d.real(b.port)["maintenance"]
    finally:
        d.stop()

    d = Daemon(tmp_path, d.cf).start()  # the same --state-dir
    try:
        wait(lambda: d.real(a.port)["checks"] >= 2, 10, "checks after the restart")
        assert d.real(a.port)["drained"]
        assert d.real(a.port)["kernel_weight"] == 0
        assert d.real(b.port)["maintenance"]
        assert d.real(b.port)["state"] == "down"
        assert "kept from before" in d.log.read_text()
        assert d.cli("undrain", VIP, f"127.0.0.1:{a.port}").returncode == 0
        assert d.cli("maintenance", "off", f"127.0.0.1:{b.port}").returncode == 0
        wait(lambda: d.real(a.port)["kernel_weight"] == 4, 5, "undrained")
        wait(lambda: d.real(b.port)["kernel_weight"] == 4, 5, "b back after its good checks")
        events = [json.loads(x) for x in d.events.read_text().splitlines()]
        ops = [e for e in events if e["event"] == "operator"]
        assert [e["action"] for e in ops] == ["drain", "drain", "maintenance", "undrain", "maintenance"]
        assert all(e["who"].startswith("root (uid 0") for e in ops)
    finally:
        d.stop()


def test_refusals_say_what_is_wrong(tmp_path: Path, reals: list[RealNginx]) -> None:
    d = start(tmp_path, reals)
    try:
        out = d.cli("drain", "10.9.9.9:80", f"127.0.0.1:{reals[0].port}")
        assert out.returncode == 1
        assert "no virtual '10.9.9.9:80'" in out.stderr
        assert "10.9.0.1:80" in out.stderr  # the virtuals there are
        out = d.cli("drain", VIP, "127.0.0.9:80")
        assert out.returncode == 1
        assert "no real '127.0.0.9:80' in virtual 10.9.0.1:80" in out.stderr
        out = d.cli("drain", VIP, "127.0.0.1")  # two reals on that host
        assert out.returncode == 1
        assert "say IP:PORT" in out.stderr
        out = d.cli("maintenance", "on", "127.0.0.9")
        assert out.returncode == 1
        assert not (d.state / "overrides.json").exists()  # nothing kept for a refused request
    finally:
        d.stop()
    out = d.cli("drain", VIP, "127.0.0.1:1")
    assert out.returncode == 3
    assert "no daemon answers" in out.stderr


def test_http_is_read_only_without_tokens_and_logs_who_with_them(
    tmp_path: Path, reals: list[RealNginx]
) -> None:
    secret = "s3cret-token-0123456789"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# name token\nalice {secret}\n")
    tokens.chmod(0o600)
    body = json.dumps({"action": "drain", "virtual": VIP, "real": f"127.0.0.1:{reals[0].port}"}).encode()

    def post(d: Daemon, token: str | None) -> tuple[int, str]:
        req = urllib.request.Request(d.url + "/action", data=body, method="POST")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    d = start(tmp_path, reals)
    try:
        code, text = post(d, secret)
        assert code == 403
        assert "read-only" in text
        assert not d.real(reals[0].port)["drained"]
    finally:
        d.stop()
    d = start(tmp_path, reals, "--http-tokens", str(tokens))
    try:
        assert post(d, None)[0] == 401
        assert post(d, "wrong-token-wrong-token")[0] == 401
        code, text = post(d, secret)
        assert code == 200, text
        assert json.loads(text)["changed"] is True
        wait(lambda: d.real(reals[0].port)["kernel_weight"] == 0, 5, "drained over HTTP")
    finally:
        d.stop()
    op = next(json.loads(x) for x in d.events.read_text().splitlines() if '"operator"' in x)
    assert op["who"].startswith("http:alice@127.0.0.1:")
    assert op["action"] == "drain"
    assert secret not in d.log.read_text()
    assert secret not in d.events.read_text()
    tokens.chmod(0o644)
    argv = [*LVSCHECK, "daemon", "--config", str(d.cf), "--ipvs", "none"]
    argv += ["--http-tokens", str(tokens), "--control", str(tmp_path / "x.sock")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert "readable by everyone" in out.stderr


# -- control socket permissions ------------------------------------------------------------------

OUTSIDER = "lvscheck-web-outsider"
MEMBER = "lvscheck-web-member"
GROUP = "lvscheck-web-ops"

_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES"); sys.exit(0)
s.sendall(b"status\\n")
print(s.makefile().readline()[:200])
"""


def _ensure_accounts() -> None:
    """The throw-away group and users; tolerates what an earlier run left."""
    with contextlib.suppress(KeyError):
        grp.getgrnam(GROUP)
    subprocess.run(["groupadd", "-f", "--system", GROUP], check=True)
    for user in (OUTSIDER, MEMBER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True
            )
    subprocess.run(["usermod", "-a", "-G", GROUP, MEMBER], check=True)
    subprocess.run(
        ["gpasswd", "-d", OUTSIDER, GROUP], capture_output=True
    )  # not a member, whatever was before


def _as(user: str, sock: str) -> str:
    out = subprocess.run(
        ["runuser", "-u", user, "--", "/usr/bin/python3", "-I", "-c", _CLIENT, sock],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="creates users; CI runs as root")
def test_control_socket_is_for_root_and_the_group_only(tmp_path: Path, reals: list[RealNginx]) -> None:
    _ensure_accounts()
    # a directory every user can enter (tmp_path is 0700): only the socket's own mode decides
    public = Path(tempfile.mkdtemp(prefix="lvscheck-web-ctl-"))
    public.chmod(0o755)
    try:
        d = start(tmp_path, reals)
        d.stop()
        for extra, member_ok in (((), False), (("--control-group", GROUP), True)):
            d = Daemon(tmp_path, d.cf, *extra)
            d.sock = public / "ctl.sock"
            d.start()
            try:
                mode = os.stat(d.sock).st_mode & 0o777
                assert mode == (0o660 if member_ok else 0o600)
                assert _as(OUTSIDER, str(d.sock)) == "EACCES"
                member = _as(MEMBER, str(d.sock))
                if member_ok:
                    assert member.startswith('{"pid"')
                    assert os.stat(d.sock).st_gid == grp.getgrnam(GROUP).gr_gid
                else:
                    assert member == "EACCES"
                connect = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])"
                argv = ["runuser", "-u", OUTSIDER, "--", "/usr/bin/python3", "-I", "-c", connect, str(d.sock)]
                out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                assert "PermissionError" in out.stderr
            finally:
                d.stop()
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_peer_credentials_rule() -> None:
    from lvscheck.daemon.control import peer_allowed

    me = os.getpid()
    assert peer_allowed(me, 0, 0, None)
    assert peer_allowed(me, os.geteuid(), 0, None)
    assert not peer_allowed(me, 54321, 54321, None)
    assert peer_allowed(me, 54321, 777, 777)  # primary group
    assert not peer_allowed(me, 54321, 54321, 777)
