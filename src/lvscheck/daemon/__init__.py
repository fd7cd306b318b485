"""``lvscheck daemon``: schedule checks, keep the IPVS table in step, survive faults.

A result's road, module by module::

    scheduler.py  one asyncio loop, a coroutine per real, jitter, staggered start, start lag
    results.py    a result arrives: pools decide, transitions mark the pool, events tell
    pools.py      result -> observation -> rise/fall -> desired weights, pool guard (pure)
    state.py      rise/fall counting: a pure function (Track, Observation) -> Track
    kernel.py     the kernel view: dirty pools, one batched IPVS write, reconcile
                  (the writes go through lvscheck.adapters.ipvs)

Around it::

    director.py   life cycle and wiring: start (kernel first), signals, stop (cleanstop)
    reload.py     load through the one road (lvscheck.config.prepare), digest,
                  autoreload, install the difference
    actions.py    fallbackcommand, callback, maintenancedir, mail reminders, monitorfile
    logfile.py    ldirectord's logfile= (a file or a syslog facility)
    status.py     counters and the status document (``lvscheck status``, metrics)
    events.py     JSON event log, notify command, alert mail
    control.py    unix control socket (``lvscheck status``) and the metrics endpoint
    metrics.py    Prometheus text format
    sdnotify.py   systemd READY/RELOADING/STOPPING/WATCHDOG
    shadow.py     ``--shadow``: beside a live ldirectord, write nothing, compare the kernel
                  table with lvscheck's decisions, report the disagreements
    workers/      ``--workers N``: the checks in N processes (WorkerPool stands in for
                  the Scheduler; results come back batched, the pools stay here)

What the daemon manages (pools of services, reals and prepared checks) comes from
:mod:`lvscheck.config.prepare` and :mod:`lvscheck.config.pools`, the same road
``lvscheck check-config`` takes.
"""
