"""What each real did lately: a small fixed-size ring of check latencies and of state changes.

The director calls :meth:`History.checked` for every result and
:meth:`History.changed` for every change of phase; both are a dict look-up and
a few stores (no allocation once a real's ring exists), so the hot path stays
cheap with 10,000 reals.  The status page, ``/status.json`` and the metrics
read the rings; nothing here looks at sockets or IPVS.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

__all__ = ["LATENCIES", "TRANSITIONS", "History", "RealHistory", "Transition"]

#: How many check latencies each real keeps (the page's sparkline).
LATENCIES = 24
#: How many state changes each real keeps (the page's timeline).
TRANSITIONS = 6


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a real's phase (wall-clock time)."""

    at: float
    was: str
    now: str
    reason: str


@dataclass(slots=True)
class RealHistory:
    """The rings of one real; ``seq`` counts checks, ``changes`` counts transitions."""

    latencies: list[float] = field(default_factory=lambda: [0.0] * LATENCIES)
    seq: int = 0
    changes: int = 0
    transitions: list[Transition] = field(default_factory=list)

    def recent_latencies(self, n: int = LATENCIES) -> list[float]:
        """The last ``min(n, seq, LATENCIES)`` latencies (seconds), oldest first."""
        k = min(n, self.seq, LATENCIES)
        ring = self.latencies
        end = self.seq % LATENCIES
        return [ring[(end - k + i) % LATENCIES] for i in range(k)]

    @property
    def last_transition(self) -> Transition | None:
        return self.transitions[-1] if self.transitions else None


class History:
    """One :class:`RealHistory` per real id; reals a reload removed are dropped by :meth:`keep`."""

    def __init__(self) -> None:
        self.reals: dict[str, RealHistory] = {}
        #: ids checked or changed since the status rows last took this set (statusrows.py swaps it
        #: for an empty one at each pass); at most one entry per real
        self.touched: set[str] = set()

    def get(self, real_id: str) -> RealHistory:
        h = self.reals.get(real_id)
        if h is None:
            h = self.reals[real_id] = RealHistory()
        return h

    def checked(self, real_id: str, latency: float) -> None:
        """A check of ``real_id`` finished after ``latency`` seconds."""
        h = self.reals.get(real_id) or self.get(real_id)
        h.latencies[h.seq % LATENCIES] = latency
        h.seq += 1
        self.touched.add(real_id)

    def changed(self, real_id: str, at: float, was: str, now: str, reason: str) -> None:
        """``real_id`` went from phase ``was`` to ``now`` at wall-clock ``at``."""
        h = self.get(real_id)
        h.changes += 1
        self.touched.add(real_id)
        h.transitions.append(Transition(at, was, now, reason))
        if len(h.transitions) > TRANSITIONS:
            del h.transitions[0]

    def keep(self, real_ids: Container[str]) -> None:
        """Forget the reals not in ``real_ids`` (after a reload)."""
        for rid in self.gone(real_ids):
            self.forget(rid)

    def gone(self, real_ids: Container[str]) -> list[str]:
        """The reals with a history that are not in ``real_ids``."""
        return [r for r in self.reals if r not in real_ids]

    def forget(self, real_id: str) -> None:
        self.reals.pop(real_id, None)
        self.touched.discard(real_id)


def real_history(h: RealHistory | None) -> dict[str, object]:
    """The history fields of one real in the status document (JSON-ready)."""
    if h is None:
        return {
            "seq": 0,
            "latencies_ms": [],
            "transitions": [],
            "transitions_total": 0,
            "last_transition": None,
        }
    return {
        "seq": h.seq,
        "latencies_ms": [round(x * 1000, 2) for x in h.recent_latencies()],
        "transitions": [[t.at, t.was, t.now, t.reason] for t in h.transitions],
        "transitions_total": h.changes,
        "last_transition": h.transitions[-1].at if h.transitions else None,
    }
