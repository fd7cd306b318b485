"""Bash completion (``python -m lvscheck.cli.completion``) as bash runs it on TAB.

Check types and their ``key=`` options come from ``lvscheck checks --json`` of the
lvscheck being completed, so the example plugin's ``redis`` shows up when it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvscheck.cli.completion import script

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def completion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    path = tmp_path_factory.mktemp("completion") / "lvscheck"
    path.write_text(script())
    return path


def complete(completion: Path, line: str) -> list[str]:
    """What TAB offers at the end of ``line`` (COMPREPLY), as bash-completion calls the function."""
    program = f"""
source {completion}
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<<"$COMP_LINE"; COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
_lvscheck lvscheck
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"),
        check=True,
    )
    return [w for w in out.stdout.splitlines() if w]


def test_the_script_is_valid_bash(completion: Path) -> None:
    subprocess.run(["bash", "-n", str(completion)], check=True)


def test_subcommands(completion: Path) -> None:
    from lvscheck.cli.completion import _subparsers
    from lvscheck.cli.parser import build_parser

    commands = list(_subparsers(build_parser()))
    assert {"run", "checks", "daemon", "status"} <= set(commands)
    assert complete(completion, "lvscheck ") == commands
    assert complete(completion, "lvscheck -v r") == ["run"]
    assert "--version" in complete(completion, "lvscheck --")


def test_check_types(completion: Path) -> None:
    assert complete(completion, "lvscheck run ht") == ["http", "http_proxy", "https"]
    assert complete(completion, "lvscheck run -w 3 --json conn") == ["connect"]
    assert complete(completion, "lvscheck checks pg") == ["pgsql"]


def test_check_options_of_the_chosen_type(completion: Path) -> None:
    assert complete(completion, "lvscheck run http 10.0.0.2:80 req") == ["request="]
    assert complete(completion, "lvscheck run http 10.0.0.2:80 request=/t.html rec") == ["receive="]
    assert complete(completion, "lvscheck run mysql db1 check") == ["checkport=", "checktimeout="]
    assert complete(completion, "lvscheck run connect db1 request") == []  # connect has no request


def test_flags_and_their_choices(completion: Path) -> None:
    assert complete(completion, "lvscheck run --ex") == ["--exit-codes"]
    assert complete(completion, "lvscheck run --exit-codes ") == ["nagios", "misc-dynamic"]
    assert complete(completion, "lvscheck daemon --ipvs n") == ["netlink", "none"]
    assert complete(completion, "lvscheck daemon --config ") == []  # a file name: bash's default


def test_first_positional_choices(completion: Path) -> None:
    """A subcommand whose first argument is a choice (``maintenance on|off``) offers them."""
    from lvscheck.cli.completion import _subparsers
    from lvscheck.cli.parser import build_parser

    checked = 0
    for name, sub in _subparsers(build_parser()).items():
        positionals = [a for a in sub._actions if not a.option_strings]
        if name not in ("run", "checks") and positionals and positionals[0].choices:
            assert complete(completion, f"lvscheck {name} ") == [str(c) for c in positionals[0].choices]
            checked += 1
    if not checked:
        pytest.skip("no subcommand takes a choice first")


def test_plugin_check_types_are_offered(completion: Path) -> None:
    listed = subprocess.run([str(BIN / "lvscheck"), "checks"], capture_output=True, text=True).stdout
    if "redis" not in listed:
        pytest.skip("plugins/lvscheck-example is not installed")
    assert complete(completion, "lvscheck run red") == ["redis"]
