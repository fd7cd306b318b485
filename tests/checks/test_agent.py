"""The agent check (HAProxy's agent protocol), alone and beside another check.

The agent protocol has no reference server to install: an agent is whatever
small program an operator writes.  So the agent here is a hand-written line
server (:class:`LineAgent`) whose reply the test sets at run time.  The main
check beside it runs against real Debian nginx (tests/peers/nginx.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.hostile import serve
from tests.peers.nginx import Nginx

import lvscheck
from lvscheck import CheckSpec, OptionError, Result, State, Target
from lvscheck.checks.agent import AgentAssisted


class LineAgent:
    """An agent: answers every connection with ``reply`` (then closes), counting connections."""

    def __init__(self) -> None:
        self.reply = b"up\n"
        self.connections = 0
        self.received: list[bytes] = []
        self.stall = False
        self.read_first = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.read_first:
            self.received.append(await reader.readline())
        if self.stall:
            await asyncio.sleep(3600)
        writer.write(self.reply)
        await writer.drain()


@pytest.fixture
def agent() -> Iterator[tuple[LineAgent, int]]:
    line_agent = LineAgent()
    with serve(line_agent.handle) as port:
        yield line_agent, port


def run(check: str, port: int, weight: int = 4, **options: Any) -> Result:
    [result] = lvscheck.run_checks([CheckSpec(check, Target("127.0.0.1", port, weight=weight), options)])
    return result


def ask(agent: tuple[LineAgent, int], reply: bytes, weight: int = 4, **options: Any) -> Result:
    agent[0].reply = reply
    return run("agent", agent[1], weight, **options)


# -- the agent alone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "state", "weight"),
    [
        (b"up\n", State.UP, 4),
        (b"ready\r\n", State.UP, 4),
        (b"READY", State.UP, 4),  # no line end: the agent closed, the line is complete
        (b"75%\n", State.DEGRADED, 3),
        (b"100%\n", State.UP, 4),
        (b"150%\n", State.UP, 4),  # clamped to the configured weight
        (b"0%\n", State.DEGRADED, 0),
        (b"weight:2\n", State.DEGRADED, 2),
        (b"weight:9\n", State.UP, 4),
        (b"drain\n", State.DEGRADED, 0),
        (b"maint\n", State.DOWN, 0),
        (b"down\n", State.DOWN, 0),
        (b"fail\n", State.DOWN, 0),
        (b"stopped\n", State.DOWN, 0),
        (b"up 50%\n", State.DEGRADED, 2),
        (b"ready,75%\n", State.DEGRADED, 3),
        (b"75%,maxconn:30,maint,down\n", State.DOWN, 0),  # HAProxy's own regression test line
        (b"drain 75%\n", State.DEGRADED, 0),  # drain beats a weight
        (b"50% 100%\n", State.UP, 4),  # the last weight wins
    ],
)
def test_each_word(agent: tuple[LineAgent, int], reply: bytes, state: State, weight: int) -> None:
    r = ask(agent, reply)
    assert (r.state, r.weight) == (state, weight), r.reason


def test_reasons_name_what_the_agent_said(agent: tuple[LineAgent, int]) -> None:
    assert ask(agent, b"75%\n").reason == "agent says '75%': weight 3 (75% of 4)"
    assert ask(agent, b"150%\n").reason == "agent says '150%': weight 4 (150% of 4, 6 clamped to 0..4)"
    assert ask(agent, b"down # disk full\n").reason == "agent says 'down # disk full' (disk full)"
    assert ask(agent, b"drain\n").reason == "agent says 'drain': draining, weight 0"
    r = ask(agent, b"up maxconn:30 turbo\n")
    assert r.state is State.UP
    assert r.reason == (
        "agent says 'up maxconn:30 turbo'; maxconn:30 ignored (lvscheck sets no connection limit); "
        "'turbo' not understood, ignored"
    )


def test_maxweight_and_minweight_clamp(agent: tuple[LineAgent, int]) -> None:
    r = ask(agent, b"150%\n", maxweight="10")
    assert (r.state, r.weight) == (State.UP, 6)
    r = ask(agent, b"10%\n", minweight="1")
    assert (r.state, r.weight) == (State.DEGRADED, 1)
    with pytest.raises(OptionError, match="minweight=5 is above maxweight=4"):
        ask(agent, b"up\n", minweight="5")


def test_nothing_usable_is_down(agent: tuple[LineAgent, int]) -> None:
    r = ask(agent, b"\n")
    assert r.state is State.DOWN
    assert r.reason == "agent says '': no state or weight in it"
    r = ask(agent, b"")
    assert r.state is State.DOWN
    assert r.reason == "connection closed by the agent without a reply"


def test_reply_is_bounded(agent: tuple[LineAgent, int]) -> None:
    r = ask(agent, b"x" * 5000)
    assert r.state is State.DOWN
    assert r.reason == "agent reply longer than 1024 bytes without a line end"
    # only the first line counts
    assert ask(agent, b"75%\ndown\n").weight == 3


def test_send_is_written_before_reading(agent: tuple[LineAgent, int]) -> None:
    agent[0].read_first = True
    r = ask(agent, b"up\n", send="be_web/srv1\\n")
    assert r.state is State.UP
    assert agent[0].received == [b"be_web/srv1\n"]


def test_one_deadline(agent: tuple[LineAgent, int]) -> None:
    agent[0].stall = True
    t0 = time.monotonic()
    r = ask(agent, b"up\n", checktimeout="0.4")
    assert time.monotonic() - t0 < 1.5
    assert r.state is State.DOWN
    assert r.reason == "timed out after 0.4 s waiting for the agent's reply"


def test_refused() -> None:
    r = run("agent", free_port())
    assert r.state is State.DOWN
    assert r.reason == "connection refused"


# -- the agent beside a real check: main decides up/down, the agent scales the weight ----------


def http_with_agent(nginx: Nginx, agent_port: int, request: str = "/test.html", **options: Any) -> Result:
    return run("http", nginx.http_port, request=request, agent=str(agent_port), **options)


def test_prepared_as_one_check_named_like_the_main_one(nginx: Nginx, agent: tuple[LineAgent, int]) -> None:
    spec = CheckSpec("http", Target("127.0.0.1", nginx.http_port, weight=4), {"agent": str(agent[1])})
    check = lvscheck.Engine().prepare(spec)
    assert isinstance(check, AgentAssisted)
    assert check.name == "http"
    assert str(check) == f"http GET / 127.0.0.1:{nginx.http_port} + agent port {agent[1]}"


def test_the_composite_is_made_on_the_prepare_road_not_by_the_check_type() -> None:
    """agent= is a wrapper the plugin host applies: a check type alone knows no such option."""
    from lvscheck.plugins import default_host

    spec = CheckSpec("connect", Target("127.0.0.1", 80), {"agent": "9777"})
    host = default_host()
    assert isinstance(host.prepare(spec), AgentAssisted)
    with pytest.raises(OptionError, match="has no option 'agent'"):
        host.check_type("connect").prepare(spec)


def test_agent_scales_the_main_weight(nginx: Nginx, agent: tuple[LineAgent, int]) -> None:
    agent[0].reply = b"50%\n"
    r = http_with_agent(nginx, agent[1])
    assert (r.check, r.state, r.weight) == ("http", State.DEGRADED, 2)
    assert r.reason == "HTTP 200 OK; agent says '50%': weight 2 (50% of 4)"
    agent[0].reply = b"ready\n"
    r = http_with_agent(nginx, agent[1])
    assert (r.state, r.weight) == (State.UP, 4)


@pytest.mark.parametrize("word", [b"drain", b"maint", b"down"])
def test_agent_stop_words_give_weight_zero_not_down(
    nginx: Nginx, agent: tuple[LineAgent, int], word: bytes
) -> None:
    agent[0].reply = word + b"\n"
    r = http_with_agent(nginx, agent[1])
    assert (r.state, r.weight) == (State.DEGRADED, 0)
    assert r.reason == f"HTTP 200 OK; agent says '{word.decode()}': weight 0"


def test_main_down_means_the_agent_is_not_asked(nginx: Nginx, agent: tuple[LineAgent, int]) -> None:
    r = http_with_agent(nginx, agent[1], request="/down")
    assert r.state is State.DOWN
    assert r.reason.startswith("HTTP 503")
    assert agent[0].connections == 0


def test_unreachable_agent_leaves_the_main_verdict(nginx: Nginx) -> None:
    r = http_with_agent(nginx, free_port())
    assert (r.state, r.weight) == (State.UP, 4)
    assert r.reason == "HTTP 200 OK; agent: connection refused, weight unchanged"


def test_stalled_agent_leaves_the_main_verdict_within_the_deadline(
    nginx: Nginx, agent: tuple[LineAgent, int]
) -> None:
    agent[0].stall = True
    t0 = time.monotonic()
    r = http_with_agent(nginx, agent[1], negotiatetimeout="0.5")
    assert time.monotonic() - t0 < 1.5
    assert (r.state, r.weight) == (State.UP, 4)
    assert r.reason == "HTTP 200 OK; agent did not answer in time, weight unchanged"


def test_agent_after_a_derived_weight(nginx: Nginx, agent: tuple[LineAgent, int]) -> None:
    # nginx /weight answers X-LVS-Weight: 5; with maxweight=8 the main weight is 5, the agent halves it
    agent[0].reply = b"50%\n"
    r = run(
        "http",
        nginx.http_port,
        weight=8,
        request="/weight",
        weightfrom="header:X-LVS-Weight",
        maxweight="8",
        agent=str(agent[1]),
    )
    assert (r.state, r.weight) == (State.DEGRADED, 3)


def test_agent_options_are_validated_by_their_own_names(nginx: Nginx) -> None:
    with pytest.raises(OptionError, match=r"option agent='x' is not valid: expected a port"):
        run("http", nginx.http_port, agent="x")
    with pytest.raises(OptionError, match=r"option agentmaxweight='-1' is not valid"):
        run("http", nginx.http_port, agent="1", agentmaxweight="-1")
    with pytest.raises(OptionError, match="takes no agent= option"):
        run("agent", 1, agent="2")


def test_lvscheck_line_in_ldirectord_cf(nginx: Nginx, agent: tuple[LineAgent, int]) -> None:
    from lvscheck.config import parse_text
    from lvscheck.config.prepare import prepare

    agent[0].reply = b"25%\n"
    config = parse_text(
        f"""
virtual=127.0.0.1:{free_port()}
\treal=127.0.0.1:{nginx.http_port} gate 8
\tservice=http
\trequest="test.html"
\treceive="Still alive"
\t#lvscheck: agent={agent[1]} agentsend="web\\n"
"""
    )
    [plan] = prepare(config).plans
    assert isinstance(plan.check, AgentAssisted)
    with contextlib.closing(asyncio.new_event_loop()) as loop:
        result = loop.run_until_complete(lvscheck.Engine().run(plan.check))
    assert (result.state, result.weight) == (State.DEGRADED, 2)
    assert result.reason == "HTTP 200 OK, 'Still alive' found; agent says '25%': weight 2 (25% of 8)"
