"""Property tests: whatever the input, the parser returns a Config or raises ConfigError, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvscheck.config import Config, parse_text, plans
from lvscheck.config.directives import BLOCK_DIRECTIVES, GLOBAL_DIRECTIVES
from lvscheck.errors import ConfigError

_WORDS = [*sorted(set(BLOCK_DIRECTIVES + GLOBAL_DIRECTIVES)), "#lvscheck:", "Virtual", "timeout"]
_VALUES = [
    "",
    "yes",
    "no",
    "5",
    "0",
    "5s",
    '"x"',
    '""',
    '"a#b"',
    "10.0.0.1:80",
    "[::1]:80",
    "[::1]",
    "7",
    "localhost:http",
    "10.0.0.2:80 gate",
    "10.0.0.2->10.0.0.9:80 masq 3",
    '10.0.0.2:80 gate 2 "/x", "y" l:1 u:2',
    "[2001:db8::2]:80 ipip",
    "gate -w 4",
    "negotiate",
    "3",
    "http",
    "rise=2 fall=x",
    "255.255.255.0",
    "\r",
    "none, all",
]
_INDENT = ["", "\t", "    ", "  ", "\t\t", "     "]


@st.composite
def config_like(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.sampled_from(["", " ", "# comment", "\t# c", "\r"])))
            continue
        indent = draw(st.sampled_from(_INDENT))
        word = draw(st.sampled_from(_WORDS))
        sep = draw(st.sampled_from(["=", " = ", "", "=="]))
        value = draw(st.sampled_from(_VALUES) | st.text(max_size=12))
        tail = draw(st.sampled_from(["", " # x", "  ", "\r"]))
        lines.append(f"{indent}{word}{sep}{value}{tail}")
    return "\n".join(lines)


def _parse(text: str) -> None:
    problems: tuple[str, ...] = ()
    try:
        config = parse_text(text, "fuzz.cf")
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        assert all(p.startswith("fuzz.cf") for p in problems)
        return
    assert isinstance(config, Config)
    for plan in plans(config):  # the model is usable: every real gets a plan
        assert plan.real in plan.virtual.reals or plan.real.host


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _parse(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_like())
def test_config_like_text_never_crashes(text: str) -> None:
    _parse(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _parse(data.decode("utf-8", "surrogateescape"))


@settings(max_examples=300, deadline=None)
@given(config_like())
def test_parsing_is_deterministic_and_all_or_nothing(text: str) -> None:
    """The same text gives the same answer twice; with an error there is no model at all."""
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(("ok", parse_text(text, "x.cf")))
        except ConfigError as exc:
            outcomes.append(("error", exc.problems))
    assert outcomes[0] == outcomes[1]
