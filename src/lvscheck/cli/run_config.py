"""``lvscheck run --config FILE``: one round of every check in an ldirectord.cf.

Every real of every virtual is checked once, concurrently (the engine's caps
apply).  On a terminal a progress line is kept on stderr; then a table
(virtual, real, check, state, weight, latency, reason) is printed, or with
``--json`` a JSON array of result objects.  Exit status: the worst state
(0 up, 1 degraded, 2 down), 3 when the config cannot be used.

Reals that ldirectord never checks (``checktype=on``/``off``, ``service=none``)
are listed with check ``-`` and the state ldirectord would give them;
``checktype=combined N`` runs its negotiate check (the first check of a cycle
always is).  A check lvscheck cannot run (``external-perl``) is listed as
``skipped`` and does not count towards the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from lvscheck.errors import ConfigError

__all__ = ["command_run_config", "render_table"]

EXIT_UNKNOWN = 3


def render_table(rows: list[dict[str, Any]]) -> str:
    headers = ("VIRTUAL", "REAL", "CHECK", "STATE", "WEIGHT", "LATENCY", "REASON")
    cells = [
        [
            str(r["virtual"]),
            str(r["real"]),
            str(r["check"]),
            str(r["state"]),
            str(r["weight"]),
            "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ms",
            str(r["reason"]),
        ]
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for c in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
    return "\n".join(lines)


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.down = 0
        self.enabled = sys.stderr.isatty()

    def __call__(self, result: Any) -> None:
        self.done += 1
        if result.state.value == "down":
            self.down += 1
        if self.enabled:
            sys.stderr.write(f"\rlvscheck: checked {self.done}/{self.total}, {self.down} down\x1b[K")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def command_run_config(args: argparse.Namespace) -> int:
    from lvscheck.config import load_config
    from lvscheck.config.prepare import prepare

    try:
        config = load_config(args.config)
        prepared, warnings = prepare(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"lvscheck: [error] {problem}", file=sys.stderr)
        return EXIT_UNKNOWN
    all_warnings = (*config.warnings, *warnings)
    if all_warnings and getattr(args, "verbose", False):
        for warning in all_warnings:
            print(f"lvscheck: [warn] {warning}", file=sys.stderr)
    elif all_warnings:
        count = len(all_warnings)
        print(
            f"lvscheck: {count} warning{'s' if count != 1 else ''} about {args.config} "
            f"(`lvscheck check-config {args.config}` lists them)",
            file=sys.stderr,
        )
    from lvscheck.engine import Engine

    to_run = [p.check for p in prepared if p.check is not None]
    progress = _Progress(len(to_run))

    async def round_() -> list[Any]:
        engine = Engine(on_result=progress)
        return await engine.run_many(to_run)

    try:
        results = asyncio.run(round_()) if to_run else []
    finally:
        progress.close()
    by_check = iter(results)
    rows: list[dict[str, Any]] = []
    codes: list[int] = []
    nagios = {"up": 0, "degraded": 1, "down": 2}
    for p in prepared:
        plan = p.plan
        row: dict[str, Any] = {"virtual": plan.virtual.name, "real": plan.real.address}
        if p.check is not None:
            result = next(by_check)
            row |= {
                "check": result.check,
                "state": result.state.value,
                "weight": result.weight,
                "latency_ms": result.latency_ms,
                "reason": result.reason,
            }
            if result.details:
                row["details"] = dict(result.details)
            codes.append(nagios[result.state.value])
        elif plan.fixed is not None:
            state = plan.fixed.value
            kind = plan.virtual.checktype
            why = f"checktype={kind}" if kind in ("on", "off") else "service=none"
            row |= {
                "check": "-",
                "state": state,
                "weight": plan.real.weight if state == "up" else 0,
                "latency_ms": None,
                "reason": f"not checked ({why}): ldirectord counts it {state}",
            }
            codes.append(nagios[state])
        else:
            row |= {
                "check": "-",
                "state": "skipped",
                "weight": None,
                "latency_ms": None,
                "reason": plan.unsupported or "not checked",
            }
        rows.append(row)
    if args.json:
        print(json.dumps(rows, sort_keys=True, default=str))
    elif rows:
        print(render_table(rows))
    else:
        print(f"lvscheck: {args.config} has no real servers")
    sys.stdout.flush()
    return max(codes, default=0)
