"""Start-up of an installed ``lvscheck run http`` against ``python3 -I -c "import asyncio, ssl"``.

Issue 15 (budget 1.2x): the Debian package's /usr/bin/lvscheck (Debian's python3 running the
bundled venv, bytecode compiled by postinst) against the same /usr/bin/python3.  The two
commands alternate, A B A B, in one run, so a load change on the shared machine hits both;
wall time and CPU (user+sys of the child, from wait4) per run; load average before and after.

    .venv/bin/python bench/package_startup.py [-n 100] [--lvscheck /usr/bin/lvscheck]
                                               [--python /usr/bin/python3]

Needs nginx-light (the test peer serves /test.html with "Still alive").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.nginx import start_nginx


def run_once(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user+sys) and exit status of one run of ``argv``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
    finally:
        os.close(devnull)
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def summary(name: str, walls: list[float], cpus: list[float]) -> str:
    ms = [w * 1000 for w in walls]
    return (
        f"{name}: median {statistics.median(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms, "
        f"min {min(ms):.1f} ms, CPU median {statistics.median(cpus) * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=100, help="runs of each command (100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs of each first (5)")
    parser.add_argument("--lvscheck", default="/usr/bin/lvscheck", help="the installed command")
    parser.add_argument("--python", default="/usr/bin/python3", help="the baseline interpreter")
    args = parser.parse_args()

    with TemporaryDirectory() as tmp, start_nginx(Path(tmp) / "nginx") as nginx:
        check = [
            args.lvscheck, "run", "http", f"127.0.0.1:{nginx.http_port}",
            "request=/test.html", "receive=Still alive",
        ]  # fmt: skip
        baseline = [args.python, "-I", "-c", "import asyncio, ssl"]
        wall, _, code = run_once(check)
        if code != 0:
            print(f"{' '.join(check)} exited {code}: is nginx serving /test.html?", file=sys.stderr)
            return 1
        for _ in range(args.warmup):
            run_once(check)
            run_once(baseline)
        load_before = os.getloadavg()
        results: dict[str, tuple[list[float], list[float]]] = {"check": ([], []), "baseline": ([], [])}
        for _ in range(args.runs):  # A B A B ...
            for name, argv in (("check", check), ("baseline", baseline)):
                wall, cpu, code = run_once(argv)
                results[name][0].append(wall)
                results[name][1].append(cpu)
        load_after = os.getloadavg()

    print(f"{args.runs} runs each, A B A B; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after")  # fmt: skip
    print(summary(" ".join(check[:3]) + " ...", *results["check"]))
    print(summary(" ".join(baseline[:3]) + ' "import asyncio, ssl"', *results["baseline"]))
    (cw, cc), (bw, bc) = results["check"], results["baseline"]
    print(
        f"ratio: medians {statistics.median(cw) / statistics.median(bw):.2f}x, "
        f"means {statistics.fmean(cw) / statistics.fmean(bw):.2f}x, "
        f"minimums {min(cw) / min(bw):.2f}x, "
        f"CPU medians {statistics.median(cc) / statistics.median(bc):.2f}x (budget 1.2x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
