"""The ftp check against a real Debian vsftpd (tests/peers/vsftpd.py) and hostile servers.

vsftpd answers a wrong password after PAM's fail delay (about 3 s): with the
default 5 s deadline the verdict must still be "login failed", and with a
shorter one the timeout must say that the server was deciding about PASS.
Hostile behaviour (garbage, endless lines, a broken PASV) comes from hand-written
servers (tests/peers/hostile.py), since vsftpd does not misbehave on demand.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, serve, stall
from tests.peers.vsftpd import FILE_BODY, FILE_NAME, PASSWORD, USER, Vsftpd, start_vsftpd
from tests.runcheck import Checks
from tests.timing import assert_at_deadline, assert_by_deadline

import lvscheck
from lvscheck import CheckSpec, OptionError, State, Target

pytestmark = pytest.mark.peer

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")


@pytest.fixture(scope="module")
def ftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vsftpd]:
    with start_vsftpd(tmp_path_factory.mktemp("vsftpd")) as server:
        yield server


# -- the real server --------------------------------------------------------------------------------


def test_anonymous_login_is_up(ftp: Vsftpd, check: Checks) -> None:
    r = check("ftp", ftp.port)
    assert r.state is State.UP
    assert r.reason == "logged in as anonymous"
    assert r.latency < 1


def test_retr_and_receive(ftp: Vsftpd, check: Checks) -> None:
    r = check("ftp", ftp.port, request=FILE_NAME, receive="Still alive")
    assert r.state is State.UP
    assert r.reason == f"logged in as anonymous, 'Still alive' found in {FILE_NAME}"
    assert r.details["bytes"] == len(FILE_BODY)


def test_receive_not_in_file_is_down(ftp: Vsftpd, check: Checks) -> None:
    r = check("ftp", ftp.port, request=FILE_NAME, receive="Gone away")
    assert r.state is State.DOWN
    assert (
        r.reason
        == f"logged in as anonymous, but 'Gone away' not found in {FILE_NAME} ({len(FILE_BODY)} bytes)"
    )


def test_missing_file_is_down(ftp: Vsftpd, check: Checks) -> None:
    r = check("ftp", ftp.port, request="no-such-file")
    assert r.state is State.DOWN
    assert r.reason == "RETR no-such-file failed: 550 Failed to open file."


def test_large_file_read_is_bounded(ftp: Vsftpd, check: Checks) -> None:
    # the marker sits after 200 KiB: only maxsize (64 KiB by default) is read
    r = check("ftp", ftp.port, request="large.bin", receive="MARKER-AT-THE-END")
    assert r.state is State.DOWN
    assert r.reason.endswith("not found in the first 64 KiB of large.bin")
    assert r.details["bytes"] == 64 * 1024
    assert (
        check("ftp", ftp.port, request="large.bin", receive="MARKER-AT-THE-END", maxsize="1m").state
        is State.UP
    )


def test_local_user_login(ftp: Vsftpd, check: Checks) -> None:
    r = check("ftp", ftp.port, login=USER, passwd=PASSWORD, request=FILE_NAME)
    assert r.state is State.UP
    assert r.reason == f"logged in as {USER}, fetched {FILE_NAME} ({len(FILE_BODY)} bytes)"


def test_local_login_after_a_run_that_left_the_user_homeless(tmp_path: Path, check: Checks) -> None:
    """An earlier run (or an older fixture) left the user with a home that no longer exists."""
    if subprocess.run(["getent", "passwd", USER], capture_output=True).returncode != 0:
        pytest.skip(f"no user {USER} yet: no earlier run to imitate")
    gone = tmp_path / "removed-home"
    subprocess.run(["usermod", "-d", str(gone), USER], check=True, capture_output=True)
    (tmp_path / "vsftpd").mkdir()
    with start_vsftpd(tmp_path / "vsftpd") as server:
        r = check("ftp", server.port, login=USER, passwd=PASSWORD, request=FILE_NAME)
    assert r.state is State.UP, r.reason


def test_password_from_a_file_or_the_environment(
    ftp: Vsftpd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: Checks
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    monkeypatch.setenv("LVS_FTP_PW", PASSWORD)
    assert check("ftp", ftp.port, login=USER, passwdfile=str(tmp_path / "pw")).state is State.UP
    assert check("ftp", ftp.port, login=USER, passwdenv="LVS_FTP_PW").state is State.UP
    with pytest.raises(OptionError, match="give only one of passwd, passwdenv"):
        check("ftp", ftp.port, login=USER, passwd="x", passwdenv="LVS_FTP_PW")


def test_wrong_password_says_login_failed_despite_the_servers_delay(ftp: Vsftpd, check: Checks) -> None:
    r, took = check.timed("ftp", ftp.port, login=USER, passwd="wrong-password")
    assert r.state is State.DOWN
    assert r.reason == "login failed: 530 Login incorrect."
    assert 2.0 < took < 5.0  # PAM's delay, inside the default 5 s deadline
    assert "wrong-password" not in r.reason


def test_wrong_password_with_a_short_deadline_names_the_pass_step(ftp: Vsftpd, check: Checks) -> None:
    r, took = check.timed("ftp", ftp.port, login=USER, passwd="wrong-password", negotiatetimeout="1")
    assert r.state is State.DOWN
    assert r.reason.startswith("timed out after 1 s waiting for the reply to PASS")
    assert_at_deadline(took, 1)


def test_non_anonymous_login_needs_a_password(check: Checks) -> None:
    with pytest.raises(OptionError, match="login='someone' needs passwd"):
        check("ftp", 21, login="someone")
    with pytest.raises(OptionError, match="receive= is searched in the file request= names"):
        check("ftp", 21, receive="x")


# -- refused, stalled, hostile -----------------------------------------------------------------------


def test_refused(check: Checks) -> None:
    r = check("ftp", free_port())
    assert r.state is State.DOWN
    assert r.reason == "connection refused"


def test_stalled_real_server_is_down_at_the_deadline(ftp: Vsftpd, check: Checks) -> None:
    with paused(ftp.server.pid):
        r, took = check.timed("ftp", ftp.port, negotiatetimeout="1")
    assert r.state is State.DOWN
    assert r.reason == "timed out after 1 s waiting for the banner"
    assert_at_deadline(took, 1)


def test_accept_and_stall(check: Checks) -> None:
    with serve(stall) as port:
        r, took = check.timed("ftp", port, negotiatetimeout="0.5")
    assert r.reason == "timed out after 0.5 s waiting for the banner"
    assert_by_deadline(took, 0.5)


HOSTILE: list[tuple[str, Any, dict[str, str], str]] = [
    (
        "garbage",
        script(b"SSH-2.0-OpenSSH_9.2\r\n"),
        {},
        "not an FTP reply waiting for the banner: 'SSH-2.0-OpenSSH_9.2'",
    ),
    ("421", script(b"421 Too many users\r\n"), {}, "FTP banner is not 220: 421 Too many users"),
    (
        "truncated",
        script(b"220-welcome\r\n220-still welc", then="close"),
        {},
        "connection closed by the server in the middle of a line waiting for the banner: '220-still welc'",
    ),
    (
        "closed",
        script(b"220 hi\r\n", then="close"),
        {},
        "connection closed by the server waiting for the reply to USER",
    ),
    ("endless-line", endless_line(b"220 "), {}, "reply line longer than 8192 bytes waiting for the banner"),
    (
        "endless-reply",
        endless_lines(b"220-more\r\n"),
        {},
        "FTP reply longer than 256 lines waiting for the banner",
    ),
    (
        "bad-pasv",
        script(b"220 hi\r\n", b"331 pw\r\n", b"230 in\r\n", b"200 ok\r\n", b"227 no numbers\r\n"),
        {"request": "f"},
        "unexpected reply to PASV: '227 no numbers'",
    ),
    (
        "pasv-port",
        script(b"220 hi\r\n", b"331 pw\r\n", b"230 in\r\n", b"200 ok\r\n", b"227 (127,0,0,1,999,1)\r\n"),
        {"request": "f"},
        "PASV reply names no valid port: '227 (127,0,0,1,999,1)'",
    ),
    (
        "binary-quit",
        script(b"220 hi\r\n", b"331 pw\r\n", b"230 in\r\n", b"\x00\xff junk\r\n"),
        {},
        "not an FTP reply waiting for the reply to QUIT: '\\x00\ufffd junk'",
    ),
]


@pytest.mark.parametrize(
    ("handler", "options", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_servers(handler: Any, options: dict[str, str], reason: str, check: Checks) -> None:
    with serve(handler) as port:
        r, took = check.timed("ftp", port, negotiatetimeout="2", **options)
    assert r.state is State.DOWN
    assert r.reason == reason
    assert_by_deadline(took, 2)


def test_ipv6_real_uses_epsv_and_its_own_address() -> None:
    # a hand-written control connection on ::1 whose EPSV names the port of a data server
    # that sends the file: proves EPSV (not PASV) is sent for an IPv6 real, and the data
    # connection goes to the real's address
    seen: list[bytes] = []

    async def data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"v6 file: Still alive\n")
        writer.write_eof()  # a FIN, then wait for the client: no RST that could eat the data
        await reader.read()

    with serve(data, host="::1") as data_port:

        async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 v6 ftp\r\n")
            replies = {
                b"USER": b"331 pw\r\n",
                b"PASS": b"230 in\r\n",
                b"TYPE": b"200 binary\r\n",
                b"EPSV": f"229 Entering Extended Passive Mode (|||{data_port}|)\r\n".encode(),
                b"PASV": b"500 not for IPv6\r\n",
                b"RETR": b"150 here it comes\r\n",
                b"QUIT": b"221 bye\r\n",
            }
            while line := await reader.readline():
                verb = line.split()[0]
                seen.append(verb)
                writer.write(replies.get(verb, b"500 ?\r\n"))
                if verb == b"RETR":
                    await asyncio.sleep(0.05)
                    writer.write(b"226 done\r\n")

        with serve(control, host="::1") as port:
            [r] = lvscheck.run_checks(
                [CheckSpec("ftp", Target("::1", port), {"request": "f", "receive": "Still alive"})]
            )
    assert r.state is State.UP, r.reason
    assert b"EPSV" in seen
    assert b"PASV" not in seen


def test_no_socket_leak(ftp: Vsftpd, check: Checks) -> None:
    check("ftp", ftp.port)  # warm up: imports, the event loop's own descriptors
    before = open_fds()
    for _ in range(3):
        check("ftp", ftp.port, request=FILE_NAME, receive="Still alive")
        check("ftp", ftp.port, request="large.bin")
        check("ftp", free_port())
        for _, handler, options, _ in HOSTILE:
            with serve(handler) as port:
                check("ftp", port, negotiatetimeout="1", **options)
    with paused(ftp.server.pid):
        check("ftp", ftp.port, negotiatetimeout="0.3")
    assert open_fds() <= before


# -- the command line, as ldirectord would start it -----------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LVSCHECK, *args], capture_output=True, text=True, timeout=20)


def test_cli_up_and_json(ftp: Vsftpd) -> None:
    p = cli("run", "ftp", f"127.0.0.1:{ftp.port}", f"request={FILE_NAME}", "receive=Still alive")
    assert p.returncode == 0, p
    assert "logged in as anonymous" in p.stdout
    p = cli("run", "--json", "ftp", f"127.0.0.1:{ftp.port}", f"login={USER}", f"passwd={PASSWORD}")
    assert p.returncode == 0, p
    [doc] = json.loads(p.stdout) if p.stdout.lstrip().startswith("[") else [json.loads(p.stdout)]
    assert doc["state"] == "up"
    assert doc["reason"] == f"logged in as {USER}"
    assert PASSWORD not in p.stdout


def test_cli_wrong_password_exit_2_and_no_secret(ftp: Vsftpd) -> None:
    p = cli("run", "ftp", f"127.0.0.1:{ftp.port}", f"login={USER}", "passwd=Secret-Wrong-1")
    assert p.returncode == 2, p
    assert "login failed: 530 Login incorrect." in p.stdout
    assert "Secret-Wrong-1" not in p.stdout + p.stderr


def test_cli_usage_error_exit_3() -> None:
    p = cli("run", "ftp", "127.0.0.1:21", "login=someone")
    assert p.returncode == 3, p
    assert "needs passwd" in p.stderr
