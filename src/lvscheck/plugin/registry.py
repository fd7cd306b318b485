"""The register object a plugin's ``lvscheck_register_checks`` hook receives."""

from __future__ import annotations

from collections.abc import Iterator

from lvscheck.errors import PluginError
from lvscheck.plugin.check import Check

__all__ = ["CheckRegistry"]


class CheckRegistry:
    """Check types by name, and which plugin registered each."""

    def __init__(self) -> None:
        self._checks: dict[str, type[Check]] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin = "?"

    def add(self, check: type[Check]) -> None:
        """Register ``check`` under ``check.name``; a second claim is an error naming both."""
        if not (isinstance(check, type) and issubclass(check, Check)):
            raise PluginError(
                f"plugin {self.current_plugin} registered {check!r}, "
                "which is not a subclass of lvscheck.Check"
            )
        name = getattr(check, "name", None)
        if not isinstance(name, str) or not name or name != name.strip() or "=" in name:
            raise PluginError(
                f"plugin {self.current_plugin} registered {check.__qualname__} without a usable name: "
                f"set the class attribute name = 'mytype' (no spaces, no '=')"
            )
        if name in self._checks:
            raise PluginError(
                f"check type {name!r} is registered by two plugins: "
                f"{self._owners[name]} and {self.current_plugin}; uninstall or block one "
                f"(LVSCHECK_DISABLE_PLUGINS={self.current_plugin})"
            )
        self._checks[name] = check
        self._owners[name] = self.current_plugin

    def get(self, name: str) -> type[Check] | None:
        return self._checks.get(name)

    def owner(self, name: str) -> str:
        return self._owners[name]

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._checks))
