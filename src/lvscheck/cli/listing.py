"""``lvscheck checks`` and ``lvscheck plugins``."""

from __future__ import annotations

import argparse
import json

from lvscheck.errors import UnknownCheckError

__all__ = ["command_checks", "command_plugins"]


def command_checks(args: argparse.Namespace) -> int:
    from lvscheck.plugins import default_host

    host = default_host()
    types = host.all_check_types()
    if args.name:
        types = [t for t in types if t.name == args.name]
        if not types:
            raise UnknownCheckError(
                f"unknown check type {args.name!r}; installed: {', '.join(host.registry)}"
            )
    if args.json:
        out = [
            {
                "name": t.name,
                "summary": t.summary,
                "plugin": host.registry.owner(t.name),
                "default_port": t.default_port,
                "options": [
                    {"name": o.name, "default": o.default, "help": o.help, "secret": o.secret}
                    for o in t.all_options()
                ],
            }
            for t in types
        ]
        print(json.dumps(out, indent=2))
        return 0
    for t in types:
        port = f", port {t.default_port}" if t.default_port else ""
        print(f"{t.name}  ({host.registry.owner(t.name)}{port})")
        print(f"    {t.summary}")
        for o in t.options:
            default = f" [default {o.default}]" if o.default is not None else ""
            print(f"    {o.name:<18} {o.help}{default}")
        print()
    print("Every check also takes: checkport, checktimeout, negotiatetimeout, connecttimeout.")
    return 0


def command_plugins() -> int:
    from lvscheck.plugins import default_host

    host = default_host()
    host.load_all()
    rows = []
    for name in host.plugin_names():
        checks = [c for c in host.registry if host.registry.owner(c) == name]
        row: dict[str, object] = {"name": name, "checks": checks, "hooks": host.plugin_hooks(name)}
        dist = host.plugin_distribution(name)
        if dist is not None:
            row["distribution"], row["version"] = dist
        rows.append(row)
    print(json.dumps(rows, indent=2))
    return 0
