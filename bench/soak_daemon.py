"""Soak of ``lvscheck daemon`` with healthy and hostile reals mixed; then SIGTERM, every run.

Healthy reals: one Debian nginx on 0.0.0.0:PORT (127.0.0.0/8 allowed) checked as
``http`` at the loopback addresses 127.0.2.x.  Hostile reals: the cases of
tests/peers/hostile_protocols.py (a PostgreSQL server streaming ParameterStatus
frames, an LDAP server announcing a 4 GiB BER length, endless LDAP entries,
endless 16 MB MySQL continuation packets, PostgreSQL notices after login, an
endless SMTP banner, control bytes, an endless HTTP body), served by a child
process of their own, several copies each.  The daemon runs with ``--ipvs none``
(checks and state, no kernel table), ``checkinterval=1``.

Each run starts a daemon, lets it warm up, then for ``--seconds`` asks its control
socket for ``status`` every 0.25 s (round-trip time measured here) and samples its
RSS; then sends SIGTERM and times the exit.  Reported per run: state changes of
healthy reals after their first up (must be 0), hostile reals ever up (must be 0),
``status`` round trip p50/max (must be < 100 ms), RSS after warm-up and at the end
(flat), the time from SIGTERM to exit and the exit status (every run must stop).

    .venv/bin/python bench/soak.py --daemon [--runs 10] [--seconds 30] [--healthy 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _daemon import cpu_seconds, daemon, nginx, rss_mb, runqueue_wait_s

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.hostile_protocols import BY_NAME, serving_elsewhere

#: Hostile catalogue cases in the soak, and how many reals of each.
HOSTILE = {
    "pg-parameter-stream": 4,
    "ldap-huge-ber": 4,
    "ldap-endless-entries": 3,
    "mysql-endless-continuation": 2,
    "pg-notices-after-login": 2,
    "smtp-endless-banner": 2,
    "smtp-control-bytes": 2,
    "ldap-control-bytes": 2,
    "http-endless-body": 2,
    "http-chunk-overflow": 2,
}


_SERVICE = {"pgsql": "pgsql", "ldap": "ldap", "mysql": "mysql", "smtp": "smtp", "http": "http"}


def write_config(path: Path, healthy: list[str], nginx_port: int, hostile: dict[str, list[int]]) -> None:
    lines = [
        "checkinterval=1",
        "checktimeout=2",
        "negotiatetimeout=2",
        "failurecount=2",
        "quiescent=yes",
        "#lvscheck: interval=1 jitter=0.1 rise=1",
        "",
    ]
    per_virtual = 25
    for v in range(0, len(healthy), per_virtual):
        lines.append(f"virtual=10.77.0.{v // per_virtual + 1}:80")
        lines += [f"\treal={h}:{nginx_port} masq 1" for h in healthy[v : v + per_virtual]]
        lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    for i, (name, ports) in enumerate(sorted(hostile.items())):
        case = BY_NAME[name]
        lines.append(f"virtual=10.77.1.{i + 1}:80")
        lines += [f"\treal=127.0.0.1:{p} masq 1" for p in ports]
        lines.append(f"\tservice={_SERVICE[case.check]}")
        extra = " ".join(shlex.quote(f"{k}={v}") for k, v in case.options.items())
        if extra:
            lines.append(f"\t#lvscheck: {extra}")
        lines.append("")
    path.write_text("\n".join(lines))


def one_run(
    d: Path, cf: Path, seconds: float, warmup: float, healthy: set[str], label: str
) -> dict[str, Any]:
    events = d / "events.jsonl"
    events.unlink(missing_ok=True)
    # unpinned, no metrics port, --loop auto and --max-in-flight 512 (the daemon's defaults),
    # as this soak always ran it
    extra = ("--event-log", str(events), "--max-in-flight", "512")
    with daemon(d, cf, cpus="", loop="auto", metrics=False, extra=extra) as dm:
        with contextlib.suppress(SystemExit):  # no socket within 30 s: measured (and failing) all the same
            dm.wait_for_socket(timeout=30)
        time.sleep(warmup)
        rss_start = rss_mb(dm.pid)[0]
        cpu0, wait0, t_start = cpu_seconds(dm.pid), runqueue_wait_s(dm.pid), time.monotonic()
        rtts: list[float] = []
        rss_max = rss_start
        hostile_up: set[str] = set()
        series: list[float] = []
        next_sample = time.monotonic()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if time.monotonic() >= next_sample:
                series.append(round(rss_mb(dm.pid)[0], 1))
                next_sample += max(5.0, seconds / 12)
            rtt, answer = dm.timed()
            rtts.append(rtt)
            rss_max = max(rss_max, rss_mb(dm.pid)[0])
            for v in answer["virtuals"]:
                for r in v["reals"]:
                    if r["real"].split(":")[0] not in healthy and r["state"] == "up":
                        hostile_up.add(r["real"])
            time.sleep(0.25)
        rss_end = rss_mb(dm.pid)[0]
        took = time.monotonic() - t_start
        cpu_pct = 100 * (cpu_seconds(dm.pid) - cpu0) / took
        wait_pct = 100 * (runqueue_wait_s(dm.pid) - wait0) / took
        t0 = time.monotonic()
        dm.proc.send_signal(signal.SIGTERM)
        try:
            rc: int | None = dm.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
            dm.proc.kill()
        stop_s = time.monotonic() - t0
    changes = 0
    first_up: set[str] = set()
    for line in events.read_text().splitlines() if events.exists() else ():
        ev = json.loads(line)
        real = str(ev.get("real", ""))
        if ev.get("event") not in ("up", "down") or real.split(":")[0] not in healthy:
            continue
        if ev["event"] == "up" and real not in first_up:
            first_up.add(real)  # the start: unknown -> up
            continue
        changes += 1
    rtts.sort()
    return {
        "reals": label,
        "healthy_state_changes": changes,
        "hostile_reals_ever_up": len(hostile_up),
        "status_ms_p50": round(1000 * statistics.median(rtts), 1),
        "status_ms_max": round(1000 * rtts[-1], 1),
        "status_queries": len(rtts),
        "rss_mb_after_warmup": round(rss_start, 1),
        "rss_mb_max": round(rss_max, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_series": series,
        "daemon_cpu_pct": round(cpu_pct, 1),
        "daemon_waiting_for_cpu_pct": round(wait_pct, 1),
        "sigterm_exit_s": round(stop_s, 2),
        "exit_status": rc,
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--healthy", type=int, default=100)
    ap.add_argument(
        "--ab",
        action="store_true",
        help="alternate mixed runs with healthy-only runs (the same healthy reals)",
    )
    args = ap.parse_args(argv)
    d = Path(tempfile.mkdtemp(prefix="lvscheck-soak-daemon-"))
    healthy = [f"127.0.2.{i + 1}" for i in range(args.healthy)]
    rows = []
    try:
        with (
            nginx(d, cpus="") as port,
            serving_elsewhere(list(HOSTILE), copies=max(HOSTILE.values())) as ports,
        ):
            hostile = {name: ports[name][:n] for name, n in HOSTILE.items()}
            cf = d / "soak.cf"
            write_config(cf, healthy, port, hostile)
            calm = d / "calm.cf"
            write_config(calm, healthy, port, {})
            n_hostile = sum(len(p) for p in hostile.values())
            print(
                f"soak: {args.healthy} healthy http reals + {n_hostile} hostile reals "
                f"({', '.join(f'{n} {k}' for k, n in HOSTILE.items())}), checkinterval=1, "
                f"{args.runs} runs of {args.seconds:g} s (+{args.warmup:g} s warm-up); "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            for i in range(args.runs):
                mixed = not args.ab or i % 2 == 0
                config, label = (cf, "mixed") if mixed else (calm, "healthy only")
                row = one_run(d, config, args.seconds, args.warmup, set(healthy), label)
                rows.append(row)
                print(f"run {i + 1}: {json.dumps(row)}", flush=True)
    finally:
        if rows:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"no run finished: the daemon's log is in {d}/daemon.log", file=sys.stderr)
    stopped = [r for r in rows if r["exit_status"] is not None]
    print(
        f"stopped on SIGTERM: {len(stopped)} of {len(rows)} runs; exit after SIGTERM "
        f"max {max((r['sigterm_exit_s'] for r in stopped), default=0):.2f} s, "
        f"median {statistics.median([r['sigterm_exit_s'] for r in stopped] or [0]):.2f} s"
    )
    print(
        f"healthy state changes: {sum(r['healthy_state_changes'] for r in rows)}; hostile reals ever up: "
        f"{sum(r['hostile_reals_ever_up'] for r in rows)}; status max "
        f"{max(r['status_ms_max'] for r in rows):.1f} ms; RSS growth (end - after warm-up) max "
        f"{max(r['rss_mb_end'] - r['rss_mb_after_warmup'] for r in rows):+.1f} MB"
    )
    bad = (
        len(stopped) < len(rows)
        or any(r["healthy_state_changes"] or r["hostile_reals_ever_up"] for r in rows)
        or any(r["status_ms_max"] >= 100 for r in rows)
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
