"""The external check: real scripts that exit with each code, under each exit-code convention.

The scripts are written by the tests (``/bin/sh``), run with ldirectord's four
arguments, and exit with the code being tested; nothing is faked on lvscheck's side.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

import lvscheck
from lvscheck import CheckSpec, OptionError, Result, State, Target


def script(tmp_path: Path, body: str, name: str = "check-web") -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def run(command: str, weight: int = 4, **options: Any) -> Result:
    spec = CheckSpec("external", Target("10.0.0.2", 80, weight=weight), {"checkcommand": command, **options})
    [result] = lvscheck.run_checks([spec])
    return result


def exits(tmp_path: Path, code: int, out: str = "", err: str = "") -> str:
    return script(tmp_path, f"printf '{out}'\nprintf '{err}' >&2\nexit {code}", name=f"exit{code}")


# -- ldirectord's convention (the default) -----------------------------------------------------


def test_ldirectord_convention_zero_up_else_down(tmp_path: Path) -> None:
    assert run(exits(tmp_path, 0)).state is State.UP
    r = run(exits(tmp_path, 7, err="disk full\\n"))
    assert (r.state, r.reason) == (State.DOWN, "exit7 exited 7: disk full")
    assert run(exits(tmp_path, 2)).state is State.DOWN  # no weights unless asked


def test_script_gets_ldirectord_arguments(tmp_path: Path) -> None:
    out = tmp_path / "args"
    r = run(script(tmp_path, f'echo "$@" > {out}'), vip="192.0.2.10", vport="80")
    assert r.state is State.UP
    assert out.read_text() == "192.0.2.10 80 10.0.0.2 80\n"


# -- keepalived misc_dynamic: 0 up, 1 down, 2+N weight N ---------------------------------------


@pytest.mark.parametrize(
    ("code", "state", "weight"),
    [
        (0, State.UP, 4),
        (1, State.DOWN, 0),
        (2, State.DEGRADED, 0),
        (3, State.DEGRADED, 1),
        (5, State.DEGRADED, 3),
        (6, State.UP, 4),
        (255, State.UP, 4),  # 253 clamped to the configured weight
    ],
)
def test_misc_dynamic_each_code(tmp_path: Path, code: int, state: State, weight: int) -> None:
    r = run(exits(tmp_path, code), exitcodes="misc-dynamic")
    assert (r.state, r.weight) == (state, weight), r.reason


def test_misc_dynamic_reasons_and_clamps(tmp_path: Path) -> None:
    r = run(exits(tmp_path, 5), exitcodes="misc-dynamic")
    assert r.reason == "exit5 exited 5: weight 3 (misc-dynamic 2+N)"
    r = run(exits(tmp_path, 30), exitcodes="misc-dynamic", maxweight="20")
    assert (r.weight, r.reason) == (20, "exit30 exited 30: weight 20 (misc-dynamic 2+N, 28 clamped to 0..20)")
    r = run(exits(tmp_path, 2), exitcodes="misc-dynamic", minweight="1")
    assert r.weight == 1
    r = run(exits(tmp_path, 1, err="no backend\\n"), exitcodes="misc-dynamic")
    assert r.reason == "exit1 exited 1: no backend"


def test_killed_script_never_sets_a_weight(tmp_path: Path) -> None:
    # killed by a signal: the shell would report 128+9 = 137, which misc_dynamic would read as weight 135
    r = run(script(tmp_path, "kill -9 $$"), exitcodes="misc-dynamic", maxweight="200")
    assert (r.state, r.weight) == (State.DOWN, 0)
    assert r.reason == "check-web killed by signal 9"


def test_script_killed_at_the_deadline_never_sets_a_weight(tmp_path: Path) -> None:
    # keepalived #2720: a misc_dynamic script killed at its timeout made the weight grow
    t0 = time.monotonic()
    r = run(script(tmp_path, "sleep 30\nexit 5"), exitcodes="misc-dynamic", checktimeout="0.5")
    assert time.monotonic() - t0 < 2
    assert (r.state, r.weight) == (State.DOWN, 0)
    assert r.reason == "timed out after 0.5 s waiting for check-web to exit"


# -- Nagios plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN ------------------------------------


@pytest.mark.parametrize(
    ("code", "state", "weight", "reason"),
    [
        (0, State.UP, 4, "exit0 OK: HTTP OK - 200 in 0.002 s"),
        (1, State.DEGRADED, 2, "exit1 WARNING: HTTP OK - 200 in 0.002 s (weight 2)"),
        (2, State.DOWN, 0, "exit2 CRITICAL: HTTP OK - 200 in 0.002 s"),
        (3, State.DOWN, 0, "exit3 UNKNOWN: HTTP OK - 200 in 0.002 s"),
        (4, State.DOWN, 0, "exit4 exited 4, not a Nagios status (0..3)"),
    ],
)
def test_nagios_each_code(tmp_path: Path, code: int, state: State, weight: int, reason: str) -> None:
    command = exits(tmp_path, code, out="HTTP OK - 200 in 0.002 s|time=0.002s;;;0\\nsecond line\\n")
    r = run(command, exitcodes="nagios")
    assert (r.state, r.weight, r.reason) == (state, weight, reason)


def test_nagios_warning_weight(tmp_path: Path) -> None:
    command = exits(tmp_path, 1, out="LOAD WARNING\\n")
    assert run(command, weight=10, exitcodes="nagios").weight == 5  # 50 % by default
    assert run(command, weight=10, exitcodes="nagios", warningweight="30%").weight == 3
    assert run(command, weight=10, exitcodes="nagios", warningweight="7").weight == 7
    assert run(command, weight=10, exitcodes="nagios", warningweight="0").weight == 0


def test_nagios_reason_falls_back_to_stderr(tmp_path: Path) -> None:
    r = run(exits(tmp_path, 2, err="cannot connect\\n"), exitcodes="nagios")
    assert r.reason == "exit2 CRITICAL: cannot connect"


def test_lvscheck_run_as_the_script(tmp_path: Path) -> None:
    """``lvscheck run --exit-codes misc-dynamic`` answers what ``exitcodes=misc-dynamic`` reads."""
    lvscheck_bin = Path(sys.executable).with_name("lvscheck")
    inner = exits(tmp_path, 5)  # weight 3, read by the inner lvscheck
    command = script(
        tmp_path,
        f"exec {lvscheck_bin} run --exit-codes misc-dynamic -w 7 external 10.0.0.2:80 "
        f"checkcommand={inner} exitcodes=misc-dynamic",
        name="via-lvscheck",
    )
    r = run(command, weight=7, exitcodes="misc-dynamic")
    assert (r.state, r.weight) == (State.DEGRADED, 3), r.reason
    # and lvscheck's own Nagios exit codes (degraded = 1 = WARNING) read back as a Nagios plugin
    command = script(
        tmp_path,
        f"exec {lvscheck_bin} run -w 7 external 10.0.0.2:80 checkcommand={inner} exitcodes=misc-dynamic",
        name="via-lvscheck-nagios",
    )
    r = run(command, weight=8, exitcodes="nagios", warningweight="1")
    assert (r.state, r.weight) == (State.DEGRADED, 1)
    assert r.reason.startswith(
        "via-lvscheck-nagios WARNING: EXTERNAL WARNING - 10.0.0.2:80 weight 3: exit5 exited 5"
    )


def test_option_errors(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="exitcodes='keepalived' is not valid: expected ldirectord"):
        run("/bin/true", exitcodes="keepalived")
    with pytest.raises(OptionError, match="warningweight='half' is not valid"):
        run("/bin/true", exitcodes="nagios", warningweight="half")
    with pytest.raises(OptionError, match="minweight=5 is above maxweight=4"):
        run("/bin/true", exitcodes="misc-dynamic", minweight="5")
