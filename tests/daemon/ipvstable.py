"""The kernel's IPVS table as the guest tests read it (``ipvsadm -Ln``), and waiting on it.

For the tests that run inside ../shared/ipvs-guest (marked ``ipvs``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from tests.netns import sh

__all__ = ["table", "wait"]

_SERVICE = re.compile(r"^(TCP|UDP)\s+(\S+)|^FWM\s+(\d+)")
_DEST = re.compile(r"^\s+->\s+(\d+\.\d+\.\d+\.\d+:\d+)\s+\S+\s+(\d+)")


def table() -> dict[str, dict[str, int]]:
    """``ipvsadm -Ln`` as {"10.0.1.1:80": {"10.0.0.2:80": weight}, "FWM 123": {...}}."""
    out: dict[str, dict[str, int]] = {}
    current = ""
    for line in sh("ipvsadm -Ln").splitlines():
        m = _SERVICE.match(line)
        if m:
            current = m.group(2) or f"FWM {m.group(3)}"
            out[current] = {}
            continue
        m = _DEST.match(line)
        if m and current:
            out[current][m.group(1)] = int(m.group(2))
    return out


def wait(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``cond()`` holds; an AssertionError naming ``what`` and the table after ``timeout``."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}; table {table()}")
        time.sleep(0.05)
    return time.monotonic() - start
