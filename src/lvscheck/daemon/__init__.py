"""``lvscheck daemon``: schedule checks, keep the IPVS table in step, survive faults.

::

    state.py      rise/fall counting: a pure function (Track, Observation) -> Track
    layout.py     Config -> services, reals, check plans, desired kernel entries (pure)
    scheduler.py  one asyncio loop, a coroutine per real, jitter, staggered start, start lag
    director.py   the core: results -> phases -> batched IPVS writes, pool guard,
                  reconcile, reload, cleanstop
    events.py     JSON event log, notify command, alert mail
    control.py    unix control socket (``lvscheck status``) and the metrics endpoint
    metrics.py    Prometheus text format
    sdnotify.py   systemd READY/RELOADING/STOPPING/WATCHDOG
"""
