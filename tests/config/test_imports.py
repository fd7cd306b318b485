"""No import cycle in lvscheck: the config package loads one way (lexer -> parser -> resolve).

Two proofs: the graph of imports that run when a module is imported (module level,
outside ``if TYPE_CHECKING:``; imports inside functions run later and are left out)
has no cycle, and every module of the config package imports first in a fresh
interpreter (a cycle that matters fails there with a partially initialised module).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lvscheck

SRC = Path(lvscheck.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


#: Deferred imports allowed to point back (module, function): none today.
_SHIMS: set[tuple[str, str]] = set()


def _imports(name: str, tree: ast.Module, *, deferred: bool) -> list[ast.Import | ast.ImportFrom]:
    """Imports executed when the module runs (module level, under if/try, not TYPE_CHECKING);
    with ``deferred``, also those inside functions (they run later, but still bind the modules)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            pending.extend(node.orelse if _is_type_checking(node.test) else [*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With | ast.For | ast.While):
            pending.extend([*node.body, *getattr(node, "orelse", [])])
        elif (
            deferred
            and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and (name, node.name) not in _SHIMS
        ):
            pending.extend(node.body)
    return found


def _edges(name: str, path: Path, known: set[str], *, deferred: bool = False) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _imports(name, ast.parse(path.read_text()), deferred=deferred):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        out |= {t for t in targets if t in known and t != name}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_lvscheck() -> None:
    modules = _modules(SRC)
    graph = {name: _edges(name, path, set(modules)) for name, path in modules.items()}
    assert "lvscheck.config.resolve" in graph["lvscheck.config.load"]  # the walk sees imports
    assert _cycle(graph) is None


def test_the_config_package_loads_one_way() -> None:
    """lexer -> parser -> resolve: no step imports a later one, not even inside a function."""
    modules = _modules(SRC / "config")
    graph = {name: _edges(name, path, set(modules), deferred=True) for name, path in modules.items()}
    graph["lvscheck.config"] -= {"lvscheck.config.load"}  # load_config() is the entry point
    assert _cycle(graph) is None

    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    c = "lvscheck.config."
    assert not reaches(c + "lexer") & {c + "parser", c + "resolve", c + "load"}
    assert not reaches(c + "parser") & {c + "resolve", c + "load", c + "translate"}
    assert not reaches(c + "resolve") & {c + "load", c + "translate"}
    assert not reaches(c + "model") & {c + "parser", c + "resolve", c + "translate", c + "load"}


@pytest.mark.parametrize("module", sorted(_modules(SRC / "config")))
def test_each_config_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_an_ipv4_config_loads_without_importing_ipaddress() -> None:
    """lvscheck-ldirectord's cold start parses the config: the common case stays cheap."""
    code = (
        "import sys\n"
        "from lvscheck.config import parse_text, plans\n"
        "plans(parse_text('virtual=10.0.0.1:80\\n    real=10.0.0.2->10.0.0.9:80 gate\\n'))\n"
        "print('ipaddress' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
