"""Config handling is linear, and what is too big is refused with file:line (issue 18 part 4).

Time bounds here are generous on purpose (a busy 2-core machine must pass): each
one is far below what the quadratic code took (given beside it) and far above
what the linear code takes.  bench/config_scale.py has the figures.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvscheck.config import parse_text, plans
from lvscheck.config import reals as reals_module
from lvscheck.config.directives import BLOCK_DIRECTIVES, GLOBAL_DIRECTIVES
from lvscheck.errors import ConfigError

BLOCK = "virtual=10.0.0.1:80\n    real=10.0.0.2:80 gate\n"
LONG = 40_000

#: A value per directive that is valid without what follows it.
VALUES = {
    "real": "10.0.0.3:80 gate 2",
    "real6": "[2001:db8::3]:80 gate",
    "request": '"x"',
    "receive": '"y"',
    "login": '"u"',
    "passwd": '"p"',
    "database": '"d"',
    "secret": '"s"',
    "load": '"x"',
    "callback": '"/bin/true"',
    "logfile": '"local0"',
    "checktype": "negotiate",
    "virtual": "10.0.0.9:80",
    "virtual6": "[2001:db8::9]:80",
    "fallback": "127.0.0.1:80 gate",
    "fallback6": "[::1]:80 gate",
    "emailalertstatus": "all, starting",
    "scheduler": "wrr",
    "protocol": "tcp",
    "service": "http",
    "httpmethod": "GET",
    "netmask": "255.255.255.0",
    "emailalert": "a@example.com",
    "smtp": "127.0.0.1",
}


def _parse(text: str) -> float:
    start = time.perf_counter()
    with contextlib.suppress(ConfigError):
        parse_text(text)
    return time.perf_counter() - start


def _texts(tail: str) -> list[tuple[str, str]]:
    out = []
    for name in GLOBAL_DIRECTIVES:
        out.append((f"global {name}", f"{name}={VALUES.get(name, '1')}{tail}\n{BLOCK}"))
    for name in BLOCK_DIRECTIVES:
        out.append((f"block {name}", f"{BLOCK}    {name}={VALUES.get(name, '1')}{tail}\n"))
    return out


@pytest.mark.parametrize(
    "tail",
    [" " * LONG, "\t" * LONG, " " * LONG + "x", " \t" * (LONG // 2) + ",x", "x" * LONG + " " * LONG + "y z"],
    ids=["spaces", "tabs", "spaces-word", "blanks-comma", "word-spaces-words"],
)
def test_long_blanks_after_any_directive_are_read_in_linear_time(tail: str) -> None:
    """40,000 trailing spaces after real= took 26 s (quadratic regex searches); now milliseconds."""
    slow = [(name, seconds) for name, text in _texts(tail) if (seconds := _parse(text)) > 2.0]
    assert not slow


def test_long_blanks_inside_a_real_line() -> None:
    gap = " " * LONG
    text = f'{BLOCK}    real=10.0.0.3:80{gap}gate{gap}5{gap}"x",{gap}"y"{gap}l:1{gap}u:2{gap}\n'
    assert _parse(text) < 2.0
    assert _parse(f"{BLOCK}    real={'a' * LONG}\n") < 2.0  # a long word and no blank


NUMBERS = [
    ("checktimeout={n}\n" + BLOCK, 1, "checktimeout"),
    ("emailalertfreq={n}\n" + BLOCK, 1, "emailalertfreq"),
    (BLOCK + "    checkport={n}\n", 3, "checkport"),
    (BLOCK + "    checktype={n}\n", 3, "checktype"),
    (BLOCK + "    persistent={n}\n", 3, "persistent"),
    (BLOCK + "    failurecount=x{n}\n", 3, "failurecount"),
    (BLOCK + "    real=10.0.0.3:{n} gate\n", 3, "real"),
    (BLOCK + "    real=10.0.0.3:80 gate {n}\n", 3, "real"),
    (BLOCK + "    real=10.0.0.3:80 gate 1 l:{n}\n", 3, "real"),
    (BLOCK + "    real=10.0.0.3:80 gate 1 u:{n}\n", 3, "real"),
    ("virtual=10.0.0.1:{n}\n    real=10.0.0.2:80 gate\n", 1, "virtual"),
    ("virtual={n}\n    real=10.0.0.2:80 gate\n", 1, "virtual"),
    ("virtual6=[2001:db8::1]:80\n    real6=[2001:db8::2]:80 gate\n    netmask={n}\n", 3, "netmask"),
    ("fallback=127.0.0.1:{n}\n" + BLOCK, 1, "fallback"),
    ("#lvscheck: rise={n}\n" + BLOCK, 1, "#lvscheck rise"),
]


@pytest.mark.parametrize(("template", "line", "directive"), NUMBERS)
def test_a_number_of_5000_digits_is_an_error_at_its_line(template: str, line: int, directive: str) -> None:
    """Python refuses int() of more than 4,300 digits: this was a ValueError traceback."""
    with pytest.raises(ConfigError) as caught:
        parse_text(template.format(n="7" * 5000), "big.cf")
    assert any(p.startswith(f"big.cf:{line}: {directive}: ") for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_number_is_bounded_to_18_digits_and_leading_zeros_are_free() -> None:
    config = parse_text("checktimeout=" + "0" * 5000 + "7\n" + BLOCK)
    assert config.virtuals[0].checktimeout == 7
    with pytest.raises(ConfigError, match=r"a number of 19 digits is too long: .* at most 18 digits"):
        parse_text("checktimeout=" + "1" * 19 + "\n" + BLOCK)


def test_check_config_reports_a_huge_number_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "big.cf"
    path.write_text(BLOCK + f"    real=10.0.0.3:80 gate {'9' * 5000}\n")
    done = subprocess.run(
        [sys.executable, "-m", "lvscheck", "check-config", "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{path}:3: real: weight: a number of 5000 digits is too long" in done.stderr


def test_a_65534_real_range_is_parsed_and_planned_quickly() -> None:
    """The range docs/config.md allows: check-config did not finish in 100 s (quadratic
    duplicate detection); parse and plans now take about a second."""
    text = "virtual=10.0.0.1:80\n    service=http\n    real=10.0.0.1->10.0.255.254:80 gate\n"
    start = time.perf_counter()
    config = parse_text(text)
    planned = plans(config)
    assert time.perf_counter() - start < 30.0
    assert config.reals == len(planned) == 65534
    assert planned[-1].real.host == "10.0.255.254"
    assert planned[0].spec is not None
    assert planned[-1].spec is not None
    assert planned[0].spec.options is planned[-1].spec.options  # shared, not copied per real


def test_duplicates_in_a_large_range_are_each_reported_once() -> None:
    text = (
        "virtual=10.0.0.1:80\n    real=10.0.0.1->10.0.15.255:80 gate\n"
        "    real=10.0.15.254->10.0.16.1:80 gate\n"
    )
    config = parse_text(text, "dup.cf")
    dups = [w for w in config.warnings if "already a real of this virtual" in w.message]
    assert [(w.line, w.message.split()[0]) for w in dups] == [(3, "10.0.15.254:80"), (3, "10.0.15.255:80")]


def test_a_range_over_65536_is_an_error_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(BLOCK + "    real=10.0.0.0->10.1.0.0:80 gate\n", "big.cf")
    assert caught.value.problems == (
        "big.cf:3: real: the range 10.0.0.0->10.1.0.0 has 65537 addresses; lvscheck takes at most 65536",
    )


def test_a_file_over_max_reals_is_an_error_at_the_line_that_crosses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound is 262,144 reals (four full ranges); a small one here keeps the test fast."""
    assert reals_module.MAX_REALS == 4 * 65536
    monkeypatch.setattr(reals_module, "MAX_REALS", 10)
    text = (
        "virtual=10.0.0.1:80\n    real=10.0.0.1->10.0.0.4:80 gate\n"
        "virtual=10.0.0.2:80\n    real=10.0.0.1->10.0.0.4:80 gate\n"
        "    real=10.0.0.5->10.0.0.8:80 gate\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_text(text, "many.cf")
    assert caught.value.problems == (
        "many.cf:5: real: more than 10 reals in one file: lvscheck takes at most 10 (0 ranges of 65536); "
        "split the file",
    )


@given(st.text(alphabet="[]:af1.->g \t_^", max_size=60), st.integers(min_value=0, max_value=20))
@settings(max_examples=500, deadline=None)
def test_the_linear_real_search_finds_what_the_regex_search_finds(text: str, brackets: int) -> None:
    text = "[" * brackets + text
    expected = reals_module._REAL.search(text)
    found = reals_module._search_real(text)
    assert _shape(found) == _shape(expected)


def _shape(m: re.Match[str] | None) -> tuple[tuple[int, int], tuple[str | Any, ...]] | None:
    return (m.span(), m.groups()) if m else None


@pytest.mark.parametrize("piece", ["[", "[:", "[a", "[]"])
def test_a_real_line_of_brackets_is_read_in_linear_time(piece: str) -> None:
    """ldirectord's [0-9A-fa-f:] takes '[' too: 40,000 of them took minutes (each '[' rescanned)."""
    assert _parse(f"{BLOCK}    real={piece * (LONG // len(piece))}x gate\n") < 2.0


def test_ranges_past_the_file_limit_are_not_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of many /16 ranges: refused with one error, without expanding each range."""
    monkeypatch.setattr(reals_module, "MAX_REALS", 1000)
    ranges = "".join(f"    real=10.{i}.0.0->10.{i}.255.255:80 gate\n" for i in range(200))
    with pytest.raises(ConfigError) as caught:
        parse_text("virtual=10.255.0.1:80\n" + ranges, "many.cf")
    assert caught.value.problems == (
        "many.cf:2: real: more than 1000 reals in one file: lvscheck takes at most 1000 "
        "(0 ranges of 65536); split the file",
    )
    start = time.perf_counter()
    with pytest.raises(ConfigError):
        parse_text("virtual=10.255.0.1:80\n" + ranges * 5, "many.cf")
    assert time.perf_counter() - start < 10.0  # 1,000 lines of 65,536 reals: was minutes
