"""Check workers: the daemon's checks spread over one process per core.

``lvscheck daemon --workers N`` (N > 1) runs the reals' checks in N worker
processes, each with its own event loop and engine; the pools, rise/fall, the
IPVS writer and the status stay in the main process and see every result.

    pool.py   the main side: WorkerPool, a drop-in for the Scheduler
    child.py  the worker process: apply schedule ops, run checks, send results
    wire.py   the frames between them (a length, then one pickled batch)

``--workers 1`` (and 0) keep the in-process scheduler.
"""

from lvscheck.daemon.workers.pool import WorkerPool, default_count

__all__ = ["WorkerPool", "default_count"]
