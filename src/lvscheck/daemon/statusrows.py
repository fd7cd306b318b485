"""The status document and the metrics as text, kept per real so a request only joins them.

``lvscheck status``, ``/status.json``, the status page's snapshot and ``/metrics`` at 40,000
reals used to be built in one go on the event loop (5.5 s of the loop).  Here each real
keeps its rendered JSON row (exactly what ``json.dumps`` makes of
:func:`lvscheck.daemon.status.real_row`) and its metrics lines, and a pass
(:meth:`StatusRows.refresh`) renders only the reals whose row is out of date:

* the reals the history saw checked or changed since the previous pass
  (:attr:`lvscheck.daemon.history.History.touched`, one set add per result), the reals of the
  pools the kernel view wrote whose kernel entry differs (``on_flushed``), every real of a
  virtual whose drained set changed, and the reals in a slow start (their row says how long
  the climb has left);
* every :data:`FULL_EVERY` seconds, after a reload and after an operator's action, a full look:
  per virtual, a few C-level maps take a stamp of every real (the time of its last result,
  track, maintenance, slow start, slot; and its kernel entry) and compare them with the stamps
  of the rows (identity first).  That catches what no hook tells: a kernel entry reconcile
  restored, a ``maintenancedir`` entry for a real already down.

The pass runs in slices of :data:`SLICE` seconds (the loop runs between them) every
:data:`EVERY` seconds in the background while requests come (:data:`IDLE`), so that a request
finds little to render, and again at each request.  Then the request joins the rows under the
rows' lock (no row changes while joined; the daemon-wide fields, the virtuals' flags and each
real's last-check age are written fresh) into pieces of one virtual, which the caller writes
one by one as the client reads.

A director whose :meth:`status` adds fields (``--shadow``) gets the one-go document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

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
#: Seconds between two background passes: what a request may find to render is this much of checks.
EVERY = 0.25
#: Seconds after the last request during which the background pass keeps the rows fresh.  After
#: that nothing is rendered until a request comes; that one renders what changed meanwhile
#: (every real checked since: about 1 s at 40,000 reals, in slices) and starts the pass again.
IDLE = 900.0
#: Seconds between two passes that compare every real's stamp (the others render the reals the
#: history saw checked or changed, the virtuals a drain names and the slow starts: what else
#: changes a row, a kernel entry restored by reconcile or a maintenance change of a real already
#: down, shows within this time, or at once after an operator's action)
FULL_EVERY = 5.0

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


class MetricRow(NamedTuple):
    """One real's per-real metric lines (each ending in a newline); the age is written per request.

    A tuple: a request takes one field of every row with ``map(itemgetter(k), rows)`` (C-level)."""

    state: str
    weight: str
    latency: str  # "" before its first result
    changes: str
    drained: str
    maintenance: str
    age_prefix: str  # "" before its first result
    last_time: float


#: the line fields of a MetricRow, in the order the families are written
_LINE_FIELDS = [itemgetter(k) for k in (0, 1, 2, 3, 4, 5)]
_AGE_FIELDS = itemgetter(6, 7)


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
        self._by_key: dict[str, _Virtual] = {}
        self._flushed: set[str] = set()  # pools the kernel view wrote since the previous pass
        told = director.view.on_flushed

        def flushed(keys: set[str]) -> None:
            self._flushed.update(keys)
            told(keys)

        director.view.on_flushed = flushed
        self._drained: frozenset[tuple[str, str]] = frozenset()
        self._maintenance: frozenset[str] = frozenset()
        self._ramping: set[str] = set()
        self._lock = asyncio.Lock()
        self._started = 0.0  # when the current slice began (perf_counter)
        self._full_wanted = True  # compare every stamp at the next pass
        self._full_due = 0.0  # ... and from this monotonic time on
        self._asked = 0.0  # monotonic time of the last request
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    def asked(self) -> None:
        """A request: keep the rows fresh in the background for the next :data:`IDLE` seconds."""
        self._asked = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._background())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if self.director.state == "stopping" or not self._plain():
                return
            if time.monotonic() - self._asked > IDLE:
                return  # nobody asked for a while: no rendering until somebody does
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
                self._by_key = {v.pool.key: v for v in virtuals}
                return

    def _note_overrides(self) -> None:
        """Drained set changed: the virtuals it names render all their reals; maintenance set changed:
        a full look; slow starts render."""
        d = self.director
        drained = frozenset(d.overrides.drained)
        if drained != self._drained:
            names = {virtual for virtual, _real in drained ^ self._drained}
            for v in self._virtuals:
                if v.pool.name in names:
                    v.force = True
            self._drained = drained
        maintenance = frozenset(d.overrides.maintenance)
        if maintenance != self._maintenance:  # (``lvscheck maintenance``: a real already down too)
            self._maintenance = maintenance
            self._full_wanted = True
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

    def look_everywhere(self) -> None:
        """The next pass compares every real's stamp (after an operator's action)."""
        self._full_wanted = True

    async def _refresh(self) -> None:
        d = self.director
        while True:
            if self._layout is not d.layout:  # (a reload switches layout and reals together)
                await self._rebuild()
                self._full_wanted = True
            self._note_overrides()
            self._started = time.perf_counter()
            if self._full_wanted or time.monotonic() >= self._full_due:
                self._full_wanted = False
                self._full_due = time.monotonic() + FULL_EVERY
                d.history.touched = set()  # the stamps see all of it
                done = await self._render_all()
            else:
                done = await self._render_touched()
            if done:
                return

    async def _render_touched(self) -> bool:
        """Render the reals the history saw checked or changed since the previous pass (and the
        virtuals to render whole, the slow starts); False when a reload came between two slices."""
        d = self.director
        touched, d.history.touched = d.history.touched, set()
        by_sid, probes = self._by_sid, d.probes
        groups: dict[int, tuple[_Virtual, set[int]]] = {}
        for rid in touched:
            where = by_sid.get(rid)
            if where is not None:
                groups.setdefault(id(where[0]), (where[0], set()))[1].add(where[1])
                continue
            probe = probes.get(rid)  # a probe several virtuals share: its members
            for sid in () if probe is None else probe.members:
                where = by_sid.get(sid)
                if where is not None:
                    groups.setdefault(id(where[0]), (where[0], set()))[1].add(where[1])
        flushed, self._flushed = self._flushed, set()
        for key in flushed:  # the kernel view wrote these pools: their kernel weights
            v = self._by_key.get(key)
            if v is not None and v.kds is not None:
                bucket = d.kernel.dests.get(v.pool.service.key) or {}
                kds = list(map(bucket.get, v.keys))
                if kds != v.kds:
                    positions = groups.setdefault(id(v), (v, set()))[1]
                    positions.update(i for i, (a, b) in enumerate(zip(kds, v.kds, strict=True)) if a != b)
        for v in self._virtuals:
            if v.force or v.again:
                positions = groups.setdefault(id(v), (v, set()))[1]
                positions.update(range(len(v.sids)) if v.force else v.again)
                v.force = False
                v.again.clear()
        for v, positions in groups.values():
            ordered = sorted(positions)
            for start in range(0, len(ordered), CHUNK):
                self._render(v, ordered[start : start + CHUNK])
                if time.perf_counter() - self._started >= SLICE and not await self._pause():
                    return False
        self.longest_slice = max(self.longest_slice, time.perf_counter() - self._started)
        return True

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
                    if a != b or not (c is e or c == e)  # (a kernel write may make equal new entries)
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
        stamps, kds = v.stamps, v.kds
        for i in positions:
            sid, rs, kd = v.sids[i], v.reals[i], bucket.get(v.keys[i])
            if stamps is not None and kds is not None:  # what this row shows, for the next full look
                stamps[i], kds[i] = _stamp(rs), kd
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
        self.asked()
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
        return b"".join(await self.exposition_parts())

    async def exposition_parts(self) -> list[bytes]:
        """:meth:`exposition` in pieces (a family's lines of one virtual each), to write one by one."""
        d = self.director
        if not self.metrics:  # from now on every pass keeps the metric rows too
            self.metrics = True
            for v in self._virtuals:
                v.force = True
        self.asked()
        families: list[list[bytes]] = [[] for _ in range(8)]
        states, weights, guards, latency, age, changes, drained, maint = families
        async with self._lock:  # no pass re-renders a row while they are joined
            await self._refresh()
            self.passes += 1
            now = time.time()
            started = time.perf_counter()
            for v in self._virtuals:
                rows = [r for r in v.metric_rows if r is not None]
                pstate = d.pools.get(v.pool.key)
                guarded = int(bool(pstate and pstate.guarded))
                guards.append(f'lvscheck_pool_guarded{{virtual="{M.esc(v.pool.name)}"}} {guarded}\n'.encode())
                for out, take in zip(
                    (states, weights, latency, changes, drained, maint), _LINE_FIELDS, strict=True
                ):
                    out.append("".join(map(take, rows)).encode())
                ages = [f"{p}{max(0.0, now - t):.3f}\n" for p, t in map(_AGE_FIELDS, rows) if p]
                age.append("".join(ages).encode())
                if time.perf_counter() - started >= SLICE:
                    await asyncio.sleep(0)  # (the lock holds the rows still meanwhile)
                    started = time.perf_counter()
        head = _lines(M.head_lines(d) + M.STATE_HEAD)
        parts = [head, *states, _lines(M.WEIGHT_HEAD), *weights, _lines(M.GUARD_HEAD), *guards]
        for family, lines in zip(M.REAL_FAMILIES, (latency, age, changes, drained, maint), strict=True):
            parts.append(_lines(M.family_head(*family)))
            parts += lines
        parts.append(_lines(M.shadow_lines(d)))
        return parts


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


def _lines(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def rows_of(director: Director) -> StatusRows:
    """The director's :class:`StatusRows` (made on first use; its background pass runs while
    requests come, see :data:`IDLE`)."""
    rows: StatusRows | None = getattr(director, "status_rows", None)
    if rows is None:
        rows = StatusRows(director)
        setattr(director, "status_rows", rows)  # noqa: B010 - one per director, its own attribute
    return rows
