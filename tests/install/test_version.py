"""The version lives in src/lvscheck/_version.py; everything that names it must agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lvscheck._version import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_debian_changelog_names_the_version() -> None:
    first = (ROOT / "debian" / "changelog").read_text().splitlines()[0]
    match = re.match(r"^lvscheck \(([^)]+)\) ", first)
    assert match, first
    assert match.group(1).split("-")[0] == __version__


def test_changelog_md_has_an_entry_for_the_version() -> None:
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert headings[0] == __version__


def test_the_command_and_the_package_metadata_agree() -> None:
    from importlib.metadata import version

    out = subprocess.run(
        [str(Path(sys.executable).parent / "lvscheck"), "--version"], capture_output=True, text=True
    )
    assert out.stdout.strip() == f"lvscheck {__version__}"
    assert version("lvscheck") == __version__
