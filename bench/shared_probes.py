"""Probes per second with and without one-probe-per-real: 1,000 reals, each behind 5 virtuals.

One Debian nginx answers for every real: it listens on 0.0.0.0:PORT, allows only
127.0.0.0/8, and the reals are the loopback addresses 127.0.x.y; its
``stub_status`` counts the connections it accepts, so probes are counted at the
server.  ``lvscheck daemon --ipvs none`` runs the config (5 virtuals x the same
1,000 reals, ``checktype=connect``, interval 5 s), alternately with probe sharing
(the default) and with ``#lvscheck: shareprobe=no``, A B A B.  Printed per run:
connections/s accepted by nginx, checks/s the daemon ran, the daemon's CPU.

    .venv/bin/python bench/shared_probes.py [--reals 1000] [--virtuals 5] [--interval 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _daemon import cpu_seconds, daemon, free_port, nginx


def write_config(path: Path, reals: int, virtuals: int, port: int, interval: float, share: bool) -> None:
    lines = [
        "checktimeout=3",
        "failurecount=3",
        "quiescent=yes",
        f"#lvscheck: interval={interval} jitter=0.1 rise=1 shareprobe={'yes' if share else 'no'}",
        "",
    ]
    for v in range(virtuals):
        lines.append(f"virtual=10.201.0.{v + 1}:80")
        lines += [f"\treal=127.0.{n // 250 + 1}.{n % 250 + 1}:{port} masq 1" for n in range(reals)]
        lines += ["\tchecktype=connect", ""]
    path.write_text("\n".join(lines))


def accepts(status_port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{status_port}/status", timeout=10).read().decode()
    m = re.search(r"^\s*(\d+)\s+\d+\s+\d+", text, re.M)  # "accepts handled requests"
    assert m is not None, text
    return int(m[1])


def run(d: Path, cf: Path, status_port: int, warmup: float, seconds: float) -> dict[str, float]:
    # unpinned, no metrics port, --loop auto and --max-in-flight 512 (the daemon's defaults),
    # as this bench always ran it
    extra = ("--max-in-flight", "512")
    with daemon(d, cf, cpus="", loop="auto", metrics=False, extra=extra) as dm:
        dm.wait_for_socket()
        time.sleep(warmup)
        s0, a0, c0, t0 = dm.query(), accepts(status_port), cpu_seconds(dm.pid), time.monotonic()
        time.sleep(seconds)
        s1, a1, c1, t1 = dm.query(), accepts(status_port), cpu_seconds(dm.pid), time.monotonic()
        up = sum(r["state"] == "up" for v in s1["virtuals"] for r in v["reals"])
        return {
            "accepted/s": (a1 - a0) / (t1 - t0),
            "checks/s": (s1["checks"] - s0["checks"]) / (t1 - t0),
            "cpu %": (c1 - c0) / (t1 - t0) * 100,
            "up": up,
        }


def rounds(args: argparse.Namespace, d: Path, port: int, status_port: int) -> None:
    """Shared and separate probes, A B A B, one line per run."""
    slots = args.reals * args.virtuals
    print(
        f"{args.reals} reals x {args.virtuals} virtuals = {slots} (virtual, real) pairs, connect checks, "
        f"interval {args.interval:g} s; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"expected: {slots / args.interval:.0f} probes/s without sharing, "
        f"{args.reals / args.interval:.0f} with"
    )
    warmup = args.interval * 2
    for r in range(args.rounds):
        for share in (True, False):
            cf = d / f"bench-{share}.cf"
            write_config(cf, args.reals, args.virtuals, port, args.interval, share)
            got = run(d, cf, status_port, warmup, args.seconds)
            label = "shared  " if share else "separate"
            print(
                f"round {r + 1} {label} nginx accepted {got['accepted/s']:7.1f}/s  daemon checks "
                f"{got['checks/s']:7.1f}/s  daemon CPU {got['cpu %']:5.1f} %  reals up {got['up']:.0f}"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reals", type=int, default=1000)
    ap.add_argument("--virtuals", type=int, default=5)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-"))
    status_port = free_port()
    status = f"server {{ listen 127.0.0.1:{status_port}; location = /status {{ stub_status; }} }}"
    try:
        with nginx(d, cpus="", servers=status) as port:
            rounds(args, d, port, status_port)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
