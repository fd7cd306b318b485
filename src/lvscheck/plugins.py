"""Finding check types: the plugin manager, the check registry and its typed facade.

Built-in check types are plugins written exactly like external ones (a module
with an ``@hookimpl lvscheck_register_checks``), but they are found from a
static table (:data:`BUILTIN_PLUGINS`) without scanning entry points; the
``lvscheck`` entry-point group is read only when a name is not built in, or
when every check type is listed.  Until something needs pluggy itself (an
external plugin, an observer hook, ``lvscheck plugins``), a built-in module's
hook implementation is called directly and pluggy is not even imported; when
the plugin manager is built, the built-ins already loaded are registered with
it too.  This keeps a one-shot ``lvscheck run http ...`` (started once per
check by ldirectord) fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

from lvscheck.errors import PluginError, UnknownCheckError
from lvscheck.markers import MARK
from lvscheck.plugin.registry import CheckRegistry

if TYPE_CHECKING:
    import pluggy

    from lvscheck.model import CheckSpec, Result
    from lvscheck.plugin.check import Check

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "CheckRegistry",
    "PluginHost",
    "default_host",
]

ENTRY_POINT_GROUP = "lvscheck"

#: check type name -> module that registers it.  Each module is a plugin with a
#: ``lvscheck_register_checks`` hookimpl, like any external plugin.
BUILTIN_PLUGINS: dict[str, str] = {
    "connect": "lvscheck.checks.connect",
    "http": "lvscheck.checks.http",
    "https": "lvscheck.checks.http",
    "mysql": "lvscheck.checks.mysql",
    "pgsql": "lvscheck.checks.pgsql",
    "ldap": "lvscheck.checks.ldap",
    "ldaps": "lvscheck.checks.ldap",
    "oracle": "lvscheck.checks.oracle",
    "dns": "lvscheck.checks.dns",
    "radius": "lvscheck.checks.radius",
    "sip": "lvscheck.checks.sip",
    "ping": "lvscheck.checks.ping",
    "smtp": "lvscheck.checks.smtp",
    "submission": "lvscheck.checks.smtp",
    "ftp": "lvscheck.checks.ftp",
    "imap": "lvscheck.checks.mail",
    "imaps": "lvscheck.checks.mail",
    "pop": "lvscheck.checks.mail",
    "pops": "lvscheck.checks.mail",
    "nntp": "lvscheck.checks.nntp",
    "simpletcp": "lvscheck.checks.simpletcp",
    "http_proxy": "lvscheck.checks.http_proxy",
    "external": "lvscheck.checks.external",
    "agent": "lvscheck.checks.agent",
    "grpc": "lvscheck.checks.grpc",
}


class PluginHost:
    """The plugin manager behind a typed facade: core code calls these methods only."""

    def __init__(self, *, entry_points: bool = True, plugins: Iterable[object] = ()) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._direct: dict[str, ModuleType] = {}  # built-ins registered without pluggy
        self.registry = CheckRegistry()
        self._use_entry_points = entry_points
        self._entry_points_loaded = False
        self._distributions: dict[str, tuple[str, str]] = {}
        self._blocked = {
            n.strip() for n in os.environ.get("LVSCHECK_DISABLE_PLUGINS", "").split(",") if n.strip()
        }
        for plugin in plugins:
            self.register(plugin)

    @property
    def pm(self) -> pluggy.PluginManager:
        """The pluggy manager, built on first use (with the built-ins loaded so far)."""
        if self._pm is None:
            import pluggy

            from lvscheck import hookspecs

            self._pm = pluggy.PluginManager("lvscheck")
            self._pm.add_hookspecs(hookspecs)
            for name, module in self._direct.items():
                self._pm_register(module, name)
        return self._pm

    # -- registration -------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one plugin object or module and collect its check types."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name in self._blocked or self.pm.is_registered(plugin):
            return
        self._pm_register(plugin, name)
        self.registry.current_plugin = name
        try:
            self._collect(plugin)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {name}: lvscheck_register_checks raised {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.registry.current_plugin = "?"

    def _pm_register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` with pluggy, failing loudly on anything pluggy would ignore."""
        import pluggy

        from lvscheck import hookspecs

        for attr in dir(plugin):
            function = getattr(plugin, attr, None)
            options = getattr(function, MARK, None)
            if isinstance(options, dict) and not hasattr(function, "lvscheck_impl"):
                # a method's marker lives on its function: mark that one
                pluggy.HookimplMarker("lvscheck")(**options)(getattr(function, "__func__", function))
        unmarked = [
            attr
            for attr in dir(plugin)
            if attr.startswith("lvscheck_")
            and callable(getattr(plugin, attr, None))
            and not hasattr(getattr(plugin, attr), "lvscheck_impl")
            and not hasattr(getattr(plugin, attr), "lvscheck_spec")
        ]
        if unmarked:
            raise PluginError(
                f"plugin {name}: {unmarked[0]} is not decorated with @lvscheck.hookimpl, "
                f"so lvscheck would never call it"
            )
        pm = self.pm
        try:
            pm.register(plugin, name=name)
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            # A misspelt hook name or argument: fail loudly, naming the plugin and what is accepted.
            if pm.is_registered(plugin):
                pm.unregister(plugin)
            hooks = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("lvscheck_")))
            raise PluginError(
                f"plugin {name} is not valid: {' '.join(str(exc).split())}; the hooks are: {hooks}"
            ) from None

    def _collect(self, plugin: object) -> None:
        # Call only this plugin's implementation, so each check type is attributed to it.
        impls = [
            impl for impl in self.pm.hook.lvscheck_register_checks.get_hookimpls() if impl.plugin is plugin
        ]
        for impl in impls:
            impl.function(register=self.registry)

    def _load_builtin(self, module_name: str) -> None:
        if module_name in self._direct or module_name in self._blocked:
            return
        module: ModuleType = importlib.import_module(module_name)
        if self._pm is not None:
            self.register(module, module_name)
            return
        # The fast path: call the module's own hook implementation, as pluggy would.
        hook = getattr(module, "lvscheck_register_checks", None)
        if not callable(hook) or not isinstance(getattr(hook, MARK, None), dict):
            raise PluginError(f"built-in plugin {module_name} has no @hookimpl lvscheck_register_checks")
        self._direct[module_name] = module
        self.registry.current_plugin = module_name
        try:
            hook(register=self.registry)
        finally:
            self.registry.current_plugin = "?"

    def load_builtins(self) -> None:
        for module_name in dict.fromkeys(BUILTIN_PLUGINS.values()):
            self._load_builtin(module_name)

    def load_entry_points(self) -> None:
        """Register every plugin of the ``lvscheck`` entry-point group (once)."""
        if self._entry_points_loaded or not self._use_entry_points:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._blocked or ep.value in self._blocked:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}, from the {ENTRY_POINT_GROUP!r} "
                    f"entry points) failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            self.register(plugin, ep.value)
            if ep.dist is not None:
                self._distributions[ep.value] = (ep.dist.name, ep.dist.version)

    # -- lookups ------------------------------------------------------------------------

    def check_type(self, name: str) -> type[Check]:
        """The check type called ``name``: built-ins first, entry points only if needed."""
        found = self.registry.get(name)
        if found is not None:
            return found
        module_name = BUILTIN_PLUGINS.get(name)
        if module_name is not None:
            self._load_builtin(module_name)
        else:
            self.load_entry_points()
        found = self.registry.get(name)
        if found is None:
            self.load_all()
            raise UnknownCheckError(
                f"unknown check type {name!r}; installed check types: {', '.join(self.registry)}"
            )
        return found

    def prepare(self, spec: CheckSpec) -> Check:
        """``spec`` prepared by its check type: the one road from a spec to a :class:`Check`.

        Options that work on any check type are applied here, around the check type's own
        :meth:`Check.prepare`: ``agent=PORT`` gives the check with an HAProxy agent beside
        it, which scales its weight (:mod:`lvscheck.checks.agent`).
        """
        cls = self.check_type(spec.check)
        if "agent" in spec.options:
            from lvscheck.checks.agent import prepare_with_agent

            return prepare_with_agent(cls, spec)
        return cls.prepare(spec)

    def load_all(self) -> None:
        self.load_builtins()
        self.load_entry_points()

    def all_check_types(self) -> list[type[Check]]:
        self.load_all()
        return [c for n in self.registry if (c := self.registry.get(n)) is not None]

    def plugin_names(self) -> list[str]:
        return sorted(n for n, _ in self.pm.list_name_plugin())

    def plugin_hooks(self, name: str) -> list[str]:
        """The hooks the plugin called ``name`` implements."""
        plugin = self.pm.get_plugin(name)
        callers = self.pm.get_hookcallers(plugin) if plugin is not None else None
        return sorted(caller.name for caller in callers or ())

    def plugin_distribution(self, name: str) -> tuple[str, str] | None:
        """``(distribution, version)`` of an installed plugin; ``None`` for built-in and object plugins."""
        return self._distributions.get(name)

    # -- observer hooks -----------------------------------------------------------------

    def has_check_done_observers(self) -> bool:
        # Built-ins observe nothing: without a plugin manager there is no observer.
        return self._pm is not None and bool(self._pm.hook.lvscheck_check_done.get_hookimpls())

    def check_done(self, result: Result) -> None:
        self.pm.hook.lvscheck_check_done(result=result)


_default: PluginHost | None = None


def default_host() -> PluginHost:
    """The process-wide plugin host (built lazily; nothing is imported before first use)."""
    global _default
    if _default is None:
        _default = PluginHost()
    return _default
