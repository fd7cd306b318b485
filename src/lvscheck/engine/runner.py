"""Run one prepared check under its deadline and turn *anything* into a Result.

This is the boundary between a plugin and the rest of lvscheck: a check never
raises to its caller (except for cancellation).  Exceptions become a down
result with a reason an operator understands.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import time

from lvscheck.engine.cpumeter import Meter, Metered
from lvscheck.engine.printable import one_line
from lvscheck.errors import CheckFailed
from lvscheck.model import MAX_WEIGHT, Outcome, Result, State
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe

__all__ = ["run_prepared", "scrub"]

log = logging.getLogger("lvscheck.engine")

#: errno values that mean the *director* is in trouble, not the real server.
DIRECTOR_FAULTS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


async def run_prepared(
    check: Check, cpu_budget: float | None = None, loop: asyncio.AbstractEventLoop | None = None
) -> Result:
    """Run ``check`` once; return its result.  Never raises except ``CancelledError``.

    ``cpu_budget``: seconds of CPU the check may use (:mod:`.cpumeter`); past it the check is
    cut off and down.  ``None`` or 0: not metered.  The check's own ``cpubudget=`` option,
    when given, wins.
    ``loop``: the running loop, if the caller has it (the daemon's scheduler does): on CPython
    3.11 every ``asyncio.get_running_loop()`` is a ``getpid`` syscall, and a check would make four.
    """
    started = time.perf_counter()
    loop = loop or asyncio.get_running_loop()
    target = check.spec.target
    assert check.port is not None  # Check.prepare guarantees it
    if target.mark and target.via:  # through the VIP (docs/via-vip.md)
        probe = Probe(
            target.via,
            check.port,
            check.timeout,
            check.connect_timeout,
            mark=target.mark,
            real=target.host,
            loop=loop,
        )
    else:
        probe = Probe(target.host, check.port, check.timeout, check.connect_timeout, loop=loop)
    deadline = _Deadline(probe, loop)
    try:
        try:
            budget = check.cpu_budget
            if budget is None:
                budget = cpu_budget
            if not budget:
                outcome = await check.probe(probe)
            else:
                metered = Metered(check.probe(probe), Meter(budget, deadline.cut))
                token = metered.enter()
                try:
                    outcome = await metered
                finally:
                    metered.leave(token)
        finally:
            deadline.cancel()
        if not isinstance(outcome, Outcome):  # a buggy plugin must not crash its caller
            outcome = Outcome.down(
                f"internal error in check type {check.name!r}: "
                f"probe returned {type(outcome).__name__}, not an Outcome"
            )
    except asyncio.CancelledError as exc:
        if not deadline.expired_us():
            raise  # the caller cancelled us: not a verdict
        _forget_trace(exc)
        outcome = Outcome.down(deadline.why or f"timed out after {check.timeout:g} s {deadline.phase}")
    except TimeoutError as exc:  # a driver's own timeout
        _forget_trace(exc)
        outcome = Outcome.down(f"timed out after {check.timeout:g} s {probe.phase}")
    except CheckFailed as exc:
        _forget_trace(exc)
        outcome = Outcome.down(exc.reason)
    except Exception as exc:
        explained = _explain(exc, probe)
        if explained is None:
            log.debug("%s: check raised", check, exc_info=True)
            explained = Outcome.down(
                f"internal error in check type {check.name!r}: {type(exc).__name__}: {exc}"
            )
        _forget_trace(exc)
        outcome = explained
    finally:
        probe.close()
    if deadline.fired:
        # the deadline hit (or the CPU budget): whatever the driver did after it (swallowed the
        # cancel and went on, tripped over its aborted socket), the verdict is the timeout
        outcome = Outcome.down(deadline.why or f"timed out after {check.timeout:g} s {deadline.phase}")
    latency = time.perf_counter() - started
    reason = outcome.reason
    for secret in check.secrets:
        reason = scrub(reason, secret)
    return Result(
        check=check.name,
        target=target,
        state=outcome.state,
        weight=_weight(outcome, target.weight),
        reason=one_line(reason),
        latency=latency,
        details=outcome.details,
    )


class _Deadline:
    """Cancel the current task at the probe's deadline, and again until it ends.

    ``asyncio.timeout`` with one timer and less work (measured on the HTTP hot
    path it cost about 7 us of CPU per check; this costs a ``call_at`` and a
    ``cancel``).  When the deadline hits, the probe's connections are aborted
    and the task is cancelled; a driver that swallows a cancel (``asyncio.wait_for``
    on Python 3.11 returns a result that raced with the cancel) is cancelled
    again every :attr:`AGAIN` s until the probe ends, and its verdict is the
    timeout whatever it returned.  A cancel that is ours is undone
    (``uncancel``, once per cancel) and becomes a timeout; one from the caller
    (also) is passed on.
    """

    __slots__ = ("_cancelling", "_handle", "_loop", "_ours", "_probe", "_task", "fired", "phase", "why")

    AGAIN = 0.01

    def __init__(self, probe: Probe, loop: asyncio.AbstractEventLoop) -> None:
        task = asyncio.current_task(loop)
        assert task is not None
        self._task = task
        self._probe = probe
        self._cancelling = task.cancelling()
        self._ours = 0
        self.fired = False
        self.phase = ""  # what the check was waiting for when the deadline hit
        self.why: str | None = None  # the check was cut off before its deadline: why
        self._loop = loop
        # call_later, not call_at(probe.deadline): uvloop's call_at reads the clock twice
        self._handle: asyncio.TimerHandle | None = loop.call_later(probe.timeout, self._expire)

    def _expire(self) -> None:
        if not self.fired:
            self.fired = True
            self.phase = self._probe.phase
            self._probe.close()  # every socket of the check goes now: no driver reads on
        self._ours += 1
        self._task.cancel()
        self._handle = self._loop.call_later(self.AGAIN, self._expire)

    def cut(self, why: str) -> None:
        """End the check now, as if its deadline had come, for the reason ``why``."""
        if self.fired:
            return
        self.why = why
        if self._handle is not None:
            self._handle.cancel()
        self._expire()

    def cancel(self) -> None:
        """Stop the timer (the check ended); undo our own cancels."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        while self._ours:
            self._ours -= 1
            self._task.uncancel()

    def expired_us(self) -> bool:
        """True when the CancelledError being handled is ours alone (after :meth:`cancel`)."""
        return self.fired and self._task.cancelling() <= self._cancelling


def _forget_trace(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and the exceptions chained to it.

    A traceback keeps the frames of the failed dialogue alive, and asyncio's
    frames hold futures that hold the exception again: a reference cycle that
    only a full garbage collection frees.  For a TLS failure that cycle holds the
    SSL objects and their buffers (10 https reals with a rejected certificate
    took the daemon from 40 to 285 MB); without the tracebacks it is freed at once.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:
        current.__traceback__ = None
        seen += 1
        current = current.__cause__ or current.__context__


def _weight(outcome: Outcome, configured: int) -> int:
    if outcome.state is State.DOWN:
        return 0
    if outcome.weight is None:
        return configured
    return max(0, min(MAX_WEIGHT, outcome.weight))


def _explain(exc: BaseException, probe: Probe) -> Outcome | None:
    """A reason for the exceptions sockets and TLS raise; ``None`` for anything else."""
    where = probe.phase
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.down("connection refused")
    if isinstance(exc, ConnectionResetError):
        return Outcome.down(f"connection reset by the server {where}")
    if isinstance(exc, asyncio.IncompleteReadError | EOFError | BrokenPipeError):
        return Outcome.down(f"connection closed by the server {where}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.down(f"TLS certificate not accepted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return Outcome.down(f"TLS error {where}: {exc.reason or exc}")
    if isinstance(exc, OSError):
        import socket

        if isinstance(exc, socket.gaierror):
            return Outcome.down(f"cannot resolve {probe.host!r}: {exc.strerror}")
        # the errno's own words: asyncio's connect puts "Connect call failed ('10.0.0.1', 80)"
        # in strerror, which says neither what failed nor why
        known = os.strerror(exc.errno) if exc.errno else ""
        text = known or exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in DIRECTOR_FAULTS:
            return Outcome.down(f"director-side failure: {text}", fault="director")
        return Outcome.down(f"{text[0].lower()}{text[1:]} {where}")
    return None


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``***``.

    A secret of four or more characters goes wherever it appears.  A shorter one
    is replaced only where it stands alone (not inside a word), so ``passwd=y``
    hides a ``y`` but does not turn "ready" into "read***".
    """
    if len(secret) >= 4:
        return text.replace(secret, "***")
    import re

    return re.sub(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", "***", text)
