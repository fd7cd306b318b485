"""The plugin-author layer sits below the engine: no module of lvscheck.plugin imports the engine,
the plugin manager, the daemon, the config, the adapters, the CLI or the built-in check types (not
even inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import lvscheck.plugin

FORBIDDEN = (
    "lvscheck.engine",
    "lvscheck.plugins",
    "lvscheck.daemon",
    "lvscheck.config",
    "lvscheck.adapters",
    "lvscheck.cli",
    # the built-in check types are plugins written on this layer, not part of it: wrappers that
    # work on any check type (agent=) are applied on the prepare road (PluginHost.prepare)
    "lvscheck.checks",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_plugin_layer_imports_nothing_above_it() -> None:
    package = Path(lvscheck.plugin.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {m.name for m in modules} >= {"check.py", "probe.py", "registry.py"}
    for module in modules:
        above = sorted(n for n in _imports(module) if n.startswith(FORBIDDEN))
        assert above == [], f"{module.name} imports {above}"
