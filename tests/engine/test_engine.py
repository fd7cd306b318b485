"""The engine: concurrency caps, result order, deadlines, and a check that never raises.

The caps are proved on the wire: a hand-written server (tests/peers/hostile.py)
counts the connections open at once, per listening address, while real http
checks run against it.  Check types that misbehave (raise, return rubbish) are
throwaway plugins registered on a fresh ``PluginHost``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers.hostile import serve, serve_many

import lvscheck
from lvscheck import (
    Check,
    CheckFailed,
    CheckSpec,
    Engine,
    OptionError,
    Outcome,
    PluginHost,
    Probe,
    Result,
    State,
    Target,
    UnknownCheckError,
)
from lvscheck.model import Option

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nStill alive\n"


class Counter:
    """Connections open at once, in total and per server address; the peaks seen."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total_now = 0
        self.total_peak = 0
        self.connections = 0

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        with self.lock:
            self.connections += 1
            self.now[host] = self.now.get(host, 0) + 1
            self.peak[host] = max(self.peak.get(host, 0), self.now[host])
            self.total_now += 1
            self.total_peak = max(self.total_peak, self.total_now)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(self.hold)
        finally:
            with self.lock:  # before the reply: the check's slot is still held while we count down
                self.now[host] -= 1
                self.total_now -= 1
        writer.write(REPLY)
        await writer.drain()


@pytest.fixture
def counted() -> Iterator[tuple[Counter, list[int]]]:
    counter = Counter(hold=0.05)
    with serve_many(counter.handler, HOSTS) as ports:
        yield counter, ports


def http_specs(ports: list[int], per_host: int) -> list[CheckSpec]:
    opts = {"request": "/test.html", "receive": "Still alive", "negotiatetimeout": "5"}
    return [
        CheckSpec("http", Target(host, port), opts)
        for _ in range(per_host)
        for host, port in zip(HOSTS, ports, strict=True)
    ]


# -- concurrency caps -----------------------------------------------------------------------------


def test_global_cap_is_enforced(counted: tuple[Counter, list[int]]) -> None:
    counter, ports = counted
    results = lvscheck.run_checks(http_specs(ports, 10), max_in_flight=5, per_host=100)
    assert all(r.state is State.UP for r in results), {r.reason for r in results}
    assert counter.connections == 40
    assert counter.total_peak == 5


def test_per_host_cap_is_enforced(counted: tuple[Counter, list[int]]) -> None:
    counter, ports = counted
    results = lvscheck.run_checks(http_specs(ports, 10), max_in_flight=100, per_host=3)
    assert all(r.state is State.UP for r in results)
    assert counter.peak == dict.fromkeys(HOSTS, 3)
    assert counter.total_peak == 12


def test_both_caps_together(counted: tuple[Counter, list[int]]) -> None:
    counter, ports = counted
    lvscheck.run_checks(http_specs(ports, 8), max_in_flight=6, per_host=2)
    assert counter.total_peak == 6
    assert max(counter.peak.values()) == 2


def test_no_cap_state_left_behind(counted: tuple[Counter, list[int]]) -> None:
    _, ports = counted

    async def main() -> int:
        engine = Engine(max_in_flight=4, per_host=2)
        await engine.run_many(http_specs(ports, 5))
        return engine.limits.hosts_tracked

    assert asyncio.run(main()) == 0


def test_bad_caps_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Engine(max_in_flight=0)


# -- a plugin's check type that misbehaves ---------------------------------------------------------


class Sleepy(Check):
    """Sleeps ``seconds``, then answers up with ``label`` (or does what ``mode`` says)."""

    name = "sleepy"
    default_port = 7
    options = (
        Option("seconds", "how long to sleep", "0", float),
        Option("label", "the reason to answer", "ok"),
        Option("mode", "ok, raise, checkfailed, none, oserror, secret", "ok"),
        Option("passwd", "a secret", None, str, secret=True),
    )

    async def probe(self, probe: Probe) -> Outcome:
        probe.phase = "sleeping"
        await asyncio.sleep(float(self.opts["seconds"]))
        mode = self.opts["mode"]
        if mode == "raise":
            raise RuntimeError("boom")
        if mode == "checkfailed":
            raise CheckFailed(f"refused login with {self.opts['passwd']}")
        if mode == "none":
            return None  # type: ignore[return-value]  # a buggy plugin
        if mode == "oserror":
            raise OSError(113, "No route to host")
        if mode == "zerodiv":
            return Outcome.up(str(1 / 0))
        return Outcome.up(self.opts["label"])


def sleepy_engine(**kw: Any) -> Engine:
    module = types.ModuleType("sleepy_plugin")

    @lvscheck.hookimpl
    def lvscheck_register_checks(register: lvscheck.CheckRegistry) -> None:
        register.add(Sleepy)

    module.lvscheck_register_checks = lvscheck_register_checks  # type: ignore[attr-defined]
    return Engine(PluginHost(entry_points=False, plugins=[module]), **kw)


def sleepy(host: str = "10.0.0.1", **options: str) -> CheckSpec:
    return CheckSpec("sleepy", Target(host), options)


def run_sleepy(*specs: CheckSpec, **kw: Any) -> list[Result]:
    async def main() -> list[Result]:
        return await sleepy_engine(**kw).run_many(specs)

    return asyncio.run(main())


def test_run_many_returns_results_in_the_order_given() -> None:
    specs = [sleepy(label=f"#{i}", seconds=str(0.01 * ((7 * i) % 10))) for i in range(20)]
    results = run_sleepy(*specs)
    assert [r.reason for r in results] == [f"#{i}" for i in range(20)]
    assert all(r.state is State.UP for r in results)


def test_a_check_that_raises_gives_down() -> None:
    [r] = run_sleepy(sleepy(mode="raise"))
    assert r.state is State.DOWN
    assert r.weight == 0
    assert r.reason == "internal error in check type 'sleepy': RuntimeError: boom"
    [r] = run_sleepy(sleepy(mode="zerodiv"))
    assert r.state is State.DOWN
    assert "ZeroDivisionError" in r.reason


def test_a_check_that_returns_rubbish_gives_down() -> None:
    [r] = run_sleepy(sleepy(mode="none"))
    assert r.state is State.DOWN
    assert r.reason == "internal error in check type 'sleepy': probe returned NoneType, not an Outcome"


def test_os_errors_name_the_phase() -> None:
    [r] = run_sleepy(sleepy(mode="oserror"))
    assert r.state is State.DOWN
    assert r.reason == "no route to host sleeping"


def test_checkfailed_and_secrets_scrubbed() -> None:
    [r] = run_sleepy(sleepy(mode="checkfailed", passwd="hunter2"))
    assert r.state is State.DOWN
    assert r.reason == "refused login with ***"


def test_one_failure_does_not_spoil_the_others() -> None:
    results = run_sleepy(sleepy(label="a"), sleepy(mode="raise"), sleepy(label="c"), sleepy(mode="none"))
    assert [r.state for r in results] == [State.UP, State.DOWN, State.UP, State.DOWN]


# -- the deadline ---------------------------------------------------------------------------------


def test_deadline_covers_the_whole_check() -> None:
    t0 = time.monotonic()
    [r] = run_sleepy(sleepy(seconds="10", negotiatetimeout="0.3"))
    assert time.monotonic() - t0 < 0.8
    assert r.state is State.DOWN
    assert r.reason == "timed out after 0.3 s sleeping"
    assert 0.3 <= r.latency < 0.8


def test_deadline_is_total_not_per_read() -> None:
    """Each step of this server takes 0.4 s, well under the 1 s deadline; the sum does not."""

    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for part in (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 12\r\n\r\n", b"Still ", b"alive\n"):
            await asyncio.sleep(0.4)
            writer.write(part)
            await writer.drain()

    with serve(dribble) as port:
        spec = CheckSpec(
            "http", Target("127.0.0.1", port), {"receive": "Still alive", "negotiatetimeout": "1"}
        )
        t0 = time.monotonic()
        [r] = lvscheck.run_checks([spec])
        elapsed = time.monotonic() - t0
    assert r.state is State.DOWN
    assert r.reason == "timed out after 1 s waiting for the response body"
    assert 1.0 <= elapsed < 1.5


def test_waiting_for_a_cap_slot_is_not_on_the_check_clock() -> None:
    # 3 checks of 0.3 s each through one slot: each gets its full deadline once it runs
    results = run_sleepy(*[sleepy(seconds="0.3", negotiatetimeout="0.5")] * 3, per_host=1)
    assert all(r.state is State.UP for r in results), [r.reason for r in results]
    assert all(r.latency < 0.5 for r in results)


def test_connecttimeout_inside_the_deadline() -> None:
    # a listener whose accept queue is full: the kernel drops further SYNs, connect hangs
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.1)
        try:
            spec = CheckSpec(
                "connect", Target("127.0.0.1", port), {"connecttimeout": "0.3", "checktimeout": "3"}
            )
            t0 = time.monotonic()
            [r] = lvscheck.run_checks([spec])
            elapsed = time.monotonic() - t0
        finally:
            for s in fillers:
                s.close()
    assert r.state is State.DOWN
    assert r.reason == f"connect to 127.0.0.1:{port} timed out after 0.3 s"
    assert elapsed < 0.8


# -- bad input fails before anything runs ----------------------------------------------------------


def test_bad_options_raise_before_anything_runs(counted: tuple[Counter, list[int]]) -> None:
    counter, ports = counted
    good = http_specs(ports, 2)
    bad = CheckSpec("http", Target("127.0.0.1", ports[0]), {"receive": "("})
    with pytest.raises(OptionError, match=r"receive='\('"):
        lvscheck.run_checks([*good, bad])
    with pytest.raises(OptionError, match="no option 'recieve'"):
        lvscheck.run_checks([*good, CheckSpec("http", Target("127.0.0.1", ports[0]), {"recieve": "x"})])
    with pytest.raises(UnknownCheckError, match="'htttp'"):
        lvscheck.run_checks([*good, CheckSpec("htttp", Target("127.0.0.1", ports[0]))])
    time.sleep(0.1)
    assert counter.connections == 0


def test_prepared_checks_are_reused() -> None:
    async def main() -> list[Result]:
        engine = sleepy_engine()
        check = engine.prepare(sleepy(label="again"))
        return [await engine.run(check) for _ in range(3)] + await engine.run_many([check, check])

    assert [r.reason for r in asyncio.run(main())] == ["again"] * 5


def test_on_result_sees_every_result() -> None:
    seen: list[Result] = []

    async def main() -> list[Result]:
        engine = sleepy_engine(on_result=seen.append)
        return await engine.run_many([sleepy(label="a"), sleepy(mode="raise")])

    results = asyncio.run(main())
    assert sorted(r.reason for r in seen) == sorted(r.reason for r in results)


def test_the_callers_cancellation_is_passed_on() -> None:
    """A caller's own timeout or cancel is not a verdict on the real server: it propagates."""

    async def main() -> None:
        engine = sleepy_engine()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.run(sleepy(seconds="10", negotiatetimeout="5")), 0.1)
        task = asyncio.ensure_future(engine.run(sleepy(seconds="10", negotiatetimeout="0.2")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the engine still works, and the deadline still gives a verdict afterwards
        r = await engine.run(sleepy(seconds="10", negotiatetimeout="0.1"))
        assert r.reason == "timed out after 0.1 s sleeping"
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    asyncio.run(main())


def test_deadline_and_caller_cancel_at_once() -> None:
    async def main() -> None:
        engine = sleepy_engine()
        task = asyncio.ensure_future(engine.run(sleepy(seconds="10", negotiatetimeout="0.1")))
        await asyncio.sleep(0.1)  # the deadline fires about now; cancel as well
        task.cancel()
        try:
            r = await task
        except asyncio.CancelledError:
            return  # the caller's cancel won: fine
        assert r.state is State.DOWN  # the deadline won before the cancel landed: also fine

    for _ in range(20):
        asyncio.run(main())


def test_secrets_are_scrubbed_from_reasons_without_garbling_words() -> None:
    from lvscheck.engine.runner import scrub

    assert scrub("login failed for hunter22 (hunter22)", "hunter22") == "login failed for *** (***)"
    assert scrub("denied by the server for y", "y") == "denied by the server for ***"
    assert scrub("ready: y=1", "y") == "ready: ***=1"
    assert scrub("xyz", "xyz") == "***"


def test_a_missing_driver_is_a_usage_error_naming_the_package() -> None:
    from lvscheck import Check, CheckSpec, Outcome, Target, UsageError

    class NeedsDriver(Check):
        name = "needsdriver"
        default_port = 1
        requires = ("lvscheck_no_such_driver_pkg",)

        async def probe(self, probe: Probe) -> Outcome:
            return Outcome.up()

    with pytest.raises(
        UsageError, match=r"needs the Python package 'lvscheck_no_such_driver_pkg'.*pip install"
    ):
        NeedsDriver.prepare(CheckSpec("needsdriver", Target("127.0.0.1", 1)))
