"""Debian's real ldirectord (4.12) in the IPVS guest, and the table it programs.

:func:`running_ldirectord` starts ``ldirectord -d CONFIG start`` (foreground, debug
output to a file) and stops it with ``ldirectord CONFIG stop``; :func:`ipvs_weights`
reads the kernel table with ``ipvsadm -Ln`` as ``{(vip:port, rip:port): weight}``;
:func:`settled` waits until that table has not changed for a while (ldirectord has
decided about every real).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.peers import require_binary

__all__ = ["ipvs_weights", "running_ldirectord", "settled"]

_SERVICE = re.compile(r"^(TCP|UDP|FWM)\s+(\S+)")
_DEST = re.compile(r"^\s+->\s+(\S+)\s+\S+\s+(\d+)\s")


def ipvs_weights() -> dict[tuple[str, str], int]:
    """The kernel table as ``{(virtual, real): weight}`` (``ipvsadm -Ln``)."""
    out = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True, timeout=30).stdout
    table: dict[tuple[str, str], int] = {}
    service = ""
    for line in out.splitlines():
        if m := _SERVICE.match(line):
            service = m[2]
        elif (m := _DEST.match(line)) and service:
            table[(service, m[1])] = int(m[2])
    return table


def settled(entries: int, quiet: float, least: float, most: float) -> dict[tuple[str, str], int]:
    """The table once it has at least ``entries`` reals and stayed the same for ``quiet`` s.

    ldirectord adds a real only once a check found it up (quiescent=yes then keeps it at
    weight 0 when it fails), so a real never up has no entry.

    At least ``least`` s after the call (ldirectord needs a few seconds to start in the
    guest, then a round of checks), at most ``most`` s.
    """
    start = time.monotonic()
    last = ipvs_weights()
    changed = start
    while time.monotonic() - start < most:
        time.sleep(0.25)
        now = ipvs_weights()
        if now != last:
            last, changed = now, time.monotonic()
        elif (
            len(now) >= entries and time.monotonic() - changed >= quiet and time.monotonic() - start >= least
        ):
            return now
    raise AssertionError(f"the IPVS table never settled in {most} s: {last}")


@contextlib.contextmanager
def running_ldirectord(config: Path, workdir: Path, env: Mapping[str, str] | None = None) -> Iterator[Path]:
    """Run Debian's ldirectord on ``config`` until the block ends; yields its output file."""
    ldirectord = require_binary("/usr/sbin/ldirectord", "ldirectord")
    require_binary("ipvsadm")
    environ = dict(os.environ, **(env or {}))
    output = workdir / "ldirectord.out"
    with open(output, "wb") as log:
        proc = subprocess.Popen(
            [ldirectord, "-d", str(config), "start"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=workdir,
        )
        try:
            yield output
        finally:
            subprocess.run(
                [ldirectord, str(config), "stop"], capture_output=True, timeout=60, check=False, env=environ
            )
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
