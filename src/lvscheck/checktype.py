"""Moved to :mod:`lvscheck.plugin.check`; this name stays for plugins written against it."""

from lvscheck.plugin.check import *  # noqa: F403
from lvscheck.plugin.check import __all__ as __all__
