"""The shipped unit, verbatim, passes ``systemd-analyze verify`` where the Debian package puts
lvscheck (/usr/bin/lvscheck), and so does the one-line edit docs/install.md gives for pip and
pipx installs.  Each check runs in a scratch root (--root) holding just what the unit needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.peers import require_binary

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "lvscheck.service"


def scratch_root(tmp_path: Path, unit_text: str, executables: list[str]) -> Path:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/lvscheck.service").write_text(unit_text)
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)  # the targets
    for path in [*executables, "/bin/kill"]:
        stub = root / path.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return root


def verify(root: Path) -> list[str]:
    analyze = require_binary("systemd-analyze")
    out = subprocess.run(
        [analyze, "verify", f"--root={root}", "lvscheck.service"], capture_output=True, text=True
    )
    return [line for line in (out.stdout + out.stderr).splitlines() if "lvscheck.service" in line]


def test_shipped_unit_verifies_with_the_packaged_path(tmp_path: Path) -> None:
    assert verify(scratch_root(tmp_path, UNIT.read_text(), ["/usr/bin/lvscheck"])) == []


def test_verify_would_catch_a_missing_command(tmp_path: Path) -> None:
    problems = verify(scratch_root(tmp_path, UNIT.read_text(), []))
    assert any("/usr/bin/lvscheck" in p and "not executable" in p for p in problems), problems


@pytest.mark.parametrize("command", ["/opt/lvscheck/bin/lvscheck", "/usr/local/bin/lvscheck"])
def test_unit_edited_for_a_pip_or_pipx_install_verifies(tmp_path: Path, command: str) -> None:
    """docs/install.md: sed "s|/usr/bin/lvscheck|$(command -v lvscheck)|" (venv, pipx --global)."""
    edited = UNIT.read_text().replace("/usr/bin/lvscheck", command)
    assert "/usr/bin/lvscheck" not in edited
    assert verify(scratch_root(tmp_path, edited, [command])) == []


def test_unit_is_not_started_by_itself() -> None:
    """Installing the package must not start a daemon: the unit only says where it belongs."""
    text = UNIT.read_text()
    assert "WantedBy=multi-user.target" in text
    rules = (ROOT / "debian" / "rules").read_text()
    assert "dh_installsystemd --no-enable --no-start" in rules
