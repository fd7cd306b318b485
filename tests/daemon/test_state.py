"""The rise/fall state machine: a pure function, tested as a table."""

from __future__ import annotations

import pytest

from lvscheck.daemon.state import Observation, Phase, Track, initial_track, step

OK, FAIL, HOLD = Observation.OK, Observation.FAIL, Observation.HOLD
U, D, N = Phase.UP, Phase.DOWN, Phase.UNKNOWN

# (start, observations, rise, fall, phases after each observation)
CASES = [
    ("unknown decides on the first ok", Track(N), [OK], 3, 3, [U]),
    ("unknown decides on the first fail", Track(N), [FAIL], 3, 3, [D]),
    ("unknown ignores hold", Track(N), [HOLD, OK], 3, 3, [N, U]),
    ("fall=1 drops at once", Track(U), [FAIL], 2, 1, [D]),
    ("fall=3 needs three in a row", Track(U), [FAIL, FAIL, FAIL], 2, 3, [U, U, D]),
    (
        "a success resets the fall count",
        Track(U),
        [FAIL, FAIL, OK, FAIL, FAIL, FAIL],
        2,
        3,
        [U, U, U, U, U, D],
    ),
    ("rise=2 needs two in a row", Track(D), [OK, OK], 2, 3, [D, U]),
    ("a failure resets the rise count", Track(D), [OK, FAIL, OK, OK], 2, 1, [D, D, D, U]),
    ("hold neither counts nor resets", Track(U), [FAIL, HOLD, HOLD, FAIL], 1, 2, [U, U, U, D]),
    ("rise=1 comes back at once", Track(D), [OK], 1, 1, [U]),
    ("settled up stays up", Track(U), [OK, OK], 3, 3, [U, U]),
    ("settled down stays down", Track(D), [FAIL, FAIL], 3, 3, [D, D]),
    ("flapping never moves with rise=fall=2", Track(U), [FAIL, OK, FAIL, OK, FAIL], 2, 2, [U] * 5),
]


@pytest.mark.parametrize(
    ("start", "seen", "rise", "fall", "phases"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_step_table(start: Track, seen: list[Observation], rise: int, fall: int, phases: list[Phase]) -> None:
    track = start
    got = []
    for obs in seen:
        track = step(track, obs, rise, fall)
        got.append(track.phase)
    assert got == phases


def test_streak_and_changing() -> None:
    t = step(Track(U), FAIL, 2, 3)
    assert t == Track(U, 1)
    assert t.changing
    assert not step(t, OK, 2, 3).changing
    assert Track(N).changing


@pytest.mark.parametrize(
    ("weight", "phase"), [(None, Phase.UNKNOWN), (0, Phase.DOWN), (1, Phase.UP), (100, Phase.UP)]
)
def test_initial_track_from_kernel_weight(weight: int | None, phase: Phase) -> None:
    assert initial_track(weight) == Track(phase)
