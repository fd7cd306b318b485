"""What an earlier, killed run left: old peer directories are swept, a running run's are not."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.peers import LEFTOVER_AGE, own_tmpdir, sweep_leftovers


def test_old_peer_directories_are_swept_and_young_ones_kept() -> None:
    old, young = own_tmpdir("sweep-old"), own_tmpdir("sweep-young")
    (old / "data").mkdir()
    (old / "data" / "file").write_text("left by a killed run\n")
    then = time.time() - LEFTOVER_AGE - 60
    os.utime(old, (then, then))
    try:
        removed = sweep_leftovers()
        assert old in removed
        assert not old.exists()
        assert young.exists()
    finally:
        for path in (old, young):
            if path.exists():
                for f in sorted(path.rglob("*"), reverse=True):
                    f.unlink() if f.is_file() else f.rmdir()
                path.rmdir()


def test_only_peer_directories_are_swept(tmp_path: Path) -> None:
    other = Path(f"/tmp/lvscheck-not-a-peer-{os.getpid()}")
    other.mkdir()
    then = time.time() - LEFTOVER_AGE - 60
    os.utime(other, (then, then))
    try:
        assert other not in sweep_leftovers()
        assert other.exists()
    finally:
        other.rmdir()
