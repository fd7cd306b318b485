"""The pools part of the daemon alone: result -> observation -> rise/fall -> desired weights, guard.

Pure functions on a layout from a real parsed ldirectord.cf; no sockets, no clock.
"""

from __future__ import annotations

from lvscheck.adapters.ipvs.table import Dest
from lvscheck.config import parse_text
from lvscheck.config.prepare import prepare
from lvscheck.daemon.pools import PoolState, RealState, classify, desired_dest, desired_pool, observe
from lvscheck.daemon.state import Phase, Track
from lvscheck.model import Result, State, Target

CF = """\
quiescent=no
fallback=127.0.0.9 masq

virtual=10.0.1.1:80
\treal=10.0.0.2 masq 3
\treal=10.0.0.3:8080 gate 2
\treal=10.0.0.4:8080 gate 2
\tservice=http
\tquiescent=yes

virtual=10.0.1.1:53
\treal=10.0.0.2:53 gate
\tprotocol=udp
\tservice=dns
\trequest="example.org"
\treceive="1.2.3.4"
"""


def _pools(text: str = CF):  # type: ignore[no-untyped-def]
    prepared = prepare(parse_text(text, "lvs.cf"))
    layout = prepared.layout
    reals = {sid: RealState(slot, Track(Phase.UP)) for sid, slot in layout.slots.items()}
    return layout, reals


def _result(state: State, reason: str = "", fault: str | None = None) -> Result:
    details = {"fault": fault} if fault else {}
    return Result(
        "http", Target("10.0.0.2", 80, weight=3), state, 3 if state is State.UP else 0, reason, 0.001, details
    )


def test_desired_dest_follows_quiescent() -> None:
    layout, _ = _pools()
    web, dns = layout.pools["tcp:10.0.1.1:80"], layout.pools["udp:10.0.1.1:53"]
    slot = layout.slots[web.slots[0]]
    assert desired_dest(slot, web, Phase.UP, None) == slot.dest
    assert desired_dest(slot, web, Phase.UP, 7) == Dest("10.0.0.2", 80, "masq", 7)
    assert desired_dest(slot, web, Phase.DOWN, None) == Dest("10.0.0.2", 80, "masq", 0)
    assert desired_dest(slot, web, Phase.UNKNOWN, None) == Dest("10.0.0.2", 80, "masq", 0)
    slot = layout.slots[dns.slots[0]]
    assert desired_dest(slot, dns, Phase.DOWN, None) is None  # quiescent=no: removed
    assert desired_dest(slot, dns, Phase.UNKNOWN, None) is None


def test_classify() -> None:
    assert classify(_result(State.UP), 0.0, 1.0) == "ok"
    assert classify(_result(State.DOWN, "connection refused"), 0.0, 1.0) == "fail"
    assert classify(_result(State.DOWN, "connection refused"), 5.0, 1.0) == "suspect"  # started late
    assert classify(_result(State.DOWN, "network is unreachable while connecting"), 0.0, 1.0) == "suspect"
    assert classify(_result(State.DOWN, "Too many open files", fault="director"), 0.0, 1.0) == "director"


def test_pool_guard_holds_director_side_failures() -> None:
    layout, reals = _pools()
    pool = layout.pools["tcp:10.0.1.1:80"]
    pstate = PoolState()
    rss = [reals[sid] for sid in pool.slots]
    director_side = _result(State.DOWN, "director-side failure: Too many open files", fault="director")
    for _ in range(5):
        for rs in rss:
            outcome = observe(rs, pstate, pool, director_side, "director")
            assert outcome.held
            assert not outcome.transition
    assert pstate.guarded
    assert all(rs.track.phase is Phase.UP for rs in rss)
    # plain failures while most of the pool fails for a suspect reason are held too
    unreachable = _result(State.DOWN, "network is unreachable")
    refused = _result(State.DOWN, "connection refused")
    for _ in range(3):
        observe(rss[0], pstate, pool, refused, "fail")
        for rs in rss[1:]:
            observe(rs, pstate, pool, unreachable, "suspect")
    assert pstate.guarded
    assert all(rs.track.phase is Phase.UP for rs in rss)
    # the director heals: the guard lifts, and then one real's failures count again
    for rs in rss:
        observe(rs, pstate, pool, _result(State.UP), "ok")
    assert not pstate.guarded
    outcome = observe(rss[0], pstate, pool, refused, "fail")  # fall=1 (failurecount default)
    assert outcome.transition
    assert rss[0].track.phase is Phase.DOWN


def test_desired_pool_fallback_and_readdquiescent() -> None:
    layout, reals = _pools()
    dns = layout.pools["udp:10.0.1.1:53"]
    (sid,) = dns.slots
    reals[sid].track = Track(Phase.DOWN)
    want = desired_pool(dns, reals, {}, readdquiescent=False)
    assert want.all_down
    assert want.fallback_on
    assert list(want.dests) == [("127.0.0.9", 53)]  # the sorry server, the virtual's port
    web = layout.pools["tcp:10.0.1.1:80"]
    first = reals[web.slots[0]]
    first.track = Track(Phase.DOWN)
    # never written since it went down: the weight-0 entry is (re)added
    assert desired_pool(web, reals, {}, readdquiescent=False).dests[first.slot.dest.key].weight == 0
    # written, then deleted by hand: ldirectord leaves it out unless readdquiescent=yes
    first.placed = True
    assert first.slot.dest.key not in desired_pool(web, reals, {}, readdquiescent=False).dests
    assert desired_pool(web, reals, {}, readdquiescent=True).dests[first.slot.dest.key].weight == 0


def test_maintenance_holds_results() -> None:
    layout, reals = _pools()
    pool = layout.pools["tcp:10.0.1.1:80"]
    rs = reals[pool.slots[0]]
    rs.maintenance = "10.0.0.2"
    rs.track = Track(Phase.DOWN)
    outcome = observe(rs, PoolState(), pool, _result(State.UP), "ok")
    assert outcome.kind == "maintenance"
    assert rs.track.phase is Phase.DOWN
    assert rs.checks == 1
    assert rs.last is not None
