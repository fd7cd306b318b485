"""Hook specifications: the whole contract between lvscheck and its plugins.

A plugin is a module (or object) with functions decorated by
``@lvscheck.hookimpl`` whose names are the hooks below.  Built-in check types
are plugins of exactly this kind (see ``lvscheck.checks``); external ones are
found through the ``lvscheck`` entry-point group.

Core code never calls ``pm.hook.*`` itself: it goes through the typed facade
:class:`lvscheck.plugins.PluginHost`.  A misspelt hook name or argument, or a
``lvscheck_*`` function without ``@hookimpl``, is a
:class:`lvscheck.errors.PluginError` naming the plugin when it is registered.

Every hook here is documented, with its signature, in ``docs/plugins/hooks.md``;
``tests/test_plugins.py`` fails when the two disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from lvscheck.markers import hookimpl

if TYPE_CHECKING:
    from lvscheck.model import Result
    from lvscheck.plugin.registry import CheckRegistry

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("lvscheck")


@hookspec
def lvscheck_register_checks(register: CheckRegistry) -> None:
    """Register the check types this plugin provides.

    Call ``register.add(SomeCheck)`` once per type, where ``SomeCheck`` is a
    subclass of :class:`lvscheck.Check`.  Every plugin is called.  Registering a
    name that another plugin already registered raises
    :class:`lvscheck.errors.PluginError` naming both plugins.

    Keep this hook cheap: import the check's driver (aiomysql, ldap3, ...)
    inside ``Check.probe``, not at module level, so that listing or running
    another check type never pays for it.

    :param register: the registry to add check types to.

    .. versionadded:: 0.1
    """


@hookspec
def lvscheck_check_done(result: Result) -> None:
    """Observe every finished check (metrics, logging, alerting plugins).

    Called on every plugin, after the check's result is final.  Must be fast
    and must not raise: it runs on the engine's event loop.

    :param result: the result of one check of one real server.

    .. versionadded:: 0.1
    """
