"""Shadow mode: ``lvscheck daemon --shadow`` beside a live ldirectord on the same file.

The daemon checks every real as it would when in charge, but writes nothing: no
IPVS write (:class:`DumpOnly` swallows them, so the daemon's view of the table
becomes *what lvscheck would have written*), no fallbackcommand, callback,
monitorfile or alert mail (:class:`QuietActions`, :class:`QuietEvents`), no
reconcile restores, and ldirectord's ``logfile=`` is left alone (the CLI passes
``--logfile none``).  Every ``compare`` seconds it reads the kernel table that
ldirectord maintains and compares, real by real, the kernel's entry (ldirectord's
decision) with the one lvscheck wants (:func:`rows`); :class:`Comparison` (pure)
turns those rows into disagreements that lasted longer than the real's check
interval, and their ends:

* the event log: ``shadow-disagree`` (both verdicts and lvscheck's reason) and
  ``shadow-agree`` (how long it lasted), and ``shadow-summary`` on exit;
* ``lvscheck status``: columns ``ldirectord`` (the kernel's weight) and
  ``lvscheck`` (what lvscheck would write), and ``DIFFERS`` on a disagreeing real;
* metrics: :func:`metric_lines`.

A real lvscheck has not decided yet (never checked) is not compared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lvscheck.adapters.ipvs.table import Op, OpError, Table
from lvscheck.daemon import pools as P
from lvscheck.daemon.actions import SideActions
from lvscheck.daemon.director import Director
from lvscheck.daemon.events import EventSink, MailSettings
from lvscheck.daemon.kernel import Backend
from lvscheck.daemon.state import Phase

__all__ = [
    "Comparison",
    "DumpOnly",
    "QuietActions",
    "QuietEvents",
    "Row",
    "ShadowDirector",
    "metric_lines",
    "rows",
    "verdict",
]

log = logging.getLogger("lvscheck.daemon")

#: At most this many reals are listed by name in the exit summary.
SUMMARY_REALS = 50


class DumpOnly:
    """A :class:`~lvscheck.daemon.kernel.Backend` that reads ``inner`` and writes nothing."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = f"{inner.name}, shadow: read only"
        self.writes = 0  # none are ever sent
        self.batches = 0
        self.withheld = 0  # writes lvscheck would have sent

    def dump(self) -> Table:
        return self.inner.dump()

    def apply(self, ops: list[Op]) -> list[OpError]:
        self.withheld += len(ops)
        return []  # the daemon's view takes them as done: it then holds what lvscheck wants

    def close(self) -> None:
        self.inner.close()


class QuietActions(SideActions):
    """No fallbackcommand, callback, monitorfile or reminder mail: ldirectord does those."""

    def spawn_shell(self, line: str, what: str) -> None:
        log.debug("shadow: would run %s: %s", what, line)

    def monitor(self, pool: Any, rs: Any, result: Any) -> None:
        return None

    def remind_down(self, pools: Any, reals: Any, mail: Any) -> None:
        return None


class QuietEvents(EventSink):
    """The event log and ``--notify-command`` as usual, but no alert mail."""

    def emit(self, event: str, mail: MailSettings | None = None, **fields: Any) -> dict[str, Any]:
        return super().emit(event, None, **fields)

    def remind(self, mail: MailSettings, **fields: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Row:
    """One real: the kernel's weight (ldirectord's decision) and lvscheck's; ``None``: no entry."""

    virtual: str
    real: str
    ldirectord: int | None
    lvscheck: int | None
    reason: str
    grace: float  # the real's check interval: shorter disagreements are not reported


def verdict(weight: int | None) -> str:
    """A kernel entry as a verdict: ``up, weight 5``, ``down (weight 0)``, ``no entry``."""
    if weight is None:
        return "no entry"
    return "down (weight 0)" if weight == 0 else f"up, weight {weight}"


@dataclass(slots=True)
class _Open:
    row: Row
    since: float  # monotonic
    since_wall: float
    reported: bool = False


class Comparison:
    """Disagreements between ldirectord and lvscheck over time (pure: the caller gives the clock)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], _Open] = {}
        self.started = 0  # disagreements reported
        self.ended = 0
        self.seconds = 0.0  # total length of the ended ones
        self.by_real: Counter[tuple[str, str]] = Counter()
        self.compared = 0  # comparisons made

    def observe(self, now: float, wall: float, rows: Iterable[Row]) -> list[tuple[str, dict[str, Any]]]:
        """Compare once; returns the events to emit (``shadow-disagree``, ``shadow-agree``)."""
        self.compared += 1
        out: list[tuple[str, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.virtual, row.real)
            seen.add(key)
            current = self._open.get(key)
            if row.ldirectord == row.lvscheck:
                if current is not None:
                    del self._open[key]
                    if current.reported:
                        out.append(("shadow-agree", self._ended(current, row, now)))
                continue
            if current is None:
                current = self._open[key] = _Open(row, now, wall)
            current.row = row
            if not current.reported and now - current.since > row.grace:
                current.reported = True
                self.started += 1
                self.by_real[key] += 1
                out.append(("shadow-disagree", _fields(row, current)))
        for key in set(self._open) - seen:  # the real left the config (reload)
            current = self._open.pop(key)
            if current.reported:
                out.append(("shadow-agree", self._ended(current, current.row, now, gone=True)))
        return out

    def _ended(self, current: _Open, row: Row, now: float, gone: bool = False) -> dict[str, Any]:
        self.ended += 1
        lasted = now - current.since
        self.seconds += lasted
        fields = {**_fields(row, current), "lasted_s": round(lasted, 1)}
        if gone:
            fields["why"] = "the real left the config"
        return fields

    def disagreeing(self) -> dict[tuple[str, str], Row]:
        """The reals disagreeing now (reported: longer than their check interval)."""
        return {key: o.row for key, o in self._open.items() if o.reported}

    def since(self, virtual: str, real: str) -> float | None:
        """Wall-clock start of the reported disagreement of this real, if any."""
        current = self._open.get((virtual, real))
        return current.since_wall if current is not None and current.reported else None

    def summary(self) -> dict[str, Any]:
        """Counts, and the reals that disagreed most (at most :data:`SUMMARY_REALS`)."""
        worst = self.by_real.most_common(SUMMARY_REALS)
        return {
            "comparisons": self.compared,
            "disagreements": self.started,
            "still_open": len(self.disagreeing()),
            "ended_seconds": round(self.seconds, 1),
            "reals": [f"{v} real {r}: {n}" for (v, r), n in worst],
        }


def _fields(row: Row, current: _Open) -> dict[str, Any]:
    return {
        "virtual": row.virtual,
        "real": row.real,
        "ldirectord": verdict(row.ldirectord),
        "lvscheck": verdict(row.lvscheck),
        "reason": row.reason,
        "since": round(current.since_wall, 3),
    }


def rows(director: Director, kernel: Table) -> Iterator[Row]:
    """Each decided real of the director: the weight ``kernel`` gives it and the one lvscheck wants."""
    readd = bool(director.config is not None and director.config.settings.readdquiescent)
    for pool in director.layout.pools.values():
        sk = pool.service.key
        want = P.desired_pool(pool, director.reals, director.kernel.dests.get(sk, {}), readdquiescent=readd)
        in_kernel = kernel.dests.get(sk, {})
        for sid in pool.slots:
            rs = director.reals[sid]
            if rs.track.phase is Phase.UNKNOWN:
                continue
            key = rs.slot.dest.key
            mine, theirs = want.dests.get(key), in_kernel.get(key)
            reason = rs.last.reason if rs.last is not None else (rs.maintenance or "fixed")
            yield Row(
                pool.name,
                str(rs.slot.dest),
                None if theirs is None else theirs.weight,
                None if mine is None else mine.weight,
                reason,
                rs.slot.interval,
            )


class ShadowDirector(Director):
    """A :class:`Director` that writes nothing and compares its decisions with the kernel's."""

    def __init__(self, config_path: str, backend: Backend, *, compare: float = 2.0, **kwargs: Any) -> None:
        events = kwargs.pop("events", None) or QuietEvents()
        super().__init__(config_path, DumpOnly(backend), events=events, **kwargs)
        self.options.reconcile = 0  # never restore: the table is ldirectord's
        self.actions = QuietActions(self.events)
        self.compare_every = compare
        self.comparison = Comparison()
        self.ldirectord_table = Table()

    async def run(self) -> None:
        self._background.append(asyncio.get_running_loop().create_task(self._compare_loop()))
        await super().run()

    async def _compare_loop(self) -> None:
        while True:
            await asyncio.sleep(self.compare_every)
            if self.state != "running":
                continue
            try:
                self.compare()
            except Exception:
                log.exception("shadow: comparing with the kernel table failed")

    def compare(self, now: float | None = None) -> None:
        """Read the kernel table (ldirectord's) and compare it with lvscheck's decisions once."""
        assert isinstance(self.backend, DumpOnly)
        try:
            self.ldirectord_table = self.backend.inner.dump()
        except Exception as exc:
            self.events.emit("ipvs-error", message=f"shadow: reading the IPVS table: {exc}")
            return
        found = rows(self, self.ldirectord_table)
        events = self.comparison.observe(time.monotonic() if now is None else now, time.time(), found)
        for kind, fields in events:
            self.events.emit(kind, **fields)

    async def _shutdown(self) -> None:
        summary = self.comparison.summary()
        self.events.emit("shadow-summary", config=self.config_path, **summary)
        log.warning(
            "shadow summary: %d comparisons, %d disagreements longer than a check interval, %d still open%s",
            summary["comparisons"],
            summary["disagreements"],
            summary["still_open"],
            "".join(f"\n  {line}" for line in summary["reals"]),
        )
        await super()._shutdown()

    def status(self) -> dict[str, Any]:
        doc = super().status()
        doc["shadow"] = True
        doc["shadow_disagreements"] = len(self.comparison.disagreeing())
        doc["shadow_disagreements_total"] = self.comparison.started
        for v, pool in zip(doc["virtuals"], self.layout.pools.values(), strict=True):
            in_kernel = self.ldirectord_table.dests.get(pool.service.key, {})
            for r, sid in zip(v["reals"], pool.slots, strict=True):
                kd = in_kernel.get(self.reals[sid].slot.dest.key)
                r["lvscheck_weight"] = r["kernel_weight"]  # the view holds what lvscheck would write
                r["kernel_weight"] = r["ldirectord_weight"] = None if kd is None else kd.weight
                r["disagree_since"] = self.comparison.since(v["virtual"], r["real"])
        return doc


def metric_lines(comparison: Comparison) -> list[str]:
    """Prometheus lines: the disagreement gauge and counter, and one series per disagreeing real."""
    now = comparison.disagreeing()
    out = [
        "# HELP lvscheck_shadow_disagreements Reals whose verdict differs from ldirectord's now.",
        "# TYPE lvscheck_shadow_disagreements gauge",
        f"lvscheck_shadow_disagreements {len(now)}",
        "# HELP lvscheck_shadow_disagreements_total Disagreements longer than a check interval.",
        "# TYPE lvscheck_shadow_disagreements_total counter",
        f"lvscheck_shadow_disagreements_total {comparison.started}",
        "# HELP lvscheck_shadow_disagreeing 1 for each real that disagrees with ldirectord now.",
        "# TYPE lvscheck_shadow_disagreeing gauge",
    ]
    for (virtual, real), row in sorted(now.items()):
        out.append(
            f'lvscheck_shadow_disagreeing{{virtual="{_esc(virtual)}",real="{_esc(real)}",'
            f'ldirectord="{_esc(verdict(row.ldirectord))}",lvscheck="{_esc(verdict(row.lvscheck))}"}} 1'
        )
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
