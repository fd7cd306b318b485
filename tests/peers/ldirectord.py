"""Debian's real ldirectord (4.12) in the IPVS guest, and the table it programs.

:func:`running_ldirectord` starts ``ldirectord -d CONFIG start`` (foreground, debug
output to a file) and stops it with SIGTERM, as ``ldirectord CONFIG stop`` does; :func:`ipvs_weights`
reads the kernel table with ``ipvsadm -Ln`` as ``{(vip:port, rip:port): weight}``;
:func:`decided` waits until ldirectord has decided about every real (rounds of
checks counted in its debug output).
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

__all__ = ["decided", "ipvs_weights", "running_ldirectord"]

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


def _checks_done(output: Path, marker: str) -> int:
    return output.read_text(errors="replace").count(marker)


def decided(
    output: Path,
    per_round: int,
    most: float,
    marker: str = "DEBUG2: Checking negotiate",
    settle_rounds: int = 2,
) -> dict[tuple[str, str], int]:
    """The table once ldirectord has run ``settle_rounds`` full rounds of checks and one more changed nothing.

    ldirectord checks serially (one round of ``per_round`` checks, then checkinterval), and a
    loaded machine makes a round take many seconds, so rounds are counted in its debug
    output (``marker`` once per check, as it starts) instead of timed.  Its first round runs
    before it leaves "starting" (failurecount=1 decides there), so one settle round is
    enough where no scenario needs a second look.
    """
    start = time.monotonic()

    def wait_for(count: int) -> None:
        while _checks_done(output, marker) < count:
            if time.monotonic() - start > most:
                tail = output.read_text(errors="replace")[-3000:]
                raise AssertionError(f"ldirectord did not finish its checks in {most} s:\n{tail}")
            time.sleep(0.25)

    wait_for(settle_rounds * per_round + 1)
    while True:
        before, done = ipvs_weights(), _checks_done(output, marker)
        wait_for(done + per_round + 1)
        if ipvs_weights() == before:
            return before


@contextlib.contextmanager
def running_ldirectord(
    config: Path, workdir: Path, env: Mapping[str, str] | None = None, *, clear: bool = True
) -> Iterator[Path]:
    """Run Debian's ldirectord on ``config`` (from an empty IPVS table) until the block ends.

    Yields the file that gets its debug output.  ``clear=False`` keeps the table: for a
    second instance (another file, other virtuals) beside a first one.
    """
    ldirectord = require_binary("/usr/sbin/ldirectord", "ldirectord")
    require_binary("ipvsadm")
    environ = dict(os.environ, **(env or {}))
    if clear:  # the guest's table: an earlier test's leftovers
        subprocess.run(["ipvsadm", "-C"], check=True, timeout=30)
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
            proc.terminate()  # what `ldirectord CONFIG stop` sends, without a second Perl start-up
            try:
                proc.wait(30)  # ldirectord looks at the signal between two checks
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
