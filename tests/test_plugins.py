"""The plugin framework: entry points, clashes, blocking, lazy imports, the public API and its docs.

The installed example plugin (``plugins/lvscheck-example``, distribution
``lvscheck-redis``) is checked the way an operator meets it: through the
``lvscheck`` command in a subprocess, against Debian's real ``redis-server``.
Plugins that must misbehave (clashes, misspelt hooks, failing imports) are
throwaway modules: registered on a fresh ``PluginHost(entry_points=False)``, or
installed as a fake distribution (a ``.dist-info`` directory on PYTHONPATH) so
that the real entry-point machinery finds them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.peers import free_port, require_binary, running

import lvscheck
from lvscheck import (
    Check,
    CheckRegistry,
    CheckSpec,
    Outcome,
    PluginError,
    PluginHost,
    Result,
    State,
    Target,
    hookspecs,
)
from lvscheck import errors as errors_module
from lvscheck.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

#: Modules no check type may import before one of its checks runs.
DRIVERS = (
    "aiomysql",
    "asyncpg",
    "ldap3",
    "aiosmtplib",
    "dns",
    "pyrad",
    "oracledb",
    "pyroute2",
    "httpx",
    "hpack",  # the grpc check's header decoder
    "grpc",  # grpcio: only the tests' gRPC server uses it
    "lvscheck_redis.protocol",
)


def _environ(env: dict[str, str] | None, pythonpath: Path | None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "LVSCHECK_DISABLE_PLUGINS"}
    if pythonpath is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    return environ


def cli(
    *args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``lvscheck ARGS`` as a process, with a clean plugin environment."""
    return subprocess.run(
        [sys.executable, "-m", "lvscheck", *args],
        capture_output=True,
        text=True,
        env=_environ(env, pythonpath),
        timeout=60,
        check=False,
    )


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_environ(None, None),
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def fake_distribution(where: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Install a distribution by hand: a ``.dist-info`` with entry points, and its modules."""
    info = where / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    for module, source in modules.items():
        (where / f"{module}.py").write_text(textwrap.dedent(source))


def plugin_module(name: str, **functions: Callable[..., Any]) -> types.ModuleType:
    """A throwaway plugin module holding ``functions``."""
    module = types.ModuleType(name)
    for attr, function in functions.items():
        setattr(module, attr, function)
    return module


def check_class(check_name: str) -> type[Check]:
    class Throwaway(Check):
        name = check_name
        default_port = 1

        async def probe(self, probe: Any) -> Outcome:
            return Outcome.up()

    return Throwaway


def registering(*classes: type[Check]) -> Callable[[CheckRegistry], None]:
    @lvscheck.hookimpl
    def lvscheck_register_checks(register: CheckRegistry) -> None:
        for cls in classes:
            register.add(cls)

    return lvscheck_register_checks


# -- the installed example plugin, through the command ----------------------------------------


@pytest.fixture(scope="module")
def example_plugin() -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("lvscheck-redis")
    except PackageNotFoundError:
        pytest.skip("the example plugin is not installed: pip install -e plugins/lvscheck-example")


@pytest.fixture(scope="module")
def redis_port(example_plugin: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = require_binary("redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no", "--save", ""]
    with running([*argv, "--dir", str(workdir)], port, workdir):
        yield port


def test_example_plugin_is_listed_by_checks(example_plugin: None) -> None:
    out = cli("checks", "redis")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("redis  (lvscheck_redis, port 6379)\n")
    assert re.search(r"^    passwd +password", out.stdout, re.M)
    listed = json.loads(cli("checks", "--json").stdout)
    [redis] = [c for c in listed if c["name"] == "redis"]
    assert redis["plugin"] == "lvscheck_redis"
    assert {"name": "passwd", "default": None, "help": "password: send AUTH before PING", "secret": True} in (
        redis["options"]
    )
    assert {"connect", "http", "https"} <= {c["name"] for c in listed}


def test_example_plugin_is_listed_by_plugins(example_plugin: None) -> None:
    out = cli("plugins")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["lvscheck_redis"] == {
        "name": "lvscheck_redis",
        "checks": ["redis"],
        "hooks": ["lvscheck_register_checks"],
        "distribution": "lvscheck-redis",
        "version": "0.1.0",
    }
    assert plugins["lvscheck.checks.http"] == {
        "name": "lvscheck.checks.http",
        "checks": ["http", "https"],
        "hooks": ["lvscheck_register_checks"],
    }


def test_example_plugin_runs(redis_port: int) -> None:
    out = cli("run", "redis", f"127.0.0.1:{redis_port}", "role=master")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith(f"REDIS OK - 127.0.0.1:{redis_port} weight 1: PONG, role master | time=")
    down = cli("run", "--json", "redis", f"127.0.0.1:{redis_port}", "role=replica")
    assert down.returncode == 2
    assert json.loads(down.stdout)["reason"] == "role is master, expected replica"


def test_example_plugin_can_be_blocked(example_plugin: None) -> None:
    for blocked in ("redis", "lvscheck_redis", "something-else,lvscheck_redis"):
        out = cli("run", "redis", "127.0.0.1:1", env={"LVSCHECK_DISABLE_PLUGINS": blocked})
        assert out.returncode == 3
        assert out.stderr.startswith("lvscheck: unknown check type 'redis'; installed check types: ")
        listed = cli("checks", env={"LVSCHECK_DISABLE_PLUGINS": blocked})
        assert listed.returncode == 0, listed.stderr
        assert "redis" not in listed.stdout
        assert "http" in listed.stdout


# -- imports are a cost: nothing is imported before it is needed -----------------------------


def _modules_after(argv: list[str]) -> dict[str, Any]:
    """Run the ``lvscheck`` command in a fresh interpreter, counting entry-point scans and imports."""
    code = f"""
        import json, sys, importlib.metadata as md
        scans = []
        real = md.entry_points
        def counting(*args, **kwargs):
            scans.append(kwargs.get("group"))
            return real(*args, **kwargs)
        md.entry_points = counting
        from lvscheck.cli import main
        code = main({argv!r})
        print(json.dumps({{
            "exit": code,
            "scans": scans,
            "imported": [m for m in {DRIVERS!r} if m in sys.modules],
            "plugin": "lvscheck_redis" in sys.modules,
        }}))
    """
    return dict(json.loads(python(code).splitlines()[-1]))


def test_listing_checks_imports_no_driver(example_plugin: None) -> None:
    seen = _modules_after(["checks"])
    assert seen["exit"] == 0
    assert seen["plugin"], "lvscheck checks should have loaded the example plugin"
    assert seen["scans"] == [ENTRY_POINT_GROUP]
    assert seen["imported"] == []


def test_running_a_builtin_check_scans_no_entry_points() -> None:
    seen = _modules_after(["run", "http", f"127.0.0.1:{free_port()}"])
    assert seen["exit"] == 2  # nothing listens there: down
    assert seen["scans"] == [], "a built-in check type must be found without reading entry points"
    assert not seen["plugin"]
    assert seen["imported"] == []


def test_running_a_builtin_check_never_imports_importlib_metadata() -> None:
    """Stronger than counting scans: the entry-point machinery is not even imported."""
    code = f"""
        import sys
        from lvscheck.cli import main
        code = main(["run", "connect", "127.0.0.1:{free_port()}"])
        print(code, "importlib.metadata" in sys.modules)
    """
    assert python(code).splitlines()[-1] == "2 False"


def test_running_the_plugin_imports_only_its_own_driver(redis_port: int) -> None:
    seen = _modules_after(["run", "redis", f"127.0.0.1:{redis_port}"])
    assert seen["exit"] == 0
    assert seen["imported"] == ["lvscheck_redis.protocol"]


# -- plugins found through entry points: clashes and broken plugins ---------------------------

CLASHING = """
    import lvscheck

    class Clash(lvscheck.Check):
        name = "clashcheck"
        default_port = 1

    @lvscheck.hookimpl
    def lvscheck_register_checks(register):
        register.add(Clash)
"""


def test_two_installed_plugins_claiming_one_type(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "lvscheck-first", {"first": "lvscheck_first"}, {"lvscheck_first": CLASHING})
    fake_distribution(
        tmp_path, "lvscheck-second", {"second": "lvscheck_second"}, {"lvscheck_second": CLASHING}
    )
    out = cli("checks", pythonpath=tmp_path)
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert "check type 'clashcheck' is registered by two plugins: lvscheck_" in out.stderr
    assert "lvscheck_first" in out.stderr
    assert "lvscheck_second" in out.stderr
    # The message says how to get out of it, and that way works.
    blocked = re.search(r"LVSCHECK_DISABLE_PLUGINS=(\S+)\)", out.stderr)
    assert blocked is not None
    fixed = cli("checks", "clashcheck", pythonpath=tmp_path, env={"LVSCHECK_DISABLE_PLUGINS": blocked[1]})
    assert fixed.returncode == 0, fixed.stderr
    # A built-in check type does not even look at entry points, so it keeps working.
    assert cli("run", "connect", f"127.0.0.1:{free_port()}", pythonpath=tmp_path).returncode == 2


def test_plugin_that_fails_to_import(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "lvscheck-broken",
        {"broken": "lvscheck_broken"},
        {"lvscheck_broken": "import no_such_driver\n"},
    )
    out = cli("run", "broken", "127.0.0.1:1", pythonpath=tmp_path)
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert (
        "plugin 'broken' (lvscheck_broken, from the 'lvscheck' entry points) failed to import" in out.stderr
    )
    assert "No module named 'no_such_driver'" in out.stderr
    assert cli(
        "run", "broken", "127.0.0.1:1", pythonpath=tmp_path, env={"LVSCHECK_DISABLE_PLUGINS": "broken"}
    )


def test_installed_plugin_check_runs(tmp_path: Path) -> None:
    source = """
        import lvscheck

        class Hello(lvscheck.Check):
            name = "hello"
            summary = "says hello"
            options = (lvscheck.Option("greeting", "what to say", "hi"),)

            async def probe(self, probe):
                await probe.connect()
                return lvscheck.Outcome.up(self.opts["greeting"])

        @lvscheck.hookimpl
        def lvscheck_register_checks(register):
            register.add(Hello)
    """
    fake_distribution(tmp_path, "lvscheck-hello", {"hello": "lvscheck_hello"}, {"lvscheck_hello": source})
    out = cli("run", "--json", "hello", f"127.0.0.1:{free_port()}", "greeting=hey", pythonpath=tmp_path)
    assert json.loads(out.stdout)["reason"] == "connection refused"
    listed = cli("checks", "hello", pythonpath=tmp_path)
    assert listed.stdout.startswith("hello  (lvscheck_hello)\n    says hello\n")


# -- the framework in-process: a fresh host with throwaway plugins ----------------------------


def test_two_plugins_claiming_one_type_name_both() -> None:
    host = PluginHost(entry_points=False)
    host.register(plugin_module("first_plugin", lvscheck_register_checks=registering(check_class("same"))))
    assert host.registry.owner("same") == "first_plugin"
    second = plugin_module("second_plugin", lvscheck_register_checks=registering(check_class("same")))
    with pytest.raises(PluginError) as caught:
        host.register(second)
    message = str(caught.value)
    assert message.startswith(
        "check type 'same' is registered by two plugins: first_plugin and second_plugin"
    )
    assert message.endswith("(LVSCHECK_DISABLE_PLUGINS=second_plugin)")


def test_builtins_clash_like_any_plugin() -> None:
    host = PluginHost(entry_points=False)
    host.check_type("http")
    squatter = plugin_module("lvscheck_squatter", lvscheck_register_checks=registering(check_class("https")))
    with pytest.raises(PluginError, match=r"lvscheck\.checks\.http and lvscheck_squatter"):
        host.register(squatter)


def test_disable_plugins_blocks_a_plugin_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVSCHECK_DISABLE_PLUGINS", " other , blocked_plugin")
    host = PluginHost(entry_points=False)
    host.register(plugin_module("blocked_plugin", lvscheck_register_checks=registering(check_class("blk"))))
    assert "blk" not in host.registry
    assert "blocked_plugin" not in host.plugin_names()
    with pytest.raises(lvscheck.UnknownCheckError, match="unknown check type 'blk'; installed check types: "):
        host.check_type("blk")


def test_misspelt_hook_fails_loudly() -> None:
    @lvscheck.hookimpl
    def lvscheck_register_check(register: CheckRegistry) -> None:  # missing the final s
        raise AssertionError("never called")

    host = PluginHost(entry_points=False)
    with pytest.raises(PluginError) as caught:
        host.register(plugin_module("typo_plugin", lvscheck_register_check=lvscheck_register_check))
    message = str(caught.value)
    assert "plugin typo_plugin is not valid: unknown hook 'lvscheck_register_check'" in message
    assert "the hooks are: lvscheck_check_done, lvscheck_register_checks" in message
    assert host.plugin_names() == []  # nothing half registered


def test_misspelt_hook_argument_fails_loudly() -> None:
    @lvscheck.hookimpl
    def lvscheck_register_checks(registry: CheckRegistry) -> None:  # the argument is "register"
        raise AssertionError("never called")

    host = PluginHost(entry_points=False)
    with pytest.raises(PluginError, match=r"plugin argname_plugin is not valid: .*'registry'"):
        host.register(plugin_module("argname_plugin", lvscheck_register_checks=lvscheck_register_checks))


def test_forgotten_hookimpl_decorator_fails_loudly() -> None:
    def lvscheck_register_checks(register: CheckRegistry) -> None:
        register.add(check_class("nodeco"))

    host = PluginHost(entry_points=False)
    with pytest.raises(
        PluginError, match=r"lvscheck_register_checks is not decorated with @lvscheck\.hookimpl"
    ):
        host.register(plugin_module("nodeco_plugin", lvscheck_register_checks=lvscheck_register_checks))


def test_registering_something_that_is_not_a_check() -> None:
    @lvscheck.hookimpl
    def lvscheck_register_checks(register: CheckRegistry) -> None:
        register.add("redis")  # type: ignore[arg-type]

    host = PluginHost(entry_points=False)
    with pytest.raises(PluginError, match="plugin wrong_plugin registered 'redis', which is not a subclass"):
        host.register(plugin_module("wrong_plugin", lvscheck_register_checks=lvscheck_register_checks))


def test_check_without_a_name() -> None:
    class Nameless(Check):
        pass

    host = PluginHost(entry_points=False)
    with pytest.raises(PluginError, match=r"registered .*Nameless without a usable name"):
        host.register(plugin_module("nameless_plugin", lvscheck_register_checks=registering(Nameless)))


def test_a_raising_hook_is_a_plugin_error() -> None:
    @lvscheck.hookimpl
    def lvscheck_register_checks(register: CheckRegistry) -> None:
        raise KeyError("oops")

    host = PluginHost(entry_points=False)
    with pytest.raises(PluginError, match="plugin raising_plugin: lvscheck_register_checks raised KeyError"):
        host.register(plugin_module("raising_plugin", lvscheck_register_checks=lvscheck_register_checks))


def test_check_done_observers_see_every_result() -> None:
    seen: list[Result] = []

    class Observer:
        @lvscheck.hookimpl
        def lvscheck_check_done(self, result: Result) -> None:
            seen.append(result)

    host = PluginHost(entry_points=False)
    host.register(Observer(), "observer")
    assert host.plugin_hooks("observer") == ["lvscheck_check_done"]
    assert host.plugin_distribution("observer") is None
    specs = [CheckSpec("connect", Target("127.0.0.1", free_port())) for _ in range(3)]

    async def run() -> list[Result]:
        return await lvscheck.Engine(host).run_many(specs)

    import asyncio

    results = asyncio.run(run())
    assert seen == results
    assert {r.state for r in seen} == {State.DOWN}


def test_builtin_plugins_are_plugins_like_any_other() -> None:
    """Every BUILTIN_PLUGINS module registers exactly the names the table gives it."""
    for module_name in dict.fromkeys(BUILTIN_PLUGINS.values()):
        host = PluginHost(entry_points=False)
        host.register(importlib.import_module(module_name))
        expected = sorted(n for n, m in BUILTIN_PLUGINS.items() if m == module_name)
        assert list(host.registry) == expected, module_name
        for name in expected:
            assert host.registry.owner(name) == module_name


def test_unknown_type_without_entry_points_lists_the_builtins() -> None:
    host = PluginHost(entry_points=False)
    with pytest.raises(lvscheck.UnknownCheckError) as caught:
        host.check_type("nope")
    assert (
        str(caught.value)
        == f"unknown check type 'nope'; installed check types: {', '.join(sorted(BUILTIN_PLUGINS))}"
    )


# -- the public API and its documentation ------------------------------------------------------


def test_all_names_every_public_export() -> None:
    """Like httpx's test_exported_members: ``__all__`` is exactly what the package defines."""
    # Everything the package namespace holds, minus submodules and the names its own code
    # imports for annotations (``from __future__ import annotations``, ``Sequence``).
    helpers = ("__future__", "collections.abc", "typing")
    public = {
        name
        for name, value in vars(lvscheck).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", None) not in helpers
        and type(value).__module__ not in helpers
    }
    assert set(lvscheck.__all__) == public | {"__version__"}
    assert lvscheck.__all__ == sorted(lvscheck.__all__)
    for name in lvscheck.__all__:
        assert getattr(lvscheck, name) is not None


def test_errors_are_exported_at_the_top() -> None:
    for name in errors_module.__all__:
        assert getattr(lvscheck, name) is getattr(errors_module, name)


def _hookspecs() -> dict[str, Callable[..., Any]]:
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, "lvscheck_spec")
    }


def _signature(function: Callable[..., Any]) -> str:
    sig = inspect.signature(function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {function.__name__}({params}) -> {sig.return_annotation}"


def test_every_hookspec_is_documented_with_its_signature() -> None:
    """Like datasette's test_plugin_hooks_are_documented, both ways."""
    doc = (DOCS / "plugins" / "hooks.md").read_text()
    documented = set(re.findall(r"^## (lvscheck_\w+)$", doc, re.M))
    specs = _hookspecs()
    assert documented == set(specs)
    for name, function in specs.items():
        section = doc.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"```python\n{_signature(function)}\n```" in section, name
        options = function.lvscheck_spec  # type: ignore[attr-defined]
        if options.get("firstresult"):
            assert "firstresult" in section, name


def test_hookspecs_have_real_docstrings() -> None:
    for name, function in _hookspecs().items():
        doc = inspect.getdoc(function) or ""
        assert len(doc) > 80, name
        for param in inspect.signature(function).parameters:
            assert f":param {param}:" in doc, (name, param)


def _titled_blocks(page: Path) -> list[tuple[str, str]]:
    """(file path, code) of every fenced block whose info string has ``title="path"``."""
    pattern = re.compile(r'^```\w*[ \t]+title="([^"]+)"[ \t]*\n(.*?)^```[ \t]*$', re.M | re.S)
    return [(m[1], m[2]) for m in pattern.finditer(page.read_text())]


PLUGIN_PAGES = sorted((DOCS / "plugins").glob("*.md"))


@pytest.mark.parametrize("page", PLUGIN_PAGES, ids=lambda p: p.name)
def test_doc_excerpts_match_the_real_files(page: Path) -> None:
    """A block titled with a file path must be a verbatim excerpt of that file."""
    for path, code in _titled_blocks(page):
        text = (REPO / path).read_text()
        assert code in text, f"{page.name}: the block titled {path} is not in that file any more:\n{code}"


def test_tutorial_quotes_the_example_plugin() -> None:
    quoted = {path for path, _ in _titled_blocks(DOCS / "plugins" / "writing.md")}
    example = "plugins/lvscheck-example/"
    assert {
        f"{example}pyproject.toml",
        f"{example}src/lvscheck_redis/__init__.py",
        f"{example}tests/test_lvscheck_redis.py",
    } <= quoted
    tested = {path for path, _ in _titled_blocks(DOCS / "plugins" / "testing.md")}
    assert f"{example}tests/conftest.py" in tested


def test_api_page_covers_every_export() -> None:
    doc = (DOCS / "api.md").read_text()
    # The errors are drawn in the tree (test below); everything else is quoted as code.
    missing = [n for n in lvscheck.__all__ if f"`{n}" not in doc and n not in errors_module.__all__]
    assert missing == []


def test_api_page_draws_the_real_error_tree() -> None:
    """The tree in docs/api.md: each class under its real base class, every error present."""
    doc = (DOCS / "api.md").read_text()
    found = re.search(r"^```text\n(LvscheckError\n.*?)^```", doc, re.M | re.S)
    assert found is not None, "docs/api.md has no ```text block drawing the LvscheckError tree"
    tree = found[1]
    parents: dict[int, str] = {}
    drawn = []
    for line in tree.splitlines():
        m = re.match(r"^([ │├└─]*)(\w+)", line)
        assert m is not None, line
        depth, name = len(m[1]) // 4, m[2]
        parents[depth] = name
        drawn.append(name)
        cls = getattr(errors_module, name)
        if depth:
            assert cls.__base__ is getattr(errors_module, parents[depth - 1]), name
    assert sorted(drawn) == sorted(errors_module.__all__)
