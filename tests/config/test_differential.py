"""Differential fuzzing: lvscheck and Debian's ldirectord accept and reject the same files.

Random configs are built from real directives and values (no host names: ldirectord
would look them up, lvscheck refuses them on purpose), written to a file and given to
``ldirectord FILE status``, which parses the whole file (exit 2: config error, 3: valid
and stopped).  lvscheck must take the same decision.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.peers import require_binary

from lvscheck.config import parse_text
from lvscheck.errors import ConfigError

pytestmark = [pytest.mark.peer, pytest.mark.slow]

#: ldirectord takes about 0.3 s per file; LVSCHECK_FUZZ_EXAMPLES=1000 for a long run.
EXAMPLES = int(os.environ.get("LVSCHECK_FUZZ_EXAMPLES", "30"))

# Directives with side effects in ldirectord (files opened, other instances started) are left out.
_GLOBAL = {
    "checktimeout": ["3", "0", "5s", "x", ""],
    "negotiatetimeout": ["10", "0"],
    "checkinterval": ["2", "0"],
    "failurecount": ["3", "0"],
    "quiescent": ["yes", "no", "no ", "Yes"],
    "autoreload": ["no", "maybe"],
    "fork": ["no", "yes"],
    "cleanstop": ["yes", "no # c"],
    "emailalertfreq": ["0", "60", "x"],
    "emailalertstatus": ["all", "none", "none, all", "starting,running", "bogus"],
    "smtp": ["127.0.0.1", '"127.0.0.1"'],
    "fallback": ["127.0.0.1:80", "127.0.0.1:80 masq", "127.0.0.1 route", '"127.0.0.1"'],
    "service": ["http"],
    "timeout": ["5"],
}
_BLOCK = {
    "real": [
        "127.0.0.2:80 gate",
        "127.0.0.3:80 masq 5",
        "127.0.0.4 ipip 0",
        "127.0.0.5->127.0.0.7:80 gate 2",
        "127.0.0.9->127.0.0.5:80 gate",
        '127.0.0.8:80 gate 1 "x", "y"',
        '127.0.0.8:80 gate 1 "/x", "y" l:3',
        "127.0.0.2:80 gate l:5 u:10",
        "127.0.0.2:80 route",
        "127.0.0.2:80",
        "127.0.0.2:80 gate 2 junk",
        "127.0.0.2:99999 gate",
        "[::1]:80 gate",
    ],
    "real6": ["[::1]:80 gate"],
    "service": ["http", "https", "none", "HTTP", "mysql", "bogus"],
    "checktype": ["negotiate", "connect", "3", "on", "off", "external", "bogus"],
    "checkcommand": ["/bin/true", '"/bin/true"'],
    "request": ['"/x"', '"x"', '""', "x"],
    "receive": ['"ok"', '""'],
    "login": ['"u"', '""'],
    "passwd": ['"p"', '"a#b"'],
    "checkport": ["80", "0", "70000"],
    "scheduler": ["wlc", "rr", "WRR", "Wrr"],
    "protocol": ["tcp", "udp", "fwm", "sctp"],
    "persistent": ["300", "x"],
    "netmask": ["255.255.255.0", "255.255.255"],
    "httpmethod": ["GET", "head", "POST"],
    "virtualhost": ["www.example.com", '"www.example.com"'],
    "quiescent": ["yes", "no "],
    "ops": ["yes", "1"],
    "checktimeout": ["2", "0"],
    "fallback": ["127.0.0.1:80 gate", "127.0.0.1 route"],
    "readdquiescent": ["yes"],
    "recieve": ['"x"'],
}
_HEADERS = ["127.0.0.1:80", "127.0.0.1:443", "127.0.0.1:http", "127.0.0.1:8080", "7", "[::1]:80", "nonsense"]
_HEADERS6 = ["[::1]:80", "7", "[::1]:5432"]


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for key in draw(st.lists(st.sampled_from(sorted(_GLOBAL)), max_size=3)):
        lines.append(f"{key}={draw(st.sampled_from(_GLOBAL[key]))}")
    for _ in range(draw(st.integers(0, 3))):
        six = draw(st.booleans())
        header = draw(st.sampled_from(_HEADERS6 if six else _HEADERS))
        lines.append(f"virtual{'6' if six else ''}={header}")
        for key in draw(st.lists(st.sampled_from(sorted(_BLOCK)), min_size=1, max_size=5)):
            indent = draw(st.sampled_from(["\t", "    ", "\t\t"]))
            value = draw(st.sampled_from(_BLOCK[key]))
            if six and key == "real":
                key, value = "real6", draw(st.sampled_from(["[::1]:80 gate", "[::2]:80 masq 3"]))
            lines.append(f"{indent}{key}={value}")
            if draw(st.integers(0, 9)) == 0:  # comments, blank and whitespace-only lines
                lines.append(draw(st.sampled_from(["", "# c", "\t# c", "    ", "     ", "\t ", " "])))
            if draw(st.integers(0, 14)) == 0:  # trailing blanks, a CR, an inline comment
                lines[-1] += draw(st.sampled_from(["  ", "\r", " # note", "#"]))
        if draw(st.booleans()):
            lines.append("")
    return "\n".join(lines) + "\n"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_same_decision_as_ldirectord(text: str, tmp_path: Path) -> None:
    ldirectord = require_binary("ldirectord", "/usr/sbin/ldirectord")
    cf = tmp_path / "fuzz.cf"
    cf.write_text(text)
    proc = subprocess.run(
        [ldirectord, str(cf), "status"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode in (2, 3), proc.stderr
    problems: tuple[str, ...] = ()
    try:
        parse_text(text, "fuzz.cf")
    except ConfigError as exc:
        problems = exc.problems
    ours = "invalid" if problems else "valid"
    theirs = "invalid" if proc.returncode == 2 else "valid"
    assert ours == theirs, f"ldirectord: {proc.stderr.strip()[-300:]}\nlvscheck: {problems}\n---\n{text}"
    m = re.search(r"at line (\d+): (.*)", proc.stderr)
    if m and "duplicate virtual server" not in m[2]:
        # ldirectord stops at its first error: lvscheck reports one on that line too
        lines = {int(p.split(":")[1]) for p in problems}
        assert int(m[1]) in lines, f"ldirectord: {m[0]}\nlvscheck: {problems}\n---\n{text}"
