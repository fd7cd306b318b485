"""Man pages say what ``--help`` says: every option and help text of every subcommand.

The pages are generated from the argparse parser (``python -m lvscheck.cli.manpage``, run by
the Debian build); these tests compare them with what the installed command prints, so a
generator bug or a subcommand without a page fails here, not in an operator's terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lvscheck.cli.manpage import pages, roff_escape

BIN = Path(sys.executable).parent


def plain(roff: str) -> str:
    """The words of a roff page, escapes and macros undone, whitespace collapsed."""
    text = re.sub(r"^\.\w+ ?", "", roff, flags=re.MULTILINE)
    text = re.sub(r"\\f[BIRP]", "", text)
    text = text.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    return " ".join(text.split())


def help_text(*words: str) -> str:
    out = subprocess.run(
        [str(BIN / "lvscheck"), *words, "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, COLUMNS="1000"),  # one line per option: nothing to unwrap
        check=True,
    )
    return out.stdout


def help_entries(text: str) -> list[tuple[str, str]]:
    """``(invocation, help)`` of each argument line that ``--help`` prints."""
    entries = []
    for line in text.splitlines():
        match = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if match and not line.startswith("   "):
            entries.append((match.group(1), match.group(2) or ""))
    return entries


def subcommands() -> list[str]:
    text = help_text()
    block = text.split("positional arguments:")[1].split("options:")[0]
    return [m.group(1) for m in re.finditer(r"^    (\S+)", block, flags=re.MULTILINE)]


def test_every_subcommand_has_a_page() -> None:
    names = set(pages())
    assert {f"lvscheck-{c}.8" for c in subcommands()} <= names
    assert {"lvscheck.8", "lvscheck-ldirectord.8"} <= names


@pytest.mark.parametrize("command", [None, *subcommands()])
def test_page_has_every_option_and_help_of_help(command: str | None) -> None:
    page = plain(pages()["lvscheck.8" if command is None else f"lvscheck-{command}.8"])
    text = help_text(*([command] if command else []))
    usage = " ".join(text.split("\n\n")[0].removeprefix("usage: ").split())
    assert usage in page, "SYNOPSIS is not --help's usage"
    for invocation, helped in help_entries(text):
        if invocation.startswith("-h, --help") or invocation == "COMMAND":
            continue
        for option in re.findall(r"--?[\w-]+", invocation):
            assert option in page, f"{option} of --help is not in the page"
        if helped:
            assert " ".join(helped.split()) in page, f"help of {invocation!r} is not in the page"


def test_run_page_lists_every_builtin_check_type() -> None:
    from lvscheck.plugins import BUILTIN_PLUGINS

    page = plain(pages()["lvscheck-run.8"]).split("CHECK TYPES")[-1]
    for name in BUILTIN_PLUGINS:
        assert f" {name} " in f" {page} ", name


def test_ldirectord_page_synopsis_is_the_usage_the_command_prints() -> None:
    out = subprocess.run([str(BIN / "lvscheck-ldirectord")], capture_output=True, text=True)
    usage = out.stderr.strip().removeprefix("usage: ").split("  ")[0]
    assert out.returncode == 2
    assert usage == "lvscheck-ldirectord VIP VPORT RIP RPORT"
    assert usage in plain(pages()["lvscheck-ldirectord.8"])


def test_roff_escaping() -> None:
    assert roff_escape(".starts with a dot\n'quote\n-x \\n") == "\\&.starts with a dot\n\\&'quote\n\\-x \\en"


def test_pages_render_without_groff_warnings(tmp_path: Path) -> None:
    man = shutil.which("man")
    if man is None:
        pytest.skip("man-db not installed")
    for name, text in pages().items():
        (tmp_path / name).write_text(text)
        out = subprocess.run(
            [man, "--warnings", "-l", str(tmp_path / name)],
            capture_output=True,
            text=True,
            env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"),
        )
        assert out.returncode == 0, out.stderr
        assert not out.stderr.strip(), f"{name}: {out.stderr}"
        assert "lvscheck" in out.stdout


def test_the_command_never_imports_the_generators() -> None:
    """Man pages and completion are build-time tools: `lvscheck run` does not pay for them."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", str(BIN / "lvscheck"), "run", "connect", "127.0.0.1:1"],
        capture_output=True,
        text=True,
    )
    assert "lvscheck.cli.run" in out.stderr  # the import log is there
    assert "lvscheck.cli.manpage" not in out.stderr
    assert "lvscheck.cli.completion" not in out.stderr
