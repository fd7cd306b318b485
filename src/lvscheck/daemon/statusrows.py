"""The status document and the metrics as text, kept per real so a request only joins them.

``lvscheck status``, ``/status.json``, the status page's snapshot and ``/metrics`` at 40,000
reals used to be built in one go on the event loop (5.5 s of the loop).  Here each real
keeps its rendered JSON row (exactly what ``json.dumps`` makes of
:func:`lvscheck.daemon.status.real_row`) and its metrics lines.  A pass (:meth:`StatusRows.refresh`)
finds the reals that changed since the previous pass and renders only those:

* per virtual, a few C-level maps take a stamp of every real (its last result, the time of
  it, its check count, track, maintenance, slow start and slot: every result, transition,
  maintenance change and reload makes new ones) and its kernel entry; the lists are compared
  with the previous pass's (identity first, so unchanged virtuals cost a list compare);
* a change of the drained set re-renders the virtuals it names; reals in a slow start are
  rendered every pass (their row says how long the climb has left).

The pass runs in slices of :data:`SLICE` seconds (the loop runs between them) once a second in
the background, so that a request finds at most a second of checks to render, and again at
each request (what changed since).  Then the request joins the rows (the daemon-wide fields and
the virtuals' flags are rendered fresh) and, for the metrics, writes each real's
last-check age from the kept time.  Each row is one real's state at one moment; a document
is assembled after the last slice, in one go.

A director whose :meth:`status` adds fields (``--shadow``) gets the one-go document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import weakref
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from lvscheck.daemon import metrics as M
from lvscheck.daemon import status as S
from lvscheck.daemon.history import LATENCIES

if TYPE_CHECKING:
    from collections.abc import Callable

    from lvscheck.adapters.ipvs.table import Dest
    from lvscheck.config.pools import Layout, Pool
    from lvscheck.daemon.director import Director
    from lvscheck.daemon.history import RealHistory
    from lvscheck.daemon.pools import RealState

__all__ = ["SLICE", "StatusRows", "rows_of"]

log = logging.getLogger("lvscheck.daemon")

#: Longest run of rendering between two yields to the loop (seconds).
SLICE = 0.005
#: Rows rendered between two looks at the clock.
CHUNK = 32
#: Seconds between two background passes.
EVERY = 1.0

_string: Callable[[str], str] = encode_basestring_ascii
#: What changes when a real's row may change (a new result brings a new time and a new Result).
#: (Every result sets ``last_time``, ``last`` and ``checks`` in one go: the time stands for all three.)
_stamp = attrgetter("last_time", "track", "maintenance", "ramp", "slot")
_INFINITE = (math.inf, -math.inf)
_NO_HISTORY = (
    '"seq": 0, "latencies_ms": [], "transitions": [], "transitions_total": 0, "last_transition": null'
)


def _json(value: Any) -> str:
    """``json.dumps(value, default=str)`` of one value, the common types without a call into json."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and value == value and value not in _INFINITE:
        return float.__repr__(value)
    return json.dumps(value, default=str)


class HistoryText:
    """One real's history fields as JSON, kept between renders: a new check renders one latency.

    The latencies are kept as their joined text (one string, not one per latency: 40,000 reals)."""

    __slots__ = ("changes", "count", "latencies", "seq", "transitions")

    def __init__(self) -> None:
        self.seq = 0
        self.latencies = ""  # ``repr(round(ms, 2))`` of each, oldest first, joined by ", "
        self.count = 0
        self.changes = -1
        self.transitions = "[]"

    def render(self, h: RealHistory | None) -> str:
        if h is None:
            return _NO_HISTORY
        new = h.seq - self.seq
        if new < 0 or new >= LATENCIES:  # (a new history after a reload, or many checks since)
            latest = h.recent_latencies()
            self.latencies, self.count = ", ".join([repr(round(x * 1000, 2)) for x in latest]), len(latest)
        elif new:
            text = ", ".join([repr(round(x * 1000, 2)) for x in h.recent_latencies(new)])
            self.latencies = f"{self.latencies}, {text}" if self.count else text
            self.count += new
            at = 0
            for _ in range(self.count - LATENCIES):  # drop the oldest beyond the ring's size
                at = self.latencies.index(", ", at) + 2
            if at:
                self.latencies, self.count = self.latencies[at:], LATENCIES
        self.seq = h.seq
        if h.changes != self.changes:
            self.changes = h.changes
            rows = [[t.at, t.was, t.now, t.reason] for t in h.transitions]
            self.transitions = json.dumps(rows, default=str) if rows else "[]"
        last = _json(h.transitions[-1].at) if h.transitions else "null"
        return (
            f'"seq": {h.seq}, "latencies_ms": [{self.latencies}], '
            f'"transitions": {self.transitions}, "transitions_total": {h.changes}, "last_transition": {last}'
        )


def render_row(
    d: Director,
    name: str,
    sid: str,
    rs: RealState,
    kd: Dest | None,
    drained: bool,
    h: RealHistory | None,
    kept: HistoryText,
) -> str:
    """``json.dumps(real_row(...), default=str)``: ``name`` is ``_string(str(rs.slot.dest))``.

    Integers are written with ``{}`` and floats with ``!r`` (what ``json`` does for them);
    strings the daemon does not make (reasons, names) through json's own escaping."""
    last = rs.last
    dest = rs.slot.dest
    track = rs.track
    fixed = rs.slot.plan.fixed
    weight = "null" if kd is None else kd.weight
    when = "null" if rs.last_time is None else _json(rs.last_time)
    if last is None:
        check = result = latency = reason = "null"
    else:
        check, result = _json(last.check), _string(last.state.value)
        latency, reason = _json(last.latency_ms), _json(last.reason)
    ramp = "null" if rs.ramp is None else _json(S.ramp_fields(rs))
    shared = "null" if sid not in d.probe_of else _json(S.shared_fields(d, sid))
    return (
        f'{{"real": {name}, "state": {_string(track.phase.value)}, "streak": {track.streak}, '
        f'"configured_weight": {dest.weight}, "kernel_weight": {weight}, '
        f'"forwarding": {_json(dest.fwd)}, "check": {check}, "last_check": {when}, '
        f'"result": {result}, "latency_ms": {latency}, "reason": {reason}, "checks": {rs.checks}, '
        f'"fixed": {"null" if fixed is None else _json(fixed.value)}, '
        f'"maintenance": {"null" if rs.maintenance is None else _json(rs.maintenance)}, '
        f'{kept.render(h)}, "drained": {"true" if drained else "false"}, '
        f'"slowstart": {ramp}, "shared_probe": {shared}}}'
    )


@dataclass(slots=True)
class MetricRow:
    """One real's per-real metric lines (each ending in a newline); the age is written per request."""

    state: str
    weight: str
    latency: str  # "" before its first result
    changes: str
    drained: str
    maintenance: str
    age_prefix: str  # "" before its first result
    last_time: float


def render_metric_row(
    labels: str, rs: RealState, kd: Dest | None, drained: bool, h: RealHistory | None
) -> MetricRow:
    """What :func:`lvscheck.daemon.metrics.render_metrics` writes for one real."""
    timed = rs.last is not None and rs.last_time is not None
    return MetricRow(
        f"lvscheck_real_state{labels} {M.PHASE_VALUE[rs.track.phase.value]}\n",
        f"lvscheck_real_weight{labels} {-1 if kd is None else kd.weight}\n",
        f"lvscheck_real_check_latency_seconds{labels} {rs.last.latency:.6f}\n" if rs.last and timed else "",
        f"lvscheck_real_transitions_total{labels} {0 if h is None else h.changes}\n",
        f"lvscheck_real_drained{labels} {int(drained)}\n",
        f"lvscheck_real_maintenance{labels} {int(rs.maintenance is not None)}\n",
        f"lvscheck_real_last_check_age_seconds{labels} " if timed else "",
        rs.last_time if timed and rs.last_time is not None else 0.0,
    )


@dataclass(slots=True)
class _Virtual:
    """The kept rows of one virtual, by the position of the real in it."""

    pool: Pool
    sids: list[str]
    reals: list[RealState]
    keys: list[tuple[str, int]]
    texts: list[str]  # each real's address (IP:PORT)
    names: list[str]  # the JSON string of each real's address
    labels: list[str]  # the metric labels of each real
    stamps: list[Any] | None = None
    kds: list[Any] | None = None
    rows: list[str] = field(default_factory=list)
    metric_rows: list[MetricRow | None] = field(default_factory=list)
    histories: list[HistoryText] = field(default_factory=list)
    force: bool = False  # render every real (drained set changed, metrics just asked for)
    again: set[int] = field(default_factory=set)  # render these whatever their stamp (slow start)


class StatusRows:
    """The rows of one director; see the module's doc.  :func:`rows_of` gives the shared one."""

    def __init__(self, director: Director, every: float = EVERY) -> None:
        self.director = director
        self.every = every
        self.metrics = False  # keep metric rows too (the HTTP listener asks for it)
        self.rendered = 0  # rows rendered since the start (tests: only what changed is rendered)
        self.passes = 0
        self.longest_slice = 0.0  # seconds: the longest run between two yields of a pass
        self._layout: Layout | None = None
        self._virtuals: list[_Virtual] = []
        self._by_sid: dict[str, tuple[_Virtual, int]] = {}
        self._drained: frozenset[tuple[str, str]] = frozenset()
        self._ramping: set[str] = set()
        self._lock = asyncio.Lock()
        self._started = 0.0  # when the current slice began (perf_counter)
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Run the background pass (once; it ends with the loop or :meth:`close`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._background())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if self.director.state == "stopping":
                return
            try:
                await self.refresh()
            except Exception:
                log.exception("status rows: background pass failed")

    # -- the pass ---------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        """A new layout (start, reload): new virtuals, every row to render (in slices)."""
        d = self.director
        while True:
            layout, reals = d.layout, d.reals
            virtuals: list[_Virtual] = []
            by_sid: dict[str, tuple[_Virtual, int]] = {}
            started = time.perf_counter()
            for pool in layout.pools.values():
                virtual = _new_virtual(pool, [reals[sid] for sid in pool.slots])
                for i, sid in enumerate(virtual.sids):
                    by_sid[sid] = (virtual, i)
                virtuals.append(virtual)
                if time.perf_counter() - started >= SLICE:
                    self.longest_slice = max(self.longest_slice, time.perf_counter() - started)
                    await asyncio.sleep(0)
                    if d.layout is not layout:
                        break  # a reload between two slices: start over on its layout
                    started = time.perf_counter()
            if d.layout is layout:
                self._layout, self._virtuals, self._by_sid = layout, virtuals, by_sid
                return

    def _note_overrides(self) -> None:
        """Drained set changed: the virtuals it names render all their reals; slow starts render."""
        d = self.director
        drained = frozenset(d.overrides.drained)
        if drained != self._drained:
            names = {virtual for virtual, _real in drained ^ self._drained}
            for v in self._virtuals:
                if v.pool.name in names:
                    v.force = True
            self._drained = drained
        ramping = set(d.ramping)
        for sid in ramping | self._ramping:  # climbing, or just stopped: its slowstart field
            where = self._by_sid.get(sid)
            if where is not None:
                where[0].again.add(where[1])
        self._ramping = ramping

    async def refresh(self) -> None:
        """One pass: render the rows of the reals that changed since the previous one (sliced)."""
        async with self._lock:
            await self._refresh()
            self.passes += 1

    async def _refresh(self) -> None:
        d = self.director
        while True:
            if self._layout is not d.layout:  # (a reload switches layout and reals together)
                await self._rebuild()
            self._note_overrides()
            self._started = time.perf_counter()
            if await self._render_all():
                return

    async def _render_all(self) -> bool:
        """Render what changed in every virtual; False when a reload came between two slices."""
        for v in self._virtuals:
            changed = self._changed(v)
            for start in range(0, len(changed), CHUNK):
                self._render(v, changed[start : start + CHUNK])
                if time.perf_counter() - self._started >= SLICE and not await self._pause():
                    return False
            if time.perf_counter() - self._started >= SLICE and not await self._pause():
                return False
        self.longest_slice = max(self.longest_slice, time.perf_counter() - self._started)
        return True

    async def _pause(self) -> bool:
        """Let the loop run; False if the layout changed meanwhile."""
        self.longest_slice = max(self.longest_slice, time.perf_counter() - self._started)
        await asyncio.sleep(0)
        if self._layout is not self.director.layout:
            return False
        self._note_overrides()
        self._started = time.perf_counter()
        return True

    def _changed(self, v: _Virtual) -> list[int]:
        """The positions in ``v`` whose row is out of date (and take the new stamps)."""
        d = self.director
        stamps = list(map(_stamp, v.reals))
        bucket = d.kernel.dests.get(v.pool.service.key) or {}
        kds = list(map(bucket.get, v.keys))
        old_stamps, old_kds = v.stamps, v.kds
        if v.force or old_stamps is None or old_kds is None:
            changed = list(range(len(stamps)))
        elif stamps == old_stamps and kds == old_kds and not v.again:
            return []
        else:
            changed = sorted(
                v.again.union(
                    i
                    for i, (a, b, c, e) in enumerate(zip(stamps, old_stamps, kds, old_kds, strict=True))
                    if c is not e or a != b
                )
            )
        v.force = False
        v.again.clear()
        v.stamps, v.kds = stamps, kds
        return changed

    def _render(self, v: _Virtual, positions: list[int]) -> None:
        d = self.director
        hist = d.history.reals
        ov = d.overrides
        name = v.pool.name
        bucket = d.kernel.dests.get(v.pool.service.key) or {}
        for i in positions:
            sid, rs, kd = v.sids[i], v.reals[i], bucket.get(v.keys[i])
            h = hist.get(sid)
            drained = ov.is_drained(name, v.texts[i])
            v.rows[i] = render_row(d, v.names[i], sid, rs, kd, drained, h, v.histories[i])
            if self.metrics:
                v.metric_rows[i] = render_metric_row(v.labels[i], rs, kd, drained, h)
            self.rendered += 1

    # -- what a request gets ----------------------------------------------------------------

    def _plain(self) -> bool:
        from lvscheck.daemon.director import Director

        return type(self.director).status is Director.status

    async def document(self, extra: dict[str, Any] | None = None) -> bytes:
        """``json.dumps({**director.status(), **extra}, default=str)`` as bytes, from the kept rows."""
        return b"".join(await self.document_parts(extra))

    async def document_parts(self, extra: dict[str, Any] | None = None) -> list[bytes]:
        """:meth:`document` in pieces of one virtual each, to write one by one (``drain`` between)."""
        d = self.director
        if not self._plain():  # --shadow adds fields to every row: the one-go document
            doc = d.status()
            doc.update(extra or {})
            return [json.dumps(doc, default=str).encode()]
        async with self._lock:  # no pass re-renders a row while the document is joined
            await self._refresh()
            self.passes += 1
            head = json.dumps(S.head(d), default=str)
            parts = [f'{head[:-1]}, "virtuals": ['.encode()]
            started = time.perf_counter()
            for k, v in enumerate(self._virtuals):
                pool = json.dumps(S.pool_head(d, v.pool), default=str)
                sep = ", " if k else ""
                parts.append(f'{sep}{pool[:-1]}, "reals": [{", ".join(v.rows)}]}}'.encode())
                if time.perf_counter() - started >= SLICE:
                    await asyncio.sleep(0)  # (the lock holds the rows still meanwhile)
                    started = time.perf_counter()
            tail = json.dumps({**S.tail(d), **(extra or {})}, default=str)
            parts.append(f"], {tail[1:]}".encode())
        return parts

    async def exposition(self) -> bytes:
        """What :func:`lvscheck.daemon.metrics.render_metrics` returns, as bytes, from the kept rows."""
        d = self.director
        if not self.metrics:  # from now on every pass keeps the metric rows too
            self.metrics = True
            for v in self._virtuals:
                v.force = True
        await self.refresh()
        now = time.time()
        states: list[str] = []
        weights: list[str] = []
        guards: list[str] = []
        latency: list[str] = []
        age: list[str] = []
        changes: list[str] = []
        drained: list[str] = []
        maint: list[str] = []
        started = time.perf_counter()
        layout = self._layout
        for v in self._virtuals:
            rows = [r for r in v.metric_rows if r is not None]
            pstate = d.pools.get(v.pool.key)
            guarded = int(bool(pstate and pstate.guarded))
            guards.append(f'lvscheck_pool_guarded{{virtual="{M.esc(v.pool.name)}"}} {guarded}\n')
            states.append("".join([r.state for r in rows]))
            weights.append("".join([r.weight for r in rows]))
            latency.append("".join([r.latency for r in rows]))
            age.append("".join([_age(r, now) for r in rows if r.age_prefix]))
            changes.append("".join([r.changes for r in rows]))
            drained.append("".join([r.drained for r in rows]))
            maint.append("".join([r.maintenance for r in rows]))
            if time.perf_counter() - started >= SLICE:
                await asyncio.sleep(0)
                if self._layout is not layout:  # a reload: start over on the new layout
                    return await self.exposition()
                started = time.perf_counter()
        out = "\n".join(M.head_lines(d) + M.STATE_HEAD) + "\n"
        parts = [out, *states, _lines(M.WEIGHT_HEAD), *weights, _lines(M.GUARD_HEAD), *guards]
        for family, lines in zip(M.REAL_FAMILIES, (latency, age, changes, drained, maint), strict=True):
            parts.append(_lines(M.family_head(*family)))
            parts += lines
        parts.append(_lines(M.shadow_lines(d)))
        return "".join(parts).encode()


def _age(row: MetricRow, now: float) -> str:
    return f"{row.age_prefix}{max(0.0, now - row.last_time):.3f}\n"


def _new_virtual(pool: Pool, reals: list[RealState]) -> _Virtual:
    dests = [rs.slot.dest for rs in reals]
    v = M.esc(pool.name)
    texts = [str(dest) for dest in dests]
    return _Virtual(
        pool,
        list(pool.slots),
        reals,
        [dest.key for dest in dests],
        texts,
        [_string(t) for t in texts],
        [f'{{virtual="{v}",real="{M.esc(t)}"}}' for t in texts],
        rows=[""] * len(reals),
        metric_rows=[None] * len(reals),
        histories=[HistoryText() for _ in reals],
    )


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


_shared: weakref.WeakKeyDictionary[Any, StatusRows] = weakref.WeakKeyDictionary()


def rows_of(director: Director) -> StatusRows:
    """The director's :class:`StatusRows` (made and started on first use, inside its loop)."""
    rows = _shared.get(director)
    if rows is None:
        rows = _shared[director] = StatusRows(director)
    with contextlib.suppress(RuntimeError):  # no running loop: no background pass
        rows.start()
    return rows
