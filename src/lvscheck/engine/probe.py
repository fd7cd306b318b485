"""Moved to :mod:`lvscheck.plugin.probe`; this name stays for plugins written against it."""

from lvscheck.plugin.probe import *  # noqa: F403
from lvscheck.plugin.probe import __all__ as __all__
