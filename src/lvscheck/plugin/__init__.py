"""The plugin-author layer: what a check type is written with, below the engine.

::

    check.py     Check, the base class of every check type, and the option parsers
    probe.py     Probe, what a check's probe() gets: target, deadline, connections
    registry.py  CheckRegistry, the register object of ``lvscheck_register_checks``

Nothing here imports the engine, the daemon or the config: the engine
(:mod:`lvscheck.engine`) runs what these define, and :mod:`lvscheck.plugins`
finds the check types (pluggy).  Plugin authors import the same names from
:mod:`lvscheck` (``from lvscheck import Check, Probe, CheckRegistry``).
"""
