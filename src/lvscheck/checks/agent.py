"""``agent``: HAProxy's agent protocol, where the real server says its own state and weight.

The dialogue: connect to the agent's port, send ``send`` if set (HAProxy's
``agent-send``), read one line (ended by LF, CR LF or the agent closing; at most
:data:`MAX_REPLY` bytes), close.  The line is words separated by blanks or commas,
in any order, with an optional ``# description`` at the end:

* ``up`` / ``ready``: serve (``ready`` ends a drain or maintenance);
* ``down`` / ``fail`` / ``stopped``: down, with the description as the reason;
* ``maint``: down (maintenance); ``drain``: weight 0, still up (IPVS quiescent);
* ``75%``: the weight as a percentage of the configured weight; ``weight:3``: an
  absolute weight (an lvscheck extension); both clamped to ``minweight..maxweight``
  (by default ``0..configured``, as http's ``weightfrom``);
* ``maxconn:N``: ignored, with a note (lvscheck sets no per-real connection limit);
* anything else: ignored, with a note.

Within one kind of word the last one wins; across kinds ``maint`` and ``down`` beat
``drain``, which beats a weight.

An agent is also a *second* check beside another one: any check type given the
option ``agent=PORT`` (``#lvscheck: agent=9777`` on a virtual) is prepared as
:class:`AgentAssisted`: the main check runs first and decides up or down; when it
is up, the agent is asked on the same target under what is left of the same
deadline, and its answer scales the weight (``down``/``maint``/``drain`` make it
0).  An agent that cannot be reached or says nothing usable leaves the main
check's verdict and weight as they are, with a note (as HAProxy does when a
regular health check runs beside the agent).  So the daemon needs no change:
the composite is one prepared check that returns one outcome.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from lvscheck.checks._lines import quote_shown, shown
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import CheckSpec, Option, Outcome, State
from lvscheck.plugin.check import Check, parse_weight
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["MAX_REPLY", "AgentAssisted", "AgentCheck", "AgentReply", "parse_reply", "prepare_with_agent"]

#: Longest agent line read; a longer one without a line end is refused.
MAX_REPLY = 1024

_SEPARATORS = re.compile(r"[ \t,]+")
_PERCENT = re.compile(r"(\d{1,6})%")
_NUMBER = re.compile(r"\d{1,6}")
_DOWN_WORDS = frozenset({"down", "fail", "stopped"})


class AgentReply:
    """One agent line, parsed: the last word of each kind, and what was not understood."""

    __slots__ = ("admin", "asked", "description", "ignored", "line", "operational")

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.admin: str | None = None  # ready, drain, maint
        self.operational: str | None = None  # up, down, fail, stopped
        self.asked: tuple[str, int] | None = None  # ("percent", 75) or ("weight", 3)
        self.ignored: list[str] = []
        text = line.decode("ascii", "replace")
        words, _, description = text.partition("#")
        self.description = shown(description.strip().encode(), 120)
        for word in _SEPARATORS.split(words.strip()):
            lowered = word.lower()
            if not word:
                continue
            if lowered in ("up", *_DOWN_WORDS):
                self.operational = lowered
            elif lowered in ("ready", "drain", "maint"):
                self.admin = lowered
            elif m := _PERCENT.fullmatch(lowered):
                self.asked = ("percent", int(m[1]))
            elif lowered.startswith("weight:") and _NUMBER.fullmatch(lowered[7:]):
                self.asked = ("weight", int(lowered[7:]))
            elif lowered.startswith("maxconn:"):
                self.ignored.append(f"{shown(word.encode(), 40)} ignored (lvscheck sets no connection limit)")
            else:
                self.ignored.append(f"{quote_shown(word.encode(), 40)} not understood, ignored")

    @property
    def says_down(self) -> str | None:
        """``maint``, ``down``, ``fail``, ``stopped`` or ``drain`` when the agent wants no new traffic."""
        if self.admin == "maint":
            return "maint"
        if self.operational in _DOWN_WORDS:
            return self.operational
        if self.admin == "drain":
            return "drain"
        return None

    @property
    def understood(self) -> bool:
        return self.admin is not None or self.operational is not None or self.asked is not None


def parse_reply(line: bytes) -> AgentReply:
    return AgentReply(line)


def _scaled(reply: AgentReply, base: int, low: int, high: int) -> tuple[int | None, str]:
    """The weight the reply asks for (``None``: none asked) and how it was found, clamped."""
    if reply.asked is None:
        return None, ""
    kind, number = reply.asked
    asked = (base * number + 50) // 100 if kind == "percent" else number
    how = f"{number}% of {base}" if kind == "percent" else f"weight:{number}"
    weight = max(low, min(high, asked))
    if weight != asked:
        how += f", {asked} clamped to {low}..{high}"
    return weight, how


async def read_agent_line(probe: Probe, port: int, send: bytes) -> bytes:
    """Connect to the agent, send ``send``, and read one bounded line (without its line end)."""
    reader, writer = await probe.connect(port=port, limit=MAX_REPLY + 1)
    if send:
        writer.write(send)
    probe.phase = "waiting for the agent's reply"
    data = b""
    while b"\n" not in data and len(data) <= MAX_REPLY:
        chunk = await reader.read(MAX_REPLY + 1 - len(data))
        if not chunk:
            break
        data += chunk
    line, newline, _ = data.partition(b"\n")
    if not newline and len(data) > MAX_REPLY:
        raise CheckFailed(f"agent reply longer than {MAX_REPLY} bytes without a line end")
    if not data:
        raise CheckFailed("connection closed by the agent without a reply")
    return line.rstrip(b"\r")


def _parse_send(text: str) -> bytes:
    return text.replace("\\n", "\n").encode("utf-8", "surrogateescape")


class AgentCheck(Check):
    name = "agent"
    summary = "HAProxy agent protocol: one line from the server sets its state and weight (up, drain, 75%)"
    options = (
        Option(
            "send",
            "text sent before reading (HAProxy agent-send); a literal \\n is a newline",
            None,
            _parse_send,
        ),
        Option("minweight", "lowest weight taken from the agent", "0", parse_weight),
        Option(
            "maxweight",
            "highest weight taken from the agent (default: the configured weight)",
            None,
            parse_weight,
        ),
    )

    def setup(self) -> None:
        self.send: bytes = self.opts["send"] or b""
        self.minweight: int = self.opts["minweight"]
        configured = self.spec.target.weight
        self.maxweight: int = self.opts["maxweight"] if self.opts["maxweight"] is not None else configured
        if self.minweight > self.maxweight:
            raise OptionError(f"minweight={self.minweight} is above maxweight={self.maxweight}")

    async def probe(self, probe: Probe) -> Outcome:
        assert self.port is not None
        line = await read_agent_line(probe, self.port, self.send)
        return self.judge(parse_reply(line))

    def judge(self, reply: AgentReply) -> Outcome:
        """The verdict of a standalone agent check on ``reply``."""
        said = f"agent says {quote_shown(reply.line, 80)}"
        notes = "".join(f"; {n}" for n in reply.ignored)
        down = reply.says_down
        if down == "drain":
            return Outcome.degraded(f"{said}: draining, weight 0{notes}", 0)
        if down is not None:
            why = f" ({reply.description})" if reply.description else ""
            return Outcome.down(f"{said}{why}{notes}")
        if not reply.understood:
            return Outcome.down(f"{said}: no state or weight in it{notes}")
        configured = self.spec.target.weight
        weight, how = _scaled(reply, configured, self.minweight, self.maxweight)
        if weight is None:
            return Outcome.up(f"{said}{notes}")
        reason = f"{said}: weight {weight} ({how}){notes}"
        if weight < configured:
            return Outcome.degraded(reason, weight)
        return Outcome.up(reason, weight)


# -- the agent beside another check ------------------------------------------------------------

#: ``#lvscheck:`` option of the composite -> option of the agent check it sets.
COMPOSITE_OPTIONS: Mapping[str, str] = MappingProxyType(
    {"agent": "checkport", "agentsend": "send", "agentminweight": "minweight", "agentmaxweight": "maxweight"}
)


class AgentAssisted(Check):
    """A main check and an agent on the same target, prepared together as one check.

    Built by :func:`prepare_with_agent`; its ``name`` is the main check's, so
    results, status and metrics read as before.
    """

    name = "agent-assisted"
    main: Check
    agent: AgentCheck

    def __init__(self, spec: CheckSpec, main: Check, agent: AgentCheck) -> None:
        # Not Check.__init__: every option was parsed by the two checks already.
        self.spec = spec
        self.opts = main.opts
        self.timeout = main.timeout
        self.connect_timeout = main.connect_timeout
        self.port = main.port
        self.cpu_budget = main.cpu_budget
        self.secrets = main.secrets
        self.main = main
        self.agent = agent

    def describe(self) -> str:
        return f"{self.main.describe()} + agent port {self.agent.port}"

    async def probe(self, probe: Probe) -> Outcome:
        outcome = await self.main.probe(probe)
        if not isinstance(outcome, Outcome) or outcome.state is State.DOWN:
            return outcome  # the main check decides up or down; a down real is not asked
        assert self.agent.port is not None
        # The agent gets what is left of the deadline, minus a margin, so that an agent that
        # does not answer leaves the main verdict in place instead of timing the check out.
        loop = asyncio.get_running_loop()
        margin = min(0.05, probe.remaining() / 10)
        try:
            async with asyncio.timeout_at(probe.deadline - margin if probe.remaining() > 0 else loop.time()):
                line = await read_agent_line(probe, self.agent.port, self.agent.send)
        except TimeoutError:
            return _noted(outcome, "agent did not answer in time, weight unchanged")
        except CheckFailed as exc:
            return _noted(outcome, f"agent: {exc.reason}, weight unchanged")
        except OSError as exc:
            text = (
                "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror or str(exc)
            )
            return _noted(outcome, f"agent: {text}, weight unchanged")
        return self._scale(outcome, parse_reply(line))

    def _scale(self, outcome: Outcome, reply: AgentReply) -> Outcome:
        said = f"agent says {quote_shown(reply.line, 80)}"
        notes = "".join(f"; {n}" for n in reply.ignored)
        down = reply.says_down
        if down is not None:
            why = f" ({reply.description})" if reply.description else ""
            return Outcome.degraded(f"{outcome.reason}; {said}{why}: weight 0{notes}", 0, **outcome.details)
        if not reply.understood:
            return _noted(outcome, f"{said}: no state or weight in it, weight unchanged{notes}")
        configured = self.spec.target.weight
        base = configured if outcome.weight is None else outcome.weight
        weight, how = _scaled(reply, base, self.agent.minweight, self.agent.maxweight)
        if weight is None:
            return _noted(outcome, f"{said}{notes}")
        reason = f"{outcome.reason}; {said}: weight {weight} ({how}){notes}"
        if outcome.state is State.DEGRADED or weight < configured:
            return Outcome.degraded(reason, weight, **outcome.details)
        return Outcome.up(reason, weight, **outcome.details)


def _noted(outcome: Outcome, note: str) -> Outcome:
    return outcome.replace(reason=f"{outcome.reason}; {note}")


_ASSISTED: dict[type[Check], type[AgentAssisted]] = {}


def _assisted(main: type[Check]) -> type[AgentAssisted]:
    """A subclass of :class:`AgentAssisted` named like ``main`` (one per check type)."""
    made = _ASSISTED.get(main)
    if made is None:
        attrs: dict[str, Any] = {"name": main.name, "summary": main.summary, "__module__": __name__}
        made = cast(type[AgentAssisted], type(f"{main.__name__}WithAgent", (AgentAssisted,), attrs))
        _ASSISTED[main] = made
    return made


def prepare_with_agent(main: type[Check], spec: CheckSpec) -> Check:
    """``spec`` of check type ``main`` with ``agent=PORT``: the main check with an agent beside it.

    The ``agent*`` options (:data:`COMPOSITE_OPTIONS`) are taken out of the spec
    and validated here, naming them as written; everything else goes to ``main``.
    """
    main_options = {k: v for k, v in spec.options.items() if k not in COMPOSITE_OPTIONS}
    agent_options: dict[str, str] = {}
    parsers = {o.name: o.parse for o in AgentCheck.all_options()}
    for outer, inner in COMPOSITE_OPTIONS.items():
        text = spec.options.get(outer)
        if text is None:
            continue
        try:
            parsers[inner](text)
        except ValueError as exc:
            raise OptionError(
                f"check type {main.name!r}: option {outer}={text!r} is not valid: {exc}"
            ) from None
        agent_options[inner] = text
    if spec.check == "agent":
        raise OptionError("check type 'agent' takes no agent= option: it is the agent")
    checked = main.prepare(CheckSpec(spec.check, spec.target, MappingProxyType(main_options)))
    agent = AgentCheck.prepare(CheckSpec("agent", spec.target, MappingProxyType(agent_options)))
    assert isinstance(agent, AgentCheck)
    return _assisted(main)(spec, checked, agent)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(AgentCheck)
