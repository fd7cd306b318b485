"""The ``--ready-file`` marker: a file that exists once the daemon's first table is complete.

A cluster agent (``contrib/ocf/lvscheck``) starts the daemon and must not report
it started, and so let the cluster bring up the VIP, before every real has been
decided by a check and the resulting table is written.  Testing for a file costs
the agent nothing (a shell ``[ -e FILE ]``), where asking the control socket
needs a client process per poll.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["write_when_ready"]


async def write_when_ready(director: Director, path: str) -> None:
    """Wait for ``director.table_ready``, then create ``path`` atomically (rename into place)."""
    await director.table_ready.wait()
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w") as fh:
        json.dump({"pid": os.getpid(), "ready": time.time(), "reals": len(director.reals)}, fh)
        fh.write("\n")
    os.replace(partial, path)
