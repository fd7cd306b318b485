"""The pure parts: per-real history rings and the drain/maintenance state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lvscheck.daemon.history import LATENCIES, TRANSITIONS, History, real_history
from lvscheck.daemon.overrides import Overrides
from lvscheck.errors import ConfigError


def test_latency_ring_keeps_the_last_checks_in_order() -> None:
    h = History()
    for i in range(LATENCIES + 7):
        h.checked("r", i / 1000)
    ring = h.reals["r"]
    assert ring.seq == LATENCIES + 7
    assert ring.recent_latencies() == [i / 1000 for i in range(7, LATENCIES + 7)]
    assert ring.recent_latencies(3) == [
        (LATENCIES + 4) / 1000,
        (LATENCIES + 5) / 1000,
        (LATENCIES + 6) / 1000,
    ]
    h.checked("new", 0.5)
    assert h.reals["new"].recent_latencies() == [0.5]
    doc = real_history(ring)
    assert doc["seq"] == LATENCIES + 7
    assert len(doc["latencies_ms"]) == LATENCIES  # type: ignore[arg-type]


def test_transitions_are_a_short_timeline() -> None:
    h = History()
    for i in range(TRANSITIONS + 3):
        h.changed("r", 1000.0 + i, "up" if i % 2 else "down", "down" if i % 2 else "up", f"because {i}")
    ring = h.reals["r"]
    assert ring.changes == TRANSITIONS + 3
    assert len(ring.transitions) == TRANSITIONS
    assert ring.transitions[-1].reason == f"because {TRANSITIONS + 2}"
    assert real_history(ring)["last_transition"] == 1000.0 + TRANSITIONS + 2
    h.keep({"other"})
    assert "r" not in h.reals
    assert real_history(None)["transitions"] == []


def test_overrides_round_trip_atomically(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ov = Overrides.load(str(state))
    assert not ov.drained
    assert not ov.maintenance
    assert ov.set_drain("10.0.0.1:80", "10.0.1.5:80", True)
    assert not ov.set_drain("10.0.0.1:80", "10.0.1.5:80", True)
    assert ov.set_maintenance("10.0.1.6", True)
    ov.save()
    assert os.listdir(state) == ["overrides.json"]  # no temporary file left behind
    again = Overrides.load(str(state))
    assert again.is_drained("10.0.0.1:80", "10.0.1.5:80")
    assert again.maintenance == {"10.0.1.6"}
    assert again.set_drain("10.0.0.1:80", "10.0.1.5:80", False)
    again.save()
    assert json.loads((state / "overrides.json").read_text()) == {"drained": [], "maintenance": ["10.0.1.6"]}


def test_a_broken_state_file_stops_the_daemon_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "overrides.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"overrides\.json: cannot read"):
        Overrides.load(str(tmp_path))
    (tmp_path / "overrides.json").write_text('{"drained": [1, 2]}')
    with pytest.raises(ConfigError, match="not a drain/maintenance state file"):
        Overrides.load(str(tmp_path))
