"""Shadow mode on the host: a real nginx, and "ldirectord's" table in memory.

The in-memory table stands for the kernel table ldirectord maintains: the test sets
it as ldirectord would, the shadow daemon reads it and must never write it.
tests/daemon/test_ipvs_shadow.py does the same beside Debian's ldirectord in the guest.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers.nginx import Nginx, start_nginx

from lvscheck.adapters.ipvs.table import Dest, MemoryIPVS, Service, ServiceKey
from lvscheck.daemon.events import EventSink
from lvscheck.daemon.metrics import render_metrics
from lvscheck.daemon.shadow import Comparison, Row, ShadowDirector, verdict

GOOD = ServiceKey.tcp("10.9.0.1", 80)
BAD = ServiceKey.tcp("10.9.0.2", 80)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng


def _ldirectords_table(port: int, bad_weight: int) -> MemoryIPVS:
    ipvs = MemoryIPVS()
    for key, weight in ((GOOD, 5), (BAD, bad_weight)):
        ipvs.table.add(Service(key, "wrr"), [Dest("127.0.0.1", port, "masq", weight)])
    return ipvs


def test_shadow_reports_a_disagreement_and_never_writes(nginx: Nginx, tmp_path: Path) -> None:
    cf = tmp_path / "ld.cf"
    cf.write_text(
        "checktimeout=2\nfailurecount=1\nquiescent=yes\n"
        f'fallbackcommand="touch {tmp_path}/fallback-ran"\n'
        f"virtual=10.9.0.1:80\n\treal=127.0.0.1:{nginx.http_port} masq 5\n\tservice=http\n"
        '\trequest="test.html"\n\treceive="Still alive"\n\tscheduler=wrr\n'
        "\t#lvscheck: interval=0.2 rise=1\n"
        f"virtual=10.9.0.2:80\n\treal=127.0.0.1:{nginx.http_port} masq 5\n\tservice=http\n"
        f'\trequest="down"\n\tscheduler=wrr\n\tmonitorfile={tmp_path}/monitor\n'
        "\t#lvscheck: interval=0.2 rise=1\n"
    )
    ipvs = _ldirectords_table(nginx.http_port, 5)  # "ldirectord" says the 503 real is up
    before = ipvs.dump()
    events_path = tmp_path / "events.jsonl"
    director = ShadowDirector(str(cf), ipvs, compare=0.1, events=EventSink(str(events_path)))
    director.load_initial()
    seen: dict[str, object] = {}

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(director.run())
        start = time.monotonic()
        while not director.comparison.disagreeing() and time.monotonic() - start < 10:
            await asyncio.sleep(0.05)
        seen["status"] = director.status()
        seen["metrics"] = render_metrics(director)
        assert ipvs.dump().dests == before.dests  # never written
        # ldirectord comes round to lvscheck's view: the disagreement ends
        ipvs.table.dests[BAD][("127.0.0.1", nginx.http_port)] = Dest("127.0.0.1", nginx.http_port, "masq", 0)
        while director.comparison.disagreeing() and time.monotonic() - start < 10:
            await asyncio.sleep(0.05)
        director.stop()
        await task

    asyncio.run(main())
    assert ipvs.writes == 0
    assert ipvs.batches == 0
    assert director.backend.withheld > 0  # what lvscheck would have written
    assert not (tmp_path / "monitor").exists()  # ldirectord writes its monitorfile, not the shadow
    status = seen["status"]
    assert isinstance(status, dict)
    assert status["shadow"] is True
    assert status["shadow_disagreements"] == 1
    good, bad = (v["reals"][0] for v in status["virtuals"])
    assert (good["ldirectord_weight"], good["lvscheck_weight"], good["disagree_since"]) == (5, 5, None)
    assert (bad["ldirectord_weight"], bad["lvscheck_weight"]) == (5, 0)
    assert bad["disagree_since"] is not None
    metrics = str(seen["metrics"])
    assert "lvscheck_shadow_disagreements 1" in metrics
    assert "lvscheck_shadow_disagreements_total 1" in metrics
    real = f"127.0.0.1:{nginx.http_port}"
    assert (
        f'lvscheck_shadow_disagreeing{{virtual="10.9.0.2:80",real="{real}",'
        'ldirectord="up, weight 5",lvscheck="down (weight 0)"} 1'
    ) in metrics
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    start = next(e for e in events if e["event"] == "shadow-disagree")
    assert (start["virtual"], start["ldirectord"], start["lvscheck"]) == (
        "10.9.0.2:80",
        "up, weight 5",
        "down (weight 0)",
    )
    assert start["reason"].startswith("HTTP 503")
    end = next(e for e in events if e["event"] == "shadow-agree")
    assert end["ldirectord"] == "down (weight 0)"
    assert end["lasted_s"] > 0
    summary = next(e for e in events if e["event"] == "shadow-summary")
    assert summary["disagreements"] == 1
    assert summary["still_open"] == 0
    assert summary["reals"] == [f"10.9.0.2:80 real {real}: 1"]
    assert kinds.index("shadow-summary") < kinds.index("stop")
    assert not (tmp_path / "fallback-ran").exists()  # the pool of 10.9.0.2 was all down


def test_comparison_reports_only_after_a_check_interval() -> None:
    c = Comparison()

    def row(ld: int | None, lv: int | None) -> Row:
        return Row("v", "r", ld, lv, "why", grace=2.0)

    assert c.observe(0.0, 100.0, [row(5, 0)]) == []
    assert c.observe(1.5, 101.5, [row(5, 0)]) == []
    assert c.observe(1.9, 101.9, [row(0, 0)]) == []  # agreed again before the interval: never reported
    assert c.observe(3.0, 103.0, [row(5, 0)]) == []
    [(kind, fields)] = c.observe(5.5, 105.5, [row(5, 0)])
    assert kind == "shadow-disagree"
    assert fields == {
        "virtual": "v",
        "real": "r",
        "ldirectord": "up, weight 5",
        "lvscheck": "down (weight 0)",
        "reason": "why",
        "since": 103.0,
    }
    assert c.disagreeing() == {("v", "r"): row(5, 0)}
    [(kind, fields)] = c.observe(7.0, 107.0, [row(None, None)])
    assert (kind, fields["lasted_s"]) == ("shadow-agree", 4.0)
    assert c.summary()["disagreements"] == 1
    assert verdict(None) == "no entry"
