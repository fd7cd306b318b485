"""Reasons for socket errors (engine/runner.py): the errno's words, whoever raised it.

asyncio's connect raises ``OSError(errno, "Connect call failed ('10.0.0.1', 80)")``; the
reason must say what the kernel said.  The errors are made here: an EHOSTUNREACH from a
real network is not something the test machine may produce.
"""

from __future__ import annotations

import errno
from types import SimpleNamespace

from lvscheck.engine.runner import _explain
from lvscheck.model import State


def test_the_errno_not_asyncios_connect_text() -> None:
    probe = SimpleNamespace(phase="connecting to 192.0.2.1:80", host="192.0.2.1")
    exc = OSError(errno.EHOSTUNREACH, "Connect call failed ('192.0.2.1', 80)")
    outcome = _explain(exc, probe)  # type: ignore[arg-type]
    assert outcome is not None
    assert outcome.state is State.DOWN
    assert outcome.reason == "no route to host connecting to 192.0.2.1:80"
