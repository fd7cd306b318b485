"""``lvscheck run --config FILE``: one round of every check in an ldirectord.cf.

Every real of every virtual is checked once, concurrently (the engine's caps
apply).  On a terminal a progress line is kept on stderr; then a table
(virtual, real, check, state, weight, latency, reason) is printed, or with
``--json`` a JSON array of result objects.  Exit status: the worst state
(0 up, 1 degraded, 2 down), 3 when the config cannot be used.

Reals that ldirectord never checks (``checktype=on``/``off``, ``service=none``)
are listed with check ``-`` and the state ldirectord would give them;
``checktype=combined N`` runs its negotiate check (the first check of a cycle
always is).  A check lvscheck cannot run (``external-perl``) and a duplicate
real are listed as ``skipped`` (weight ``-``) and do not count towards the exit
status; a real held by a ``maintenancedir`` entry is down and not checked, as
the daemon treats it.  The file is read by the one road
(:mod:`lvscheck.config.prepare`), so it is refused exactly when the daemon would
refuse it.
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
    from lvscheck.config.prepare import read

    try:
        # the one road: refused here iff check-config and the daemon refuse it; no daemon keeps
        # via=vip's private services for a one-shot round, so such reals are checked on their RIP
        prepared = read(args.config, via_marks=False)
    except ConfigError as exc:
        for warning in exc.warnings:
            print(f"lvscheck: [warn] {warning}", file=sys.stderr)
        for problem in exc.problems:
            print(f"lvscheck: [error] {problem}", file=sys.stderr)
        return EXIT_UNKNOWN
    warnings = prepared.warnings
    if warnings and getattr(args, "verbose", False):
        for item in warnings:
            print(f"lvscheck: [warn] {item}", file=sys.stderr)
    elif warnings:
        count = len(warnings)
        print(
            f"lvscheck: {count} warning{'s' if count != 1 else ''} about {args.config} "
            f"(`lvscheck check-config {args.config}` lists them)",
            file=sys.stderr,
        )
    from lvscheck.daemon.actions import list_maintenancedir

    held = _maintenance(prepared, list_maintenancedir(prepared.config.settings.maintenancedir))
    managed = {id(slot.plan): sid for sid, slot in prepared.layout.slots.items()}
    to_run = [p.check for p in prepared.plans if p.check is not None and _runs(p, managed, held)]
    progress = _Progress(len(to_run))

    async def round_() -> list[Any]:
        from lvscheck.cli.run import cpu_budget
        from lvscheck.engine import Engine

        engine = Engine(on_result=progress, cpu_budget=cpu_budget(args))
        return await engine.run_many(to_run)

    try:
        results = asyncio.run(round_()) if to_run else []
    finally:
        progress.close()
    rows, codes = _rows(prepared, iter(results), managed, held)
    if args.json:
        print(json.dumps(rows, sort_keys=True, default=str))
    elif rows:
        print(render_table(rows))
    else:
        print(f"lvscheck: {args.config} has no real servers")
    sys.stdout.flush()
    return max(codes, default=0)


def _maintenance(prepared: Any, names: set[str]) -> dict[str, str]:
    from lvscheck.daemon.actions import maintenance_matches

    return maintenance_matches({sid: slot.dest for sid, slot in prepared.layout.slots.items()}, names)


def _runs(p: Any, managed: dict[int, str], held: dict[str, str]) -> bool:
    sid = managed.get(id(p.plan))
    return sid is not None and sid not in held


_NAGIOS = {"up": 0, "degraded": 1, "down": 2}


def _rows(
    prepared: Any, results: Any, managed: dict[int, str], held: dict[str, str]
) -> tuple[list[dict[str, Any]], list[int]]:
    rows: list[dict[str, Any]] = []
    codes: list[int] = []
    for p in prepared.plans:
        plan = p.plan
        row: dict[str, Any] = {"virtual": plan.virtual.name, "real": plan.real.address, "latency_ms": None}
        sid = managed.get(id(plan))
        if sid is None:
            why = plan.unsupported or "a duplicate of an earlier real= of this virtual (not managed)"
            row |= {"check": "-", "state": "skipped", "weight": "-", "reason": why}
        elif sid in held:
            row |= {
                "check": "-",
                "state": "down",
                "weight": 0,
                "reason": f"in maintenance ({held[sid]} in maintenancedir): not checked",
            }
            codes.append(_NAGIOS["down"])
        elif p.check is not None:
            result = next(results)
            row |= {
                "check": result.check,
                "state": result.state.value,
                "weight": result.weight,
                "latency_ms": result.latency_ms,
                "reason": result.reason,
            }
            if result.details:
                row["details"] = dict(result.details)
            codes.append(_NAGIOS[result.state.value])
        else:
            state = plan.fixed.value if plan.fixed is not None else "up"
            kind = plan.virtual.checktype
            why = f"checktype={kind}" if kind in ("on", "off") else "service=none"
            row |= {
                "check": "-",
                "state": state,
                "weight": plan.real.weight if state == "up" else 0,
                "reason": f"not checked ({why}): ldirectord counts it {state}",
            }
            codes.append(_NAGIOS[state])
        rows.append(row)
    return rows, codes
