"""An agent beside a real check, run by the daemon: the agent's line becomes the IPVS weight.

The main check's server is the counting HTTP responder of test_shared_probe.py and
the agent is test_agent.py's line server (the agent protocol has no reference
server); the director and its in-memory IPVS table are the real ones.
"""

from __future__ import annotations

from tests.checks.test_agent import LineAgent
from tests.daemon.running import run_with, until, virtual
from tests.daemon.test_shared_probe import VIPS, CountingServer, server, weights
from tests.peers.hostile import serve

from lvscheck.adapters.ipvs.table import MemoryIPVS
from lvscheck.config.model import Config, LvscheckSettings
from lvscheck.daemon.director import Director

__all__ = ["server"]  # the fixture, used by name


def test_agent_beside_the_check_sets_the_ipvs_weight_through_the_daemon(
    server: tuple[CountingServer, int],
) -> None:
    """``#lvscheck: agent=PORT``: the composite check is one check to the daemon; no daemon change."""
    _srv, port = server
    agent = LineAgent()
    with serve(agent.handle) as agent_port:
        settings = LvscheckSettings(
            rise=1, interval=0.3, fastinterval=0.1, jitter=0.0, options={"agent": str(agent_port)}
        )
        cfg = Config("test.cf", virtuals=(virtual(VIPS[0], [(port, 10)], lvscheck=settings),))
        ipvs = MemoryIPVS()
        director = Director("test.cf", ipvs, loader=lambda _p: cfg)

        def w() -> int | None:
            return weights(ipvs, port)[0]

        async def body() -> None:
            agent.reply = b"50%\n"
            await until(lambda: w() == 5, 5, "weight 5 from the agent's 50%")
            agent.reply = b"drain\n"
            await until(lambda: w() == 0, 5, "drained to 0 by the agent")
            real = director.status()["virtuals"][0]["reals"][0]
            assert real["state"] == "up"  # the main check decides up/down: drained, not down
            assert real["reason"] == "HTTP 200 OK, 'Still alive' found; agent says 'drain': weight 0"
            agent.reply = b"ready\n"
            await until(lambda: w() == 10, 5, "back to 10")

        run_with(director, body)
