"""The engine against checks that misbehave: swallowed cancels, control bytes, blocked loops, TLS cycles.

The swallowing probes here are stand-ins for a driver that swallows a cancel
(``asyncio.wait_for`` on Python 3.11 returns a result that raced with the cancel,
as aiosmtplib's reply wait did): no real server triggers that race on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.nginx import Nginx, start_nginx

from lvscheck.daemon.scheduler import Job, Scheduler
from lvscheck.engine import Engine, LoopWatch, run_prepared
from lvscheck.engine.printable import one_line
from lvscheck.model import CheckSpec, Outcome, Result, State, Target
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe


class _Swallower(Check):
    """Swallows the first cancel it gets (as ``wait_for`` can), then talks on for ``after`` s."""

    name = "swallower"
    default_port = 9
    after = 3.0

    async def probe(self, probe: Probe) -> Outcome:
        probe.phase = "waiting for the reply to EHLO"
        with contextlib.suppress(asyncio.CancelledError):  # the driver returned the raced reply instead
            await asyncio.sleep(3600)
        await asyncio.sleep(self.after)
        return Outcome.up("dialogue finished")


class _Stubborn(_Swallower):
    """Swallows every cancel for ``after`` s (a plugin that catches CancelledError in a loop)."""

    name = "stubborn"

    async def probe(self, probe: Probe) -> Outcome:
        end = time.monotonic() + self.after
        while time.monotonic() < end:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.005)
        return Outcome.up("never gave up")


class _Says(Check):
    name = "says"
    default_port = 9
    text = ""

    async def probe(self, probe: Probe) -> Outcome:
        return Outcome.down(self.text)


def _prepare(kind: type[Check], timeout: str = "0.3") -> Check:
    return kind.prepare(CheckSpec(kind.name, Target("127.0.0.1", 9), {"negotiatetimeout": timeout}))


def test_a_swallowed_cancel_still_ends_the_check_at_its_deadline() -> None:
    check = _prepare(_Swallower)

    async def main() -> Result:
        return await run_prepared(check)

    t0 = time.monotonic()
    result = asyncio.run(main())
    took = time.monotonic() - t0
    assert result.state is State.DOWN
    assert result.reason == "timed out after 0.3 s waiting for the reply to EHLO"
    assert took < 0.3 + 0.5, took  # not 0.3 + 3 s of a dialogue that went on


@pytest.mark.parametrize("kind", [_Swallower, _Stubborn])
def test_scheduler_close_is_bounded_whatever_the_checks_do(kind: type[Check]) -> None:
    check = _prepare(kind, "30")
    checks_after_close: list[float] = []

    async def main() -> float:
        engine = Engine()
        closed = False

        def on_result(job: Job, result: Result, lag: float) -> None:
            if closed:
                checks_after_close.append(time.monotonic())

        sched = Scheduler(engine, on_result)
        for i in range(3):
            sched.start(Job(f"j{i}", lambda: check, 0.1, 0.1, 0.0, lambda: False), first_within=0.0)
        await asyncio.sleep(0.2)  # every job is inside its check
        t0 = time.monotonic()
        await asyncio.wait_for(sched.close(timeout=1.0), 10)  # (before: never returned)
        took = time.monotonic() - t0
        closed = True
        await asyncio.sleep(kind.after + 0.2)  # a swallowing check finishes its dialogue here
        return took

    took = asyncio.run(main())
    assert took <= 1.2, took
    assert not checks_after_close  # no job went on to a next check after close()


def test_reasons_are_one_printable_line() -> None:
    assert one_line("plain text, unchanged") == "plain text, unchanged"
    assert one_line("a\x00b\x1b[31mc\x07d\ne\rf\tg\x7fh\x85i\u2028j") == (
        "a\\x00b\\x1b[31mc\\x07d\\ne\\rf\\tg\\x7fh\\x85i\\u2028j"
    )
    check = _prepare(_Says)
    check.text = "554 go away\x1b]0;owned\x07\r\nreal: 10.0.0.1 up\x00"  # type: ignore[attr-defined]
    result = asyncio.run(run_prepared(check))
    assert result.reason == "554 go away\\x1b]0;owned\\x07\\r\\nreal: 10.0.0.1 up\\x00"
    assert result.reason.isprintable()


def test_loop_watch_marks_a_failure_during_a_blocked_loop_as_starved() -> None:
    check = _prepare(_Says, "5")
    check.text = "timed out"  # type: ignore[attr-defined]

    class _Blocked(_Says):
        name = "blocked"

        async def probe(self, probe: Probe) -> Outcome:
            await asyncio.sleep(0.1)  # the watch ticks
            time.sleep(0.4)  # another check holds the loop (stand-in for a flood of input)
            return Outcome.down("timed out")

    blocked = _prepare(_Blocked, "5")

    async def main() -> tuple[Result, Result, dict[str, float]]:
        engine = Engine()
        engine.watch = LoopWatch()
        engine.watch.start()
        await asyncio.sleep(0.12)
        calm = await engine.run(check)
        starved = await engine.run(blocked)
        await asyncio.sleep(0.1)  # the late tick runs
        engine.watch.stop()
        return calm, starved, engine.watch.snapshot()

    calm, starved, snap = asyncio.run(main())
    assert "starved" not in calm.details
    assert starved.details["starved"] >= 0.3, starved.details
    assert snap["longest_s"] >= 0.35


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng


def test_a_rejected_certificate_frees_its_tls_objects_without_a_gc(nginx: Nginx, tmp_path: Path) -> None:
    """No cafile: the test CA is not in the system store, so every handshake fails verification."""
    import asyncio.sslproto

    async def main() -> tuple[str, int]:
        engine = Engine()
        check = engine.prepare(
            CheckSpec("https", Target("127.0.0.1", nginx.https_port), {"request": "/test.html"})
        )
        gc.collect()
        gc.disable()
        try:
            results = [await engine.run(check) for _ in range(5)]
            await asyncio.sleep(0.01)
            alive = sum(1 for o in gc.get_objects() if isinstance(o, asyncio.sslproto.SSLProtocol))
        finally:
            gc.enable()
        return results[0].reason, alive

    reason, alive = asyncio.run(main())
    assert reason.startswith("TLS certificate not accepted"), reason
    assert alive == 0  # (before: 5, held by exception -> traceback -> frame -> future cycles)


def test_smtp_check_never_awaits_through_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiosmtplib awaits each reply through ``asyncio.wait_for`` when it has a timeout; on Python
    3.11 that swallows a cancel racing with the reply (the daemon then ignored SIGTERM).  The check
    gives it none, so wait_for never gets a timeout (it then just awaits)."""
    from tests.peers.hostile import script, serve

    import lvscheck

    timed: list[float] = []
    real_wait_for = asyncio.wait_for

    async def spy(fut: object, timeout: float | None = None) -> object:
        if timeout is not None:
            timed.append(timeout)
        return await real_wait_for(fut, timeout)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "wait_for", spy)
    with serve(script(b"220 mx\r\n", b"250 mx\r\n", b"221 bye\r\n")) as port:
        [result] = lvscheck.run_checks(
            [CheckSpec("smtp", Target("127.0.0.1", port), {"negotiatetimeout": "2"})]
        )
    assert result.state is State.UP, result.reason
    assert timed == []  # (before: one wait_for with a timeout per reply)
