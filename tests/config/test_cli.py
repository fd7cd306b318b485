"""``lvscheck check-config``, ``lvscheck run --config`` and ``lvscheck-ldirectord`` against real nginx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import Nginx, start_nginx
from tests.timing import assert_at_deadline

CORPUS = Path(__file__).parent / "corpus"
BIN = Path(sys.executable).parent


def lvscheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lvscheck"), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng


@pytest.fixture(scope="module")
def web_cf(nginx: Nginx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with a healthy real, a refusing one, a connect check, on/off reals and a 503."""
    closed = free_port()
    cf = tmp_path_factory.mktemp("cf") / "web.cf"
    cf.write_text(
        f"""checktimeout=3
quiescent=yes
virtual=127.0.0.1:80
\treal=127.0.0.1:{nginx.http_port} masq 5
\treal=127.0.0.1:{closed} masq 2
\trequest="test.html"
\treceive="Still alive"
virtual=127.0.0.1:81
\treal=127.0.0.1:{nginx.http_port} masq
\tchecktype=connect
virtual=127.0.0.1:82
\treal=127.0.0.2:{nginx.http_port} masq 3
\tchecktype=on
virtual=127.0.0.1:83
\treal=127.0.0.3:{nginx.http_port} masq 3
\tchecktype=off
virtual=127.0.0.1:443
\treal=127.0.0.1:{nginx.https_port} masq 4
\trequest="test.html"
\treceive="Still alive"
\t#lvscheck: cafile={nginx.cafile}
"""
    )
    return cf


# -- check-config ---------------------------------------------------------------------------


def test_check_config_valid_prints_a_summary() -> None:
    proc = lvscheck("check-config", str(CORPUS / "reals.cf"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"lvscheck: the configuration file {CORPUS / 'reals.cf'} syntax is ok"
    assert "192.0.2.1:80" in lines[1]
    assert "service=http checktype=negotiate reals=14" in lines[1]
    assert lines[-2] == "lvscheck: 2 virtual services, 16 real servers; checks: http 16; 0 warnings"
    assert lines[-1] == f"lvscheck: configuration file {CORPUS / 'reals.cf'} test is successful"


def test_check_config_lists_every_error_and_exits_1() -> None:
    path = CORPUS / "err-values.cf"
    proc = lvscheck("check-config", str(path))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lvscheck: [error] ")]
    expected = json.loads((CORPUS / "err-values.expected.json").read_text())["errors"]
    assert [e.removeprefix(f"lvscheck: [error] {CORPUS}/") for e in errors] == expected
    assert proc.stderr.splitlines()[-1] == f"lvscheck: configuration file {path} test failed (14 errors)"


def test_check_config_warnings_and_json() -> None:
    proc = lvscheck("check-config", "--json", str(CORPUS / "services.cf"))
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["ok"] is True
    assert len(data["virtuals"]) == 19
    assert data["checks"]["mysql"] == 1
    # lvscheck's oracle check is a listener ping: ldirectord's SQL login directives are reported unused
    assert any(
        w.endswith(
            "login: not used: lvscheck's oracle check pings the TNS listener, it does not log in with SQL"
        )
        for w in data["warnings"]
    )


def test_check_config_validates_check_options(tmp_path: Path) -> None:
    cf = tmp_path / "bad-option.cf"
    cf.write_text(
        "virtual=127.0.0.1:80\n\treal=127.0.0.1:80 gate\n\t#lvscheck: status=abc\n\thttpmethod=HEAD\n"
        '\treceive="x"\n'
    )
    proc = lvscheck("check-config", str(cf))
    assert proc.returncode == 1
    assert (
        f"lvscheck: [error] {cf}:3: #lvscheck status: 127.0.0.1:80: check type 'http': option " in proc.stderr
    )
    proc = lvscheck("check-config", "--syntax-only", str(cf))
    assert proc.returncode == 0


def test_check_config_missing_file(tmp_path: Path) -> None:
    proc = lvscheck("check-config", str(tmp_path / "nope.cf"))
    assert proc.returncode == 1
    assert "cannot read: No such file or directory" in proc.stderr


# -- run --config ---------------------------------------------------------------------------


def test_run_config_table(web_cf: Path, nginx: Nginx) -> None:
    proc = lvscheck("run", "--config", str(web_cf))
    assert proc.returncode == 2, proc.stderr  # one real is down
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["VIRTUAL", "REAL", "CHECK", "STATE", "WEIGHT", "LATENCY", "REASON"]
    rows = [line.split(None, 5) for line in lines[1:]]
    assert [r[:5] for r in rows] == [
        ["127.0.0.1:80", f"127.0.0.1:{nginx.http_port}", "http", "up", "5"],
        ["127.0.0.1:80", rows[1][1], "http", "down", "0"],
        ["127.0.0.1:81", f"127.0.0.1:{nginx.http_port}", "connect", "up", "1"],
        ["127.0.0.1:82", f"127.0.0.2:{nginx.http_port}", "-", "up", "3"],
        ["127.0.0.1:83", f"127.0.0.3:{nginx.http_port}", "-", "down", "0"],
        ["127.0.0.1:443", f"127.0.0.1:{nginx.https_port}", "https", "up", "4"],
    ]
    assert "connection refused" in lines[2]
    assert "not checked (checktype=on): ldirectord counts it up" in lines[4]


def test_run_config_json(web_cf: Path, nginx: Nginx) -> None:
    proc = lvscheck("run", "--config", str(web_cf), "--json")
    assert proc.returncode == 2
    rows = json.loads(proc.stdout)
    assert [(r["virtual"], r["check"], r["state"], r["weight"]) for r in rows] == [
        ("127.0.0.1:80", "http", "up", 5),
        ("127.0.0.1:80", "http", "down", 0),
        ("127.0.0.1:81", "connect", "up", 1),
        ("127.0.0.1:82", "-", "up", 3),
        ("127.0.0.1:83", "-", "down", 0),
        ("127.0.0.1:443", "https", "up", 4),
    ]
    assert rows[0]["reason"].startswith("HTTP 200 OK")
    assert rows[0]["latency_ms"] > 0
    assert rows[3]["latency_ms"] is None
    assert "checked " not in proc.stderr  # no progress line when stderr is not a terminal


def test_run_config_all_up_exits_0(nginx: Nginx, tmp_path: Path) -> None:
    cf = tmp_path / "up.cf"
    cf.write_text(f'virtual=127.0.0.1:80\n\treal=127.0.0.1:{nginx.http_port} masq\n\trequest="test.html"\n')
    proc = lvscheck("run", "--config", str(cf))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_config_bad_config_exits_3(tmp_path: Path) -> None:
    proc = lvscheck("run", "--config", str(CORPUS / "err-reals.cf"))
    assert proc.returncode == 3
    assert proc.stderr.count("lvscheck: [error] ") == 4
    assert proc.stdout == ""


def test_run_config_honours_maintenancedir_and_shows_skipped_rows(nginx: Nginx, tmp_path: Path) -> None:
    """As the daemon: a real in maintenancedir is down and not checked; a real lvscheck cannot
    check (external-perl) and a duplicate real are skipped, their weight shown as '-'."""
    mdir = tmp_path / "maint"
    mdir.mkdir()
    (mdir / f"127.0.0.2:{nginx.http_port}").touch()
    cf = tmp_path / "maint.cf"
    cf.write_text(
        f"maintenancedir={mdir}\n"
        f"virtual=127.0.0.1:80\n\treal=127.0.0.1:{nginx.http_port} masq 5\n"
        f"\treal=127.0.0.2:{nginx.http_port} masq 5\n\treal=127.0.0.1:{nginx.http_port} masq 5\n"
        '\trequest="test.html"\n\treceive="Still alive"\n'
        f"virtual=127.0.0.1:81\n\treal=127.0.0.1:{nginx.http_port} masq\n"
        '\tchecktype=external-perl\n\tcheckcommand="/x.pl"\n'
    )
    proc = lvscheck("run", "--config", str(cf))
    assert proc.returncode == 2, proc.stderr  # the real in maintenance is down
    rows = [line.split(None, 5) for line in proc.stdout.splitlines()[1:]]
    assert [r[2:5] for r in rows] == [
        ["http", "up", "5"],
        ["-", "down", "0"],
        ["-", "skipped", "-"],
        ["-", "skipped", "-"],
    ]
    assert "in maintenance (127.0.0.2:" in rows[1][5]
    assert "duplicate" in rows[2][5]
    assert "external-perl" in rows[3][5]
    assert "None" not in proc.stdout


def test_run_config_checks_via_vip_reals_on_their_own_address(nginx: Nginx, tmp_path: Path) -> None:
    """Without the daemon's private services a marked probe to the VIP could reach any real: a
    one-shot round checks a via=vip real on its RIP (and never sends to the VIP)."""
    cf = tmp_path / "via.cf"
    cf.write_text(
        "#lvscheck: via=vip\n"
        f'virtual=10.9.9.9:80\n\treal=127.0.0.1:{nginx.http_port} gate 3\n\trequest="test.html"\n'
        '\treceive="Still alive"\n'
    )
    proc = lvscheck("run", "--config", str(cf), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["state"], row["weight"]) == ("up", 3)


def test_run_config_progress_on_a_terminal(web_cf: Path) -> None:
    """With stderr on a pseudo-terminal a progress line is drawn and erased."""
    import pty

    main, sub = pty.openpty()
    proc = subprocess.run(
        [str(BIN / "lvscheck"), "run", "--config", str(web_cf)],
        stdout=subprocess.PIPE,
        stderr=sub,
        timeout=60,
        check=False,
    )
    os.close(sub)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO once everything is read
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.returncode == 2
    assert b"\rlvscheck: checked 4/4, 1 down" in seen
    assert seen.endswith(b"\r\x1b[K")


# -- lvscheck-ldirectord ----------------------------------------------------------------------


def _adapter_env(cf: Path, rundir: Path, server: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LVSCHECK_LDIRECTORD_CONFIG=str(cf),
        LVSCHECK_LDIRECTORD_RUNDIR=str(rundir),
        LVSCHECK_LDIRECTORD_SERVER="1" if server else "0",
        LVSCHECK_LDIRECTORD_IDLE="20",
    )
    return env


def adapter(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lvscheck-ldirectord"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def _stop_server(rundir: Path) -> None:
    pidfile = rundir / "server.pid"
    for _ in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    else:
        return
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_adapter_up_down_and_silence(web_cf: Path, nginx: Nginx, tmp_path: Path, server: bool) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    env = _adapter_env(web_cf, rundir, server)
    try:
        for _ in range(3 if server else 1):  # the first call starts the server, the next ones use it
            ok = adapter(["127.0.0.1", "80", "127.0.0.1", str(nginx.http_port)], env)
            assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
        bad_port = web_cf.read_text().split("real=127.0.0.1:")[2].split()[0]
        down = adapter(["127.0.0.1", "80", "127.0.0.1", bad_port], env)
        assert down.returncode == 1
        assert down.stdout == ""
        assert down.stderr == (
            f"lvscheck-ldirectord: 127.0.0.1:80 real 127.0.0.1:{bad_port}: http down: connection refused\n"
        )
        tls = adapter(["127.0.0.1", "443", "127.0.0.1", str(nginx.https_port)], env)
        assert (tls.returncode, tls.stderr) == (0, "")
        # checktype=on in the config does not matter: the service decides (negotiate semantics)
        unknown = adapter(["127.0.0.1", "99", "127.0.0.1", "1"], env)
        assert unknown.returncode == 1
        assert unknown.stderr == f"lvscheck-ldirectord: {web_cf}: no virtual service 127.0.0.1:99 in it\n"
        if server:
            assert (rundir / "server.sock").exists()
    finally:
        _stop_server(rundir)


def test_adapter_answers_before_checktimeout(tmp_path: Path) -> None:
    """A real that accepts and never answers: down, answered before ldirectord's SIGTERM.

    The test does what ldirectord does (``system_timeout``): it starts the command and sends
    SIGTERM at ``checktimeout``.  The command must have exited by itself, down with the check's
    own reason, before that; and not much earlier: it used its budget (checktimeout minus the
    margin, counted from its fork).  No upper wall-clock bound beyond ldirectord's own: a busy
    machine only moves the exit closer to the SIGTERM, which is the property under test.
    """
    import socket

    from lvscheck.adapters.ldirectord import budget

    checktimeout = 2.0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        cf = tmp_path / "stall.cf"
        cf.write_text(
            f"virtual=127.0.0.1:80\n\treal=127.0.0.1:{port} gate\n\tchecktimeout={checktimeout:g}\n"
        )
        env = _adapter_env(cf, tmp_path, server=False)
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(BIN / "lvscheck-ldirectord"), "127.0.0.1", "80", "127.0.0.1", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            proc.wait(checktimeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # ldirectord's SIGTERM: too late
        stdout, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - started
    assert proc.returncode == 1, f"not answered within checktimeout={checktimeout:g} s ({took:.2f} s)"
    assert "timed out" in stderr, stderr
    assert stdout == ""
    assert took > budget(checktimeout) - 0.3, took  # it waited for the real, not gave up early


def test_adapter_deadline_counts_from_the_fork() -> None:
    """The budget starts when ldirectord forked the command, not when its Python got to main()."""
    before = time.time()
    # asked 0.5 s into the child's life: "now" would be at least 0.5 s late
    code = "import time, lvscheck_ldirectord as c; t = time.time(); time.sleep(0.5); "
    code += "print(t, c.process_started())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    in_child, started = map(float, out.stdout.split())
    assert before - 0.05 <= started < in_child + 0.2, (before, started, in_child)  # /proc: 10 ms ticks


def test_adapter_usage() -> None:
    proc = adapter(["127.0.0.1", "80"], dict(os.environ))
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: lvscheck-ldirectord VIP VPORT RIP RPORT")


def test_adapter_finds_the_config_of_its_parent(nginx: Nginx, tmp_path: Path) -> None:
    """A fake ldirectord (a script named ldirectord) starts the check: its argv names the config."""
    cf = tmp_path / "mine.cf"
    cf.write_text(f'virtual=10.9.9.9:80\n\treal=127.0.0.1:{nginx.http_port} gate\n\trequest="test.html"\n')
    decoy = tmp_path / "decoy.cf"
    decoy.write_text("virtual=10.1.1.1:80\n\treal=127.0.0.1:1 gate\n")
    fake = tmp_path / "ldirectord"
    fake.write_text(
        f'#!/bin/sh\n"{BIN}/lvscheck-ldirectord" 10.9.9.9 80 127.0.0.1 {nginx.http_port}\nexit $?\n'
    )
    fake.chmod(0o755)
    env = _adapter_env(decoy, tmp_path, server=False)  # the env var is only the fallback
    proc = subprocess.run(
        [str(fake), "-d", "mine.cf", "start"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_parse_ldirectord_argv() -> None:
    from lvscheck_ldirectord import parse_ldirectord_argv

    assert (
        parse_ldirectord_argv(["/usr/bin/perl", "-w", "/usr/sbin/ldirectord", "-d", "x.cf", "start"])
        == "x.cf"
    )
    assert parse_ldirectord_argv(["/usr/bin/perl", "-w", "/usr/sbin/ldirectord", "start"]) == "ldirectord.cf"
    assert parse_ldirectord_argv(["ldirectord tcp:10.0.0.1:80"]) is None  # a fork=yes child
    assert parse_ldirectord_argv(["/usr/bin/perl", "/usr/sbin/ldirectord"]) is None
    assert parse_ldirectord_argv(["/bin/bash", "run.sh"]) is None


# -- the external check type -----------------------------------------------------------------


def test_external_check_arguments_and_deadline(tmp_path: Path) -> None:
    import lvscheck

    script = tmp_path / "check.sh"
    script.write_text('#!/bin/sh\necho "got $*" >&2\n[ "$3" = "127.0.0.1" ] && exit 0\nsleep 30\n')
    script.chmod(0o755)
    spec = lvscheck.CheckSpec
    target = lvscheck.Target
    up, slow, v6 = lvscheck.run_checks(
        [
            spec(
                "external", target("127.0.0.1", 80), {"checkcommand": str(script), "vip": "5", "vport": "0"}
            ),
            spec("external", target("127.0.0.2", None), {"checkcommand": str(script), "checktimeout": "0.5"}),
            spec("external", target("::1", 8080), {"checkcommand": str(script), "checktimeout": "0.5"}),
        ]
    )
    assert (up.state, up.reason) == (lvscheck.State.UP, "check.sh exited 0")
    assert slow.state is lvscheck.State.DOWN
    assert slow.reason.startswith("timed out after 0.5 s")
    assert_at_deadline(slow.latency, 0.5)
    assert v6.state is lvscheck.State.DOWN


def test_adapter_finds_ipv6_and_fwmark_virtuals() -> None:
    """ldirectord passes IPv6 addresses in brackets, and the mark and 0 for fwmark services."""
    from lvscheck.adapters.ldirectord import spec_for
    from lvscheck.config import parse_text

    config = parse_text(
        "checktimeout=4\n"
        "virtual6=[2001:db8:0::1]:80\n\treal6=[2001:db8::2]:8080 masq 3\n\tservice=http\n"
        '\trequest="/v6"\n'
        "virtual=7\n\treal=10.0.0.2 gate 2\n\tservice=http\n\tchecktype=external\n"
        "\tcheckcommand=/usr/bin/lvscheck-ldirectord\n",
        "x.cf",
    )
    spec, label = spec_for(config, ["[2001:db8::1]", "80", "[2001:db8::2]", "8080"])
    assert spec is not None
    assert (spec.check, spec.target.host, spec.target.port, spec.target.weight) == (
        "http",
        "2001:db8::2",
        8080,
        3,
    )
    assert dict(spec.options) == {
        "checktimeout": "3.6",
        "negotiatetimeout": "3.6",
        "request": "/v6",
        "redirects": "7",  # ldirectord's semantics (config/as_ldirectord.py)
        "maxbody": "1m",
    }
    assert label == "[2001:db8::1]:80 real [2001:db8::2]:8080"
    spec, label = spec_for(config, ["7", "0", "10.0.0.2", "0"])
    assert spec is not None
    assert (spec.check, spec.target.host, spec.target.port) == ("http", "10.0.0.2", None)
    assert spec.options["checkport"] == "80"  # service http's port: the real has none
    assert label == "fwmark 7 real 10.0.0.2:0"
    # a real that is not (or no longer) in the config gets the virtual's check
    spec, _ = spec_for(config, ["7", "0", "10.0.0.9", "0"])
    assert spec is not None
    assert spec.target.host == "10.0.0.9"


def _servers(rundir: Path) -> list[int]:
    pattern = f"adapters.ldirectord --serve {rundir}"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_check_server_one_at_a_time_reload_and_idle_exit(nginx: Nginx, tmp_path: Path) -> None:
    """Concurrent first calls start one server; it sees config edits; it leaves when idle."""
    cf = tmp_path / "srv.cf"
    # a generous checktimeout: six clients start at once, on a machine that may be busy
    head = "checktimeout=20\n"
    cf.write_text(
        f'{head}virtual=10.8.8.8:80\n\treal=127.0.0.1:{nginx.http_port} gate\n\trequest="test.html"\n'
    )
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    env = _adapter_env(cf, rundir, server=True)
    # idle counts from the server's start; six clients starting on a busy machine can take seconds
    env["LVSCHECK_LDIRECTORD_IDLE"] = "10"
    argv = [str(BIN / "lvscheck-ldirectord"), "10.8.8.8", "80", "127.0.0.1", str(nginx.http_port)]
    try:
        procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE) for _ in range(6)]
        assert [p.wait(30) for p in procs] == [0] * 6
        for p in procs:
            assert p.stderr is not None
            assert p.stderr.read() == b""
            p.stderr.close()
        until = time.monotonic() + 30  # the server's interpreter starts beside six clients
        while not (rundir / "server.sock").exists() and time.monotonic() < until:
            time.sleep(0.05)
        # a server that lost the race for the lock exits at once; on a busy machine "at once" is
        # after its interpreter started, so wait for that rather than a fixed time
        until = time.monotonic() + 20
        while len(_servers(rundir)) > 1 and time.monotonic() < until:
            time.sleep(0.1)
        assert len(_servers(rundir)) == 1
        # the server re-reads the file when it changes
        cf.write_text(
            f'{head}virtual=10.8.8.8:80\n\treal=127.0.0.1:{nginx.http_port} gate\n\trequest="down"\n'
        )
        down = adapter(argv[1:], env)
        assert down.returncode == 1
        assert "http down: HTTP 503" in down.stderr
        # idle for more than LVSCHECK_LDIRECTORD_IDLE: it exits and removes its socket
        for _ in range(600):
            if not _servers(rundir):
                break
            time.sleep(0.05)
        assert _servers(rundir) == []
        assert not (rundir / "server.sock").exists()
    finally:
        _stop_server(rundir)


def test_check_server_retires_for_a_client_of_another_version(nginx: Nginx, tmp_path: Path) -> None:
    import socket

    cf = tmp_path / "v.cf"
    cf.write_text(f'virtual=10.8.8.9:80\n\treal=127.0.0.1:{nginx.http_port} gate\n\trequest="test.html"\n')
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    env = _adapter_env(cf, rundir, server=True)
    try:
        assert adapter(["10.8.8.9", "80", "127.0.0.1", str(nginx.http_port)], env).returncode == 0
        for _ in range(200):
            if (rundir / "server.sock").exists():
                break
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(rundir / "server.sock"))
            s.sendall(b"lvscheck-ldirectord/0\tx\n")
            assert s.recv(100) == b"E\tprotocol mismatch\n"
        for _ in range(200):
            if not _servers(rundir):
                break
            time.sleep(0.05)
        assert _servers(rundir) == []
        assert not (rundir / "server.sock").exists()
    finally:
        _stop_server(rundir)
