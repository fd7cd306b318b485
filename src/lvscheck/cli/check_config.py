"""``lvscheck check-config FILE``: validate an ldirectord.cf like ``nginx -t``.

Takes the one road every command takes (:mod:`lvscheck.config.prepare`): every
rule ldirectord applies, every check prepared by its check type, the pools laid
out.  Prints every warning and error of the file in one pass and exits 1, or a
summary and exits 0.  ``lvscheck daemon --check`` gives the same verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from lvscheck.errors import ConfigError

__all__ = ["add_arguments", "command_check_config"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lvscheck.cli.argtypes import NonEmpty

    parser.add_argument("file", metavar="FILE", type=NonEmpty(), help="the ldirectord.cf to check")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors (and warnings with -w)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--syntax-only",
        action="store_true",
        help="do not load the check types (skip validating check options)",
    )


def _summary(prepared: Any) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    managed = {id(slot.plan) for slot in prepared.layout.slots.values()}
    for p in prepared.plans:
        plan = p.plan
        if id(plan) not in managed:
            kinds["not managed"] += 1
        elif plan.spec is not None:
            kinds[plan.spec.check] += 1
        elif plan.fixed is not None:
            kinds[f"none ({plan.fixed.value})"] += 1
    virtuals = []
    for v in prepared.config.virtuals:
        pool = prepared.layout.pools[v.key]
        virtuals.append(
            {
                "line": v.line,
                "virtual": v.name,
                "protocol": v.protocol,
                "scheduler": v.scheduler,
                "service": v.service,
                "checktype": v.checktype if v.combined is None else str(v.combined),
                "reals": len(pool.slots),
                "quiescent": v.quiescent,
            }
        )
    return {"virtuals": virtuals, "reals": prepared.layout.reals, "checks": dict(sorted(kinds.items()))}


def command_check_config(args: argparse.Namespace) -> int:
    """The verdict of the one road (:func:`lvscheck.config.prepare.read`): the daemon's verdict."""
    from lvscheck.config.prepare import read

    path: str = args.file
    try:
        prepared = read(path, syntax_only=args.syntax_only)
    except ConfigError as exc:
        warnings = list(exc.warnings)
        if args.json:
            print(json.dumps({"file": path, "ok": False, "errors": list(exc.problems), "warnings": warnings}))
        else:
            for warning in warnings:
                print(f"lvscheck: [warn] {warning}", file=sys.stderr)
            for problem in exc.problems:
                print(f"lvscheck: [error] {problem}", file=sys.stderr)
            count = len(exc.problems)
            print(
                f"lvscheck: configuration file {path} test failed ({count} error{'s' if count != 1 else ''})",
                file=sys.stderr,
            )
        return 1
    warnings = [str(w) for w in prepared.warnings]
    summary = _summary(prepared)
    if args.json:
        print(json.dumps({"file": path, "ok": True, "errors": [], "warnings": warnings, **summary}))
        return 0
    out = sys.stderr
    for warning in warnings:
        print(f"lvscheck: [warn] {warning}", file=out)
    if not args.quiet:
        print(f"lvscheck: the configuration file {path} syntax is ok", file=out)
        for v in summary["virtuals"]:
            print(
                f"  line {v['line']:>4}  {v['virtual']:<24} {v['protocol']} {v['scheduler']:<5} "
                f"service={v['service']} checktype={v['checktype']} reals={v['reals']}",
                file=out,
            )
        checks = ", ".join(f"{name} {count}" for name, count in summary["checks"].items()) or "none"
        nv = len(summary["virtuals"])
        print(
            f"lvscheck: {nv} virtual service{'s' if nv != 1 else ''}, {summary['reals']} real "
            f"server{'s' if summary['reals'] != 1 else ''}; checks: {checks}; {len(warnings)} "
            f"warning{'s' if len(warnings) != 1 else ''}",
            file=out,
        )
        print(f"lvscheck: configuration file {path} test is successful", file=out)
    return 0
