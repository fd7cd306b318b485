"""The ``lvscheck`` command: bad input exits 3 with a message naming the bad item, never a traceback.

Run as a subprocess, the way ldirectord, keepalived or Nagios start it.  The
outcomes of real checks through the CLI are in tests/checks/test_http_nginx.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.peers import free_port

LVSCHECK = str(Path(sys.executable).parent / "lvscheck")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LVSCHECK, *args], capture_output=True, text=True, timeout=30)


# (argv after "lvscheck", what the message must contain)
BAD_INPUT: dict[str, tuple[list[str], list[str]]] = {
    "unknown check type": (
        ["run", "htttp", "127.0.0.1:80"],
        ["unknown check type 'htttp'", "connect", "http", "https"],
    ),
    "unknown option": (
        ["run", "http", "127.0.0.1:80", "recieve=Still alive"],
        ["no option 'recieve'", "accepted:", "receive"],
    ),
    "not key=value": (
        ["run", "http", "127.0.0.1:80", "/test.html"],
        ["option '/test.html' is not key=value"],
    ),
    "empty key": (["run", "http", "127.0.0.1:80", "=x"], ["option '=x' is not key=value"]),
    "bad host": (
        ["run", "http", "web server!:80"],
        ["'web server!' is not an IP address or host name", "accepted: HOST, HOST:PORT"],
    ),
    "bad IPv4 address": (["run", "http", "10.0.0.300:80"], ["'10.0.0.300' is not an IP address"]),
    "bad port": (["run", "http", "127.0.0.1:99999"], ["port '99999' is not a number 1..65535"]),
    "port not a number": (["run", "http", "127.0.0.1:http"], ["port 'http' is not a number 1..65535"]),
    "unclosed IPv6 bracket": (["run", "http", "[::1:80"], ["missing ']'"]),
    "bad regex": (
        ["run", "http", "127.0.0.1:80", "receive=Still (alive"],
        ["receive='Still (alive'", "not a valid regular expression"],
    ),
    "bad timeout": (
        ["run", "http", "127.0.0.1:80", "negotiatetimeout=soon"],
        ["negotiatetimeout='soon'", "number of seconds"],
    ),
    "bad method": (["run", "http", "127.0.0.1:80", "httpmethod=POST"], ["httpmethod='POST'", "GET or HEAD"]),
    "bad status": (["run", "http", "127.0.0.1:80", "status=ok"], ["status='ok'", "200-399"]),
    "status outside HTTP": (["run", "http", "127.0.0.1:80", "status=700"], ["status='700'", "100..599"]),
    "bad weightfrom": (
        ["run", "http", "127.0.0.1:80", "weightfrom=cookie"],
        ["weightfrom='cookie'", "header:NAME"],
    ),
    "bad checkport": (["run", "connect", "127.0.0.1:80", "checkport=0"], ["checkport='0'", "1..65535"]),
    "bad tlsverify": (
        ["run", "https", "127.0.0.1:443", "tlsverify=maybe"],
        ["tlsverify='maybe'", "expected full, chain or no"],
    ),
    "missing cafile": (
        ["run", "https", "127.0.0.1:443", "cafile=/nonexistent/ca.pem"],
        ["cafile='/nonexistent/ca.pem': cannot read it: No such file or directory"],
    ),
    "HEAD with receive": (
        ["run", "http", "127.0.0.1:80", "httpmethod=HEAD", "receive=x"],
        ["httpmethod=HEAD", "receive="],
    ),
    "bad full URL": (["run", "http", "127.0.0.1:80", "request=ftp://x/"], ["request='ftp://x/'", "http://"]),
    "no port for connect": (["run", "connect", "127.0.0.1"], ["no default port", "checkport=PORT"]),
    "missing target": (["run", "http"], ["usage: lvscheck run CHECK HOST[:PORT]"]),
    "bad weight": (["run", "http", "127.0.0.1:80", "-w", "70000"], ["--weight 70000", "0..65535"]),
    "bad exit-codes": (
        ["run", "http", "127.0.0.1:80", "--exit-codes", "icinga"],
        ["invalid choice: 'icinga'"],
    ),
    "unknown check type listed": (["checks", "htttp"], ["unknown check type 'htttp'"]),
    "unknown subcommand": (["runn"], ["invalid choice: 'runn'"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_3_naming_the_item(case: str) -> None:
    argv, expected = BAD_INPUT[case]
    p = cli(*argv)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stdout == ""
    for text in expected:
        assert text in p.stderr, f"{text!r} not in {p.stderr!r}"


def test_bad_input_with_json_still_exits_3() -> None:
    p = cli("run", "http", "127.0.0.1:80", "receive=(", "--json")
    assert p.returncode == 3
    assert "Traceback" not in p.stderr
    assert "receive='('" in p.stderr


def test_no_command_prints_help_and_exits_3() -> None:
    p = cli()
    assert p.returncode == 3
    assert "run" in p.stdout
    assert "checks" in p.stdout


def test_checks_lists_the_builtin_types() -> None:
    p = cli("checks")
    assert p.returncode == 0, p.stderr
    names = {line.split()[0] for line in p.stdout.splitlines() if line and not line.startswith(" ")}
    assert {"connect", "http", "https"} <= names
    assert "receive" in p.stdout
    assert "virtualhost" in p.stdout


def test_checks_json() -> None:
    p = cli("checks", "--json")
    assert p.returncode == 0, p.stderr
    types = {t["name"]: t for t in json.loads(p.stdout)}
    assert {"connect", "http", "https"} <= types.keys()
    assert types["https"]["default_port"] == 443
    options = {o["name"]: o for o in types["http"]["options"]}
    assert options["httpmethod"]["default"] == "GET"
    assert options["maxbody"]["default"] == "64k"
    assert {"request", "receive", "virtualhost", "checktimeout", "negotiatetimeout"} <= options.keys()


def test_checks_one_type() -> None:
    p = cli("checks", "https")
    assert p.returncode == 0
    assert p.stdout.startswith("https")
    assert "cafile" in p.stdout


def test_version() -> None:
    p = cli("--version")
    assert p.returncode == 0
    assert p.stdout.startswith("lvscheck ")


def test_a_down_real_is_not_a_usage_error() -> None:
    # a refused connection is the real server's problem: exit 2 and a status line, not 3
    p = cli("run", "http", f"127.0.0.1:{free_port()}")
    assert p.returncode == 2
    assert p.stdout.startswith("HTTP CRITICAL - ")
    assert p.stderr == ""


# -- the argparse-free fast path of `lvscheck run` must read argv exactly as argparse does ----------

FAST_FORMS = [
    ["run", "http", "10.0.0.2:80"],
    ["run", "http", "10.0.0.2:80", "request=/test.html", "receive=Still alive"],
    ["-v", "run", "https", "web1", "cafile=/x.pem"],
    ["run", "--json", "-w", "10", "http", "10.0.0.2", "weightfrom=header:X-LVS-Weight"],
    ["run", "http", "10.0.0.2", "request=/", "--json", "--exit-codes", "misc-dynamic", "-w", "5"],
    ["run", "--weight=7", "--exit-codes=misc-dynamic", "connect", "[::1]:22"],
    ["run", "http", "10.0.0.2", "=x", "novalue"],
]
SLOW_FORMS = [
    ["run"],
    ["run", "http"],
    ["run", "-h"],
    ["run", "--config", "/etc/ha.d/ldirectord.cf"],
    ["run", "--js", "http", "10.0.0.2"],  # an abbreviation: argparse's business
    ["run", "http", "10.0.0.2", "-w", "x"],
    ["run", "http", "10.0.0.2", "--exit-codes", "icinga"],
    ["run", "http", "--json", "10.0.0.2"],  # positionals after a flag after positionals
    ["run", "http", "10.0.0.2", "--", "x=1"],
    ["checks", "http"],
]


@pytest.mark.parametrize("words", FAST_FORMS, ids=" ".join)
def test_fast_run_path_reads_argv_like_argparse(words: list[str]) -> None:
    from lvscheck.cli import _fast_run_args, build_parser

    fast = _fast_run_args(words)
    assert fast is not None
    assert vars(fast) == vars(build_parser().parse_args(words))


@pytest.mark.parametrize("words", SLOW_FORMS, ids=" ".join)
def test_fast_run_path_leaves_the_rest_to_argparse(words: list[str]) -> None:
    from lvscheck.cli import _fast_run_args

    assert _fast_run_args(words) is None


def test_plain_run_does_not_import_argparse() -> None:
    code = (
        "import sys; from lvscheck.cli import main; "
        f"rc = main(['run', 'connect', '127.0.0.1:{free_port()}']); "
        "print('argparse' in sys.modules, rc)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert p.stdout.strip().endswith("False 2"), p
