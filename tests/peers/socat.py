"""``socat`` as a real line server for the simpletcp check: ``TCP-LISTEN`` + ``EXEC:cat`` (an echo server).

socat forks one child per connection and runs ``cat`` in it, so whatever the
check sends comes back, and the write-side shutdown the check does after its
request (as ldirectord's) ends the reply with end of file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.peers import Server, free_port, require_binary, running

__all__ = ["start_socat_echo"]


@contextlib.contextmanager
def start_socat_echo(workdir: Path) -> Iterator[Server]:
    binary = require_binary("socat")
    port = free_port()
    # -t 5: after the client's end of file socat waits 0.5 s by default for cat's echo and then
    # closes without it, which a loaded guest misses (the check then sees no reply at all)
    argv = [binary, "-t", "5", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "EXEC:cat"]
    with running(argv, port, workdir) as server:
        yield server
