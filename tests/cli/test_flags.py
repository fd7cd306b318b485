"""Every flag of every subcommand, given bad values: a message naming the flag, exit 3, no traceback.

The flags are read from the parser itself (:func:`lvscheck.cli.parser.build_parser`),
so a flag added later is driven too, and a flag that takes a value without a type
that checks it fails :func:`test_every_value_flag_has_a_checking_type`.  Each
command runs as a subprocess, as an operator runs it; the daemon with
``--ipvs none`` (the in-memory table) on a config of 127.0.0.1 only, its control
socket in the test's directory, and a timeout that kills it if a bad value let it
start (so nothing is left running).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.peers import free_port

from lvscheck.cli.argtypes import (
    UNIX_PATH_MAX,
    Directory,
    Executable,
    ExistingFile,
    FileToWrite,
    GroupName,
    InterfaceName,
    ListenAddress,
    LogDestination,
    NonEmpty,
    Number,
    RelayAddress,
)
from lvscheck.cli.parser import build_parser

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")
MISSING_DIR = "/nonexistent-lvscheck-dir"
USAGE = 3

CONFIG = """\
checktimeout=1
checkinterval=1
virtual=127.0.0.1:{vport}
\treal=127.0.0.1:{rport} masq 1
\tservice=http
\tchecktype=connect
"""


@dataclass(frozen=True)
class Flag:
    command: str  # "" for the top level
    name: str  # "--metrics", or the metavar/dest of a positional
    action: argparse.Action

    def __str__(self) -> str:
        return f"{self.command or 'lvscheck'} {self.name}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags() -> list[Flag]:
    parser = build_parser()
    found = [Flag("", a.option_strings[-1], a) for a in parser._actions if a.option_strings]
    for command, sub in _subparsers(parser).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = action.option_strings[-1] if action.option_strings else str(action.metavar or action.dest)
            found.append(Flag(command, name, action))
    return found


FLAGS = _flags()
VALUE_FLAGS = [f for f in FLAGS if f.action.nargs != 0 and f.action.option_strings]
POSITIONALS = [f for f in FLAGS if not f.action.option_strings]


def _bad_values(flag: Flag, tmp: Path) -> list[str]:
    """Values the flag must refuse, from what its type accepts."""
    kind = flag.action.type
    if flag.action.choices is not None:
        return ["", "bogus"]
    if isinstance(kind, Number):
        huge = "9" * 30 if kind.kind is int else "1e999"
        values = ["", "abc", "-1", str(kind.low - 1), str(kind.high * 10), huge, "nan", "inf"]
        if kind.kind is int:
            values.append("1.5")
        return [v for v in dict.fromkeys(values) if not _accepted(kind, v)]
    if isinstance(kind, FileToWrite):
        values = ["" if not kind.off else "   ", f"{MISSING_DIR}/file", str(tmp)]
        if kind.socket:
            values.append(str(tmp / ("s" * (UNIX_PATH_MAX + 1))))
        return values
    if isinstance(kind, Executable):
        plain = tmp / "not-executable"
        plain.write_text("#!/bin/sh\n")
        plain.chmod(0o644)
        return ["", f"{MISSING_DIR}/prog", "no-such-program-lvscheck", str(plain), str(tmp)]
    if isinstance(kind, ListenAddress):
        return ["", "abc", "0", "-1", "65536", "99999999999999999999", "127.0.0.1:", "bad host!:9100"]
    if isinstance(kind, Directory):
        (tmp / "a-file").write_text("")
        return ["", str(tmp / "a-file")]
    if isinstance(kind, ExistingFile):
        return ["", f"{MISSING_DIR}/file", str(tmp)]
    if isinstance(kind, GroupName):
        return ["", "no-such-group-lvscheck"]
    if isinstance(kind, LogDestination):
        return ["", "nosuchfacility", "relative/file.log", f"{MISSING_DIR}/lvscheck.log", str(tmp)]
    if isinstance(kind, RelayAddress):
        return ["", "bad host!", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:abc"]
    if isinstance(kind, InterfaceName):
        return ["", "   ", "a" * 16, "eth0/1", "two words"]
    if isinstance(kind, NonEmpty):
        return ["", "   "]
    raise AssertionError(f"{flag}: no bad values known for type {kind!r}")


def _accepted(kind: Number, text: str) -> bool:
    try:
        kind(text)
    except argparse.ArgumentTypeError:
        return False
    return True


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lvt.cf"
    path.write_text(CONFIG.format(vport=free_port(), rport=free_port()))
    return path


def _argv(flag: Flag, value: str, config: Path, tmp: Path) -> list[str]:
    """A command line valid in everything but ``flag value``."""
    base: dict[str, list[str]] = {
        "": ["checks"],
        "run": ["run", "connect", f"127.0.0.1:{free_port()}"],
        "checks": ["checks"],
        "plugins": ["plugins"],
        "demo": ["demo"],
        "check-config": ["check-config", str(config)],
        "daemon": ["daemon", "--config", str(config), "--ipvs", "none", "--control", str(tmp / "d.sock")],
        "status": ["status", "--control", str(tmp / "nobody.sock")],
        "drain": ["drain", "10.0.0.1:80", "10.0.0.2:80", "--control", str(tmp / "nobody.sock")],
        "undrain": ["undrain", "10.0.0.1:80", "10.0.0.2:80", "--control", str(tmp / "nobody.sock")],
        "maintenance": ["maintenance", "on", "10.0.0.2:80", "--control", str(tmp / "nobody.sock")],
        "sync-daemon": ["sync-daemon", "status"],
    }
    words = list(base[flag.command])
    if flag.name in words:  # the base gives this flag already: replace its value
        at = words.index(flag.name)
        del words[at : at + 2]
    if flag.command == "run" and flag.name == "--config":
        words = ["run"]  # --config runs instead of CHECK HOST
    if flag.command == "":
        return [f"{flag.name}={value}", *words]
    return [*words, f"{flag.name}={value}"]


def _run_all(argvs: list[list[str]], timeout: float = 20) -> list[subprocess.CompletedProcess[str]]:
    """Run the command lines side by side; kill any still running after ``timeout``."""
    procs = [
        subprocess.Popen([LVSCHECK, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a in argvs
    ]
    done = []
    end = time.monotonic() + timeout
    for argv, proc in zip(argvs, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += "\n(still running: killed by the test)"
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


def _assert_refused(what: str, proc: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit 3, no traceback, and ``expected`` (the flag's name, say) in the message."""
    said = f"{what}: exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, said
    assert proc.returncode == USAGE, said
    assert expected in proc.stderr, said


def test_every_value_flag_has_a_checking_type() -> None:
    unchecked = [
        str(f) for f in FLAGS if f.action.nargs != 0 and f.action.type is None and f.action.choices is None
    ]
    # run's positionals are checked by the command itself (the fast path skips argparse)
    assert unchecked == ["run CHECK", "run HOST[:PORT]", "run key=value"], "flags whose values nothing checks"


def test_the_flags_are_all_found() -> None:
    names = {str(f) for f in FLAGS}
    assert {"daemon --metrics", "daemon --max-in-flight", "demo --rounds", "status --control"} <= names
    assert len(VALUE_FLAGS) >= 17


@pytest.mark.parametrize("flag", VALUE_FLAGS, ids=str)
def test_bad_values_of_each_flag_are_refused_naming_it(flag: Flag, config: Path, tmp_path: Path) -> None:
    values = _bad_values(flag, tmp_path)
    results = _run_all([_argv(flag, v, config, tmp_path) for v in values])
    for value, proc in zip(values, results, strict=True):
        _assert_refused(f"{flag}={value!r}", proc, flag.name)


# -- positionals: the message names the argument or the bad value ------------------------------------

#: For each positional: command lines bad in it alone, and what the message must contain.
POSITIONAL_BAD: dict[str, list[tuple[list[str], str]]] = {
    "run CHECK": [
        (["run", "", "127.0.0.1:80"], "usage: lvscheck run CHECK"),
        (["run", "nosuch", "127.0.0.1:80"], "unknown check type 'nosuch'"),
    ],
    "run HOST[:PORT]": [
        (["run", "connect", ""], "usage: lvscheck run CHECK HOST[:PORT]"),
        (["run", "connect", "127.0.0.1:0"], "target '127.0.0.1:0': port '0'"),
        (["run", "connect", "127.0.0.1:abc"], "target '127.0.0.1:abc': port 'abc'"),
        (["run", "connect", f"127.0.0.1:{'9' * 30}"], "is not a number 1..65535"),
        (["run", "connect", "no such host!"], "'no such host!' is not an IP address or host name"),
    ],
    "run key=value": [
        (["run", "connect", "127.0.0.1:80", "novalue"], "option 'novalue' is not key=value"),
        (["run", "connect", "127.0.0.1:80", "=x"], "option '=x' is not key=value"),
    ],
    "checks name": [
        (["checks", ""], "argument name: an empty value"),
        (["checks", "nosuch"], "unknown check type 'nosuch'"),
    ],
    "check-config FILE": [(["check-config", ""], "argument FILE: an empty value")],
    "drain VIRTUAL": [(["drain", "", "10.0.0.2:80"], "argument VIRTUAL: an empty value")],
    "drain REAL": [(["drain", "10.0.0.1:80", " "], "argument REAL: an empty value")],
    "undrain VIRTUAL": [(["undrain", "", "10.0.0.2:80"], "argument VIRTUAL: an empty value")],
    "undrain REAL": [(["undrain", "10.0.0.1:80", ""], "argument REAL: an empty value")],
    "maintenance switch": [(["maintenance", "bogus", "10.0.0.2:80"], "argument switch: invalid choice")],
    "maintenance REAL": [(["maintenance", "on", ""], "argument REAL: an empty value")],
    "sync-daemon action": [(["sync-daemon", "bogus"], "argument action: invalid choice")],
    "sync-daemon state": [(["sync-daemon", "start", "bogus"], "argument state: invalid choice")],
}


def test_every_positional_is_driven() -> None:
    assert {str(f) for f in POSITIONALS} == set(POSITIONAL_BAD)


@pytest.mark.parametrize("name", sorted(POSITIONAL_BAD))
def test_bad_positionals_are_refused_naming_them(name: str) -> None:
    cases = POSITIONAL_BAD[name]
    for (argv, expected), proc in zip(cases, _run_all([argv for argv, _ in cases]), strict=True):
        _assert_refused(f"lvscheck {argv}", proc, expected)


def test_config_files_that_do_not_exist_are_named(tmp_path: Path) -> None:
    missing = f"{MISSING_DIR}/x.cf"
    argvs = [
        ["run", "--config", missing],
        ["check-config", missing],
        ["daemon", "--config", missing, "--ipvs", "none", "--control", str(tmp_path / "d.sock")],
    ]
    for proc in _run_all(argvs):
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode != 0, proc.stderr
        assert missing in proc.stderr, proc.stderr


# -- what only the system can refuse: a busy port, a directory nobody may write in -------------------


def test_busy_metrics_port_names_the_flag(config: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sock = tmp_path / "d.sock"
        [proc] = _run_all(
            [
                [
                    "daemon",
                    "--config",
                    str(config),
                    "--ipvs",
                    "none",
                    "--control",
                    str(sock),
                    "--metrics",
                    str(port),
                ]
            ]
        )
    _assert_refused(f"daemon --metrics {port}", proc, "--metrics")
    assert "address already in use" in proc.stderr
    assert not sock.exists(), "the control socket is removed when the daemon gives up"


@pytest.mark.parametrize("flag", ["--control", "--pid-file", "--event-log"])
def test_a_file_the_system_refuses_names_the_flag(flag: str, config: Path, tmp_path: Path) -> None:
    """/proc exists but takes no new files: the refusal comes from the system, after parsing."""
    argv = ["daemon", "--config", str(config), "--ipvs", "none", "--control", str(tmp_path / "d.sock")]
    if flag == "--control":
        argv = argv[:-2]
    [proc] = _run_all([[*argv, flag, "/proc/lvscheck-test"]])
    _assert_refused(f"daemon {flag} /proc/lvscheck-test", proc, flag)


# -- a reader that goes away: ``lvscheck status | head -1`` ------------------------------------------


@pytest.fixture
def daemon(config: Path, tmp_path: Path) -> Iterator[Path]:
    """A daemon on the in-memory table; yields its control socket; stopped (and waited for) after."""
    sock = tmp_path / "d.sock"
    argv = [LVSCHECK, "daemon", "--config", str(config), "--ipvs", "none", "--control", str(sock)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None, "the daemon exited"
            assert time.monotonic() < end, "the daemon did not start in 20 s"
            time.sleep(0.05)
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (the first write gets EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=20)
    finally:
        os.close(write_end)


def test_status_into_a_closed_pipe_ends_quietly(daemon: Path) -> None:
    proc = _into_closed_pipe([LVSCHECK, "status", "--control", str(daemon)])
    assert proc.stderr == ""
    assert proc.returncode == 0


def test_checks_into_a_closed_pipe_ends_quietly() -> None:
    proc = _into_closed_pipe([LVSCHECK, "checks"])
    assert proc.stderr == ""
    assert proc.returncode == 0
