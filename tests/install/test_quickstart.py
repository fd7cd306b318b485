"""quickstart.sh, the README's first command, as root and as a user without sudo or with it.

apt-get, sudo, id and the venv-less python3 are stand-ins on PATH that log their calls (a
fresh Debian 12 is not at hand in a test); the script itself runs unchanged in a copy of
the checkout whose .venv is a stand-in too, so no network is used."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stub(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A checkout copy with a stand-in .venv, and a bin/ of logging stand-ins."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "quickstart.sh", checkout)
    (checkout / ".venv" / "bin").mkdir(parents=True)
    stub(checkout / ".venv/bin/python", "exit 0")
    stub(checkout / ".venv/bin/lvscheck", f'echo "lvscheck $*" >>{tmp_path}/log')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir / "apt-get", f'echo "apt-get $*" >>{tmp_path}/log')
    stub(bin_dir / "python3", "exit 1")  # a python3 without its venv module (python3-venv missing)
    return tmp_path


def run(world: Path, uid: int, sudo: bool) -> tuple[int, str, str]:
    bin_dir = world / "bin"
    stub(bin_dir / "id", f"echo {uid}")
    if sudo:
        stub(bin_dir / "sudo", f'echo "sudo $*" >>{world}/log; exec "$@"')
    out = subprocess.run(
        ["/bin/sh", str(world / "checkout" / "quickstart.sh")],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(world)},
    )
    log = (world / "log").read_text() if (world / "log").exists() else ""
    return out.returncode, log, out.stderr


def test_root_shell_without_sudo_installs_with_apt_get_itself(world: Path) -> None:
    code, log, err = run(world, uid=0, sudo=False)
    assert code == 0, err
    assert "sudo" not in log
    assert "apt-get install -y -q python3-venv" in log
    assert log.rstrip().endswith("lvscheck demo")


def test_user_shell_with_sudo_uses_it_for_apt_only(world: Path) -> None:
    code, log, err = run(world, uid=1000, sudo=True)
    assert code == 0, err
    assert "sudo apt-get install -y -q python3-venv" in log
    assert log.rstrip().endswith("lvscheck demo")


def test_user_shell_without_sudo_says_what_to_install(world: Path) -> None:
    code, log, err = run(world, uid=1000, sudo=False)
    assert code == 1
    assert "apt-get install -y python3-venv" in err
    assert log == ""


def test_nothing_missing_installs_nothing(world: Path) -> None:
    stub(world / "bin" / "python3", "exit 0")  # python3 with venv
    code, log, err = run(world, uid=1000, sudo=False)
    assert code == 0, err
    assert log.strip() == "lvscheck demo"
