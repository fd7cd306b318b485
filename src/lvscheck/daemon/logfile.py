"""ldirectord's ``logfile``: the daemon's log also goes to a file or to syslog.

A value starting with ``/`` is a file (re-opened when logrotate moves it, as
ldirectord re-opens it for every message); anything else is a syslog facility
(``local0``, ``daemon``, ...).  The daemon always logs to stderr too (the
journal under systemd).  ``--logfile none`` turns the config's value off, and
``--logfile VALUE`` overrides it.  A file or syslog socket that cannot be
opened is one warning, never a stop.
"""

from __future__ import annotations

import logging
import logging.handlers
import os

__all__ = ["LogTarget"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogTarget:
    """The one extra log handler of the daemon, switched when a reload changes ``logfile``."""

    def __init__(self, override: str | None = None) -> None:
        self.override = override  # --logfile: "none", a value, or None (the config decides)
        self.value: str | None = None
        self.handler: logging.Handler | None = None

    def apply(self, configured: str | None) -> None:
        """Log to ``configured`` (or the override) from now on; the same value changes nothing."""
        value = configured if self.override is None else self.override
        if value == "none" or not value:
            value = None
        if value == self.value:
            return
        self.close()
        self.value = value
        if value is None:
            return
        try:
            handler = _handler(value)
        except (OSError, ValueError) as exc:
            logging.getLogger("lvscheck.daemon").warning(
                "logfile=%s: cannot log there (%s); logging to stderr only", value, exc
            )
            return
        handler.setFormatter(logging.Formatter(FORMAT if value.startswith("/") else "lvscheck: %(message)s"))
        logging.getLogger().addHandler(handler)
        self.handler = handler

    def close(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        self.value = None


def _handler(value: str) -> logging.Handler:
    if value.startswith("/"):
        return logging.handlers.WatchedFileHandler(value, encoding="utf-8")
    facility = logging.handlers.SysLogHandler.facility_names.get(value.strip().lower())
    if facility is None:
        raise ValueError(f"{value!r} is neither an absolute path nor a syslog facility")
    if not os.path.exists("/dev/log"):
        raise OSError("no syslog socket /dev/log on this machine")
    return logging.handlers.SysLogHandler(address="/dev/log", facility=facility)
