"""``@lvscheck.hookimpl``: marks a plugin's hook implementations, without importing pluggy.

A one-shot ``lvscheck run http ...`` registers the built-in check types by
calling their ``lvscheck_register_checks`` directly (see ``plugins.py``), so it
never needs pluggy.  The marker therefore only records its options on the
function; :class:`lvscheck.plugins.PluginHost` applies pluggy's own
``HookimplMarker("lvscheck")`` with the same options before it registers the
plugin with pluggy.  To a plugin author it behaves exactly like pluggy's marker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["MARK", "hookimpl"]

#: Attribute holding the marker's options until pluggy's marker is applied.
MARK = "lvscheck_hookimpl_options"

_F = TypeVar("_F", bound=Callable[..., Any])


@overload
def hookimpl(function: _F) -> _F: ...


@overload
def hookimpl(
    function: None = None,
    *,
    tryfirst: bool = False,
    trylast: bool = False,
    wrapper: bool = False,
    hookwrapper: bool = False,
    optionalhook: bool = False,
    specname: str | None = None,
) -> Callable[[_F], _F]: ...


def hookimpl(
    function: _F | None = None,
    *,
    tryfirst: bool = False,
    trylast: bool = False,
    wrapper: bool = False,
    hookwrapper: bool = False,
    optionalhook: bool = False,
    specname: str | None = None,
) -> _F | Callable[[_F], _F]:
    """Mark ``function`` as a hook implementation (same options as pluggy's ``HookimplMarker``)."""
    options = {
        "tryfirst": tryfirst,
        "trylast": trylast,
        "wrapper": wrapper,
        "hookwrapper": hookwrapper,
        "optionalhook": optionalhook,
        "specname": specname,
    }

    def mark(func: _F) -> _F:
        setattr(func, MARK, options)
        return func

    return mark(function) if function is not None else mark
