"""Instructions per metered step and per meter set-up: this revision's CPU meter vs another's.

Counted by callgrind (``valgrind --tool=callgrind``), so the figure does not depend on what else
the machine does.  Each variant drives a coroutine of N trivial steps through ``Metered`` (or
bare, ``none``) in its own process; instructions per step are (count at N - count at 0) / N.
A healthy check never leaves the wall clock (its steps add up to far less than 20 % of the
budget), so this is the common path's cost; ``--suspect`` measures a meter already on the
thread's CPU clock.

    .venv/bin/python bench/cpumeter_steps.py [--old-rev main] [--steps 100000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("meter_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Yield:
    def __await__(self) -> Any:
        yield None


async def _steps(n: int) -> None:
    y = _Yield()
    for _ in range(n):
        await y


def child(path: str, steps: int, suspect: bool) -> None:
    module = _load(path) if path != "none" else None
    coro = _steps(steps)
    if module is None:
        it: Any = coro.__await__()
    else:
        meter = module.Meter(1e9, lambda _why: None)
        if suspect:
            meter.passed()  # on the thread's CPU clock from the first step
        it = module.Metered(coro, meter).__await__()
    try:
        while True:
            it.send(None)
    except StopIteration:
        pass


def count(path: str, steps: int, suspect: bool, tmp: str) -> int:
    out = os.path.join(tmp, "cg.out")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            path,
            str(steps),
            "1" if suspect else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found, done.stderr[-2000:]
    return int(found.group(1))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-rev", default="main", help="the revision to compare with (main)")
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "old_cpumeter.py")
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.old_rev}:src/lvscheck/engine/cpumeter.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        Path(old).write_text(text)
        new = str(ROOT / "src/lvscheck/engine/cpumeter.py")
        print(f"load {os.getloadavg()[0]:.2f} (callgrind counts instructions: load does not change them)")
        for name, path, suspect in (
            ("no meter", "none", False),
            (f"{args.old_rev} meter", old, False),
            ("this meter", new, False),
            ("this meter, suspect (CPU clock)", new, True),
        ):
            base = count(path, 0, suspect, tmp)
            full = count(path, args.steps, suspect, tmp)
            print(f"{name:32} {(full - base) / args.steps:8.1f} instructions per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
