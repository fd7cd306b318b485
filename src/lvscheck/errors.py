"""The exceptions lvscheck raises.

A sick real server is *not* an exception: a check that fails returns a down
:class:`~lvscheck.Result` with a reason.  Exceptions are for problems on our
side: a bad option, an unknown check type, a broken plugin, a failed IPVS write.

::

    LvscheckError
    ├── UsageError            bad input from the operator (CLI exit 3)
    │   ├── UnknownCheckError     no plugin provides that check type
    │   ├── OptionError           unknown option, or a value that does not parse
    │   ├── TargetError           malformed HOST[:PORT]
    │   └── ConfigError           a config file that cannot be used (names file:line)
    ├── PluginError           two plugins claim one check type, a bad hook implementation
    ├── AdapterError          writing weights (IPVS, netlink) failed
    └── CheckFailed           raised *inside* a check to end it as down with a reason;
                              the engine turns it into a Result and never lets it escape
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "CheckFailed",
    "ConfigError",
    "LvscheckError",
    "OptionError",
    "PluginError",
    "TargetError",
    "UnknownCheckError",
    "UsageError",
]


class LvscheckError(Exception):
    """Root of every exception lvscheck raises on purpose."""


class UsageError(LvscheckError):
    """The operator asked for something that cannot work (bad option, type, target, config)."""


class UnknownCheckError(UsageError):
    """No installed plugin provides the requested check type."""


class OptionError(UsageError):
    """An option is unknown to the check type, or its value does not parse."""


class TargetError(UsageError):
    """A HOST[:PORT] that is not a host and port."""


class ConfigError(UsageError):
    """A configuration file that cannot be used.

    ``problems`` holds every problem found (``file:line: message``), so an
    operator sees them all at once instead of one per run; ``warnings`` the
    warnings found in the same pass.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = (), warnings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)
        #: warnings found in the same pass (shown beside the errors, so none is hidden)
        self.warnings = warnings


class PluginError(LvscheckError):
    """A plugin is broken or clashes with another plugin."""


class AdapterError(LvscheckError):
    """An adapter could not apply weights (IPVS netlink, ipvsadm)."""


class CheckFailed(LvscheckError):
    """Raise inside a check to end it as *down* with ``reason``.

    The engine catches it; it never reaches the caller of a check.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
