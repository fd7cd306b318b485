"""Reading a config is linear in its reals and in the length of its lines (issue 18 part 4).

Times lexer + parser + resolve (``parse_text``) and ``plans()`` for configs of 1,000,
10,000 and 65,534 reals (one ``real=A->B`` range, and the same number written one
real per line in virtuals of 100), and for lines with 40,000 trailing blanks.  Each
case runs in a fresh interpreter; the best of ``--repeat`` runs is printed.

With ``--before DIR`` (a checkout of an older lvscheck, e.g. made with
``git archive ef0797a src | tar -x -C /tmp/base``) each case runs against both
trees in the order A B A B and the ratio is printed; cases that would take the
older tree more than a minute (quadratic) are skipped there unless ``--slow``.
Nothing is sent anywhere: the 10.x addresses are only parsed.  Usage::

    .venv/bin/python bench/config_scale.py [--repeat 3] [--before /tmp/base] [--slow]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

#: case -> (what it is, may the older tree take over a minute)
CASES = {
    "range-1k": ("one range of 1,000 reals", False),
    "range-10k": ("one range of 10,000 reals", False),
    "range-65k": ("one range of 65,534 reals", True),
    "lines-1k": ("1,000 real= lines, 100 per virtual", False),
    "lines-10k": ("10,000 real= lines, 100 per virtual", False),
    "lines-65k": ("65,534 real= lines, 100 per virtual", False),
    "blanks-real": ("real= followed by 40,000 spaces", True),
    "blanks-status": ("emailalertstatus= followed by 40,000 tabs", False),
}


def _address(n: int) -> str:
    n += 0x0A000001  # 10.0.0.1
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def config_text(case: str) -> str:
    head = "checktimeout=3\n"
    if case.startswith("range-"):
        count = {"range-1k": 1000, "range-10k": 10000, "range-65k": 65534}[case]
        real = f"real=10.0.0.1->{_address(count - 1)}:80 gate"
        return f"{head}virtual=10.255.0.1:80\n    service=http\n    {real}\n"
    if case.startswith("lines-"):
        count = {"lines-1k": 1000, "lines-10k": 10000, "lines-65k": 65534}[case]
        lines = [head]
        for i in range(count):
            if i % 100 == 0:
                lines.append(f"virtual=10.255.{i // 100 // 250}.{i // 100 % 250 + 1}:80\n    service=http\n")
            lines.append(f"    real={_address(i)}:80 gate {i % 7 + 1}\n")
        return "".join(lines)
    if case == "blanks-real":
        return f"{head}virtual=10.255.0.1:80\n    real=10.0.0.2:80 gate{' ' * 40000}\n"
    return f"emailalertstatus=all{chr(9) * 40000}\nvirtual=10.255.0.1:80\n    real=10.0.0.2:80 gate\n"


def worker(case: str) -> None:
    """Runs in the tree under test: prints {"parse": s, "plans": s, "reals": n, "error": ...}."""
    from lvscheck.config import parse_text, plans
    from lvscheck.errors import ConfigError

    text = config_text(case)
    start = time.process_time()
    try:
        config = parse_text(text, case)
    except ConfigError as exc:
        print(
            json.dumps(
                {"parse": time.process_time() - start, "plans": 0.0, "reals": 0, "error": str(exc)[:80]}
            )
        )
        return
    parsed = time.process_time()
    planned = plans(config)
    done = time.process_time()
    print(json.dumps({"parse": parsed - start, "plans": done - parsed, "reals": len(planned), "error": ""}))


def run(case: str, tree: Path, timeout: float) -> dict[str, object] | None:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", case],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, object] = json.loads(done.stdout)
    return result


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an older tree (with src/lvscheck) to compare with")
    parser.add_argument("--slow", action="store_true", help="also run the cases that are quadratic before")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    print(f"load average at start: {load()}; CPU seconds (process_time), best of {args.repeat}")
    header = f"{'case':<44} {'reals':>6} {'parse':>8} {'plans':>8} {'per real':>9}"
    print(header + ("   before parse+plans  ratio" if args.before else ""))
    for case, (what, slow_before) in CASES.items():
        trees = [HERE] + ([args.before] if args.before and (args.slow or not slow_before) else [])
        results: dict[Path, list[dict[str, object]]] = {tree: [] for tree in trees}
        for _ in range(args.repeat):
            for tree in trees:  # A B A B
                result = run(case, tree, args.timeout)
                if result is not None:
                    results[tree].append(result)
        best = {tree: min(found, key=_total) if found else None for tree, found in results.items()}
        now = best[HERE]
        assert now is not None
        reals = int(str(now["reals"]))
        line = f"{what:<44} {now['reals']!s:>6} {now['parse']:>7.3f}s {now['plans']:>7.3f}s"
        line += f" {_total(now) / reals * 1e6:>7.1f}us" if reals >= 100 else f" {'-':>9}"
        if args.before:
            then = best.get(args.before)
            if args.before not in best:
                line += "   (skipped: quadratic, see --slow)"
            elif then is None:
                line += f"   > {args.timeout:.0f}s (timed out)"
            else:
                line += f"   {_total(then):>8.3f}s  {_total(then) / max(_total(now), 1e-6):>6.1f}x"
        if now["error"]:
            line += "   (refused with an error, as ldirectord does)"
        print(line, flush=True)
    print(f"load average at end: {load()}")


def _total(result: dict[str, object]) -> float:
    return float(str(result["parse"])) + float(str(result["plans"]))


if __name__ == "__main__":
    main()
