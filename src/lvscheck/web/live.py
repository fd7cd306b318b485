"""Live updates for the status page: one server-sent-events stream per open page.

A new watcher first gets the whole status document (``event: snapshot``); then,
once a second, every watcher gets the same ``event: delta``: the rows of the
reals that changed since the previous tick (a new check, a state, weight, drain
or maintenance change), the pool flags and the daemon's health.  The delta is
computed once per tick and written to every watcher, so ten watchers cost little
more than one; with nobody watching the tick loop does not run at all.

A row of a delta is a JSON array (positions, not keys: 10,000 reals).  A real that only had
new checks gets a short row; any other change, a full one::

    [index, seq, last_check, latencies_ms_since]
    [index, state, streak, kernel_weight, seq, last_check, latencies_ms_since, reason|null,
     result, drained, maintenance, transitions_total, transitions|null]

``seq`` counts the real's checks; ``latencies_ms_since`` are the latencies of the checks
since the previous tick (oldest first, at most the ring's size), so a client appends those
whose number it has not seen.  ``reason`` is null when unchanged; ``transitions`` is null
unless a transition happened.  A reload (new ``generation``) sends a new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.statusrows import SLICE, rows_of

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["Live"]

log = logging.getLogger("lvscheck.daemon")

#: A watcher whose unsent data exceeds this is dropped (its browser reconnects and starts over).
MAX_BACKLOG = 8 << 20
#: At most this many pages open at once; more get 503.
MAX_WATCHERS = 64


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


class Live:
    """The watchers of one daemon and the tick loop that feeds them."""

    def __init__(self, director: Director, every: float = 1.0, actions: bool = False) -> None:
        self.director = director
        self.actions = actions  # the page may offer drain/maintenance buttons (--http-tokens)
        self.every = every
        self.watchers: dict[asyncio.StreamWriter, Any] = {}  # -> its gzip stream, or None
        self._task: asyncio.Task[None] | None = None
        # what the last tick said, by position in the snapshot: check count, and the rest
        self._seqs: list[int] = []
        self._states: list[tuple[Any, ...] | None] = []
        self._generation = -1
        self.ticks = 0
        self.tick_cpu = 0.0  # CPU seconds spent computing and writing deltas (process time)
        self.bytes_sent = 0

    def full(self) -> bool:
        return len(self.watchers) >= MAX_WATCHERS

    async def add(self, writer: asyncio.StreamWriter, gzip: bool = False) -> None:
        """Start a stream on ``writer``: a snapshot now, deltas every tick from now on.

        With ``gzip`` the stream is one gzip member flushed after every event (the browser
        sent ``Accept-Encoding: gzip``): a delta shrinks about fivefold.  The snapshot (megabytes
        at 40,000 reals) is joined from the kept rows and compressed in a thread; the watcher
        gets deltas only once its snapshot is written.
        """
        if self._task is None or self._task.done():
            await self._baseline()
        parts = [b"retry: 2000\n\n", *await self._snapshot_event()]
        z = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip else None
        if z is not None:
            parts = [await asyncio.to_thread(_compress, z, b"".join(parts))]
        for part in parts:  # as the page reads (megabytes at 40,000 reals): never a backlog of it all
            if writer.is_closing():
                return
            writer.write(part)
            self.bytes_sent += len(part)
            await writer.drain()
        self.watchers[writer] = z
        if self._task is None or self._task.done():  # (it ends when the last watcher goes)
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def close(self) -> None:
        for w in list(self.watchers):
            self.remove(w)
        if self._task is not None:
            self._task.cancel()

    def stats(self) -> dict[str, Any]:
        return {
            "watchers": len(self.watchers),
            "gzip_watchers": sum(z is not None for z in self.watchers.values()),
            "ticks": self.ticks,
            "tick_cpu_s": round(self.tick_cpu, 4),
            "bytes_sent": self.bytes_sent,
        }

    def remove(self, writer: asyncio.StreamWriter) -> None:
        self.watchers.pop(writer, None)
        with contextlib.suppress(Exception):
            writer.close()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        z = self.watchers.get(writer)
        self._send(writer, data if z is None else _compress(z, data))

    def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing() or writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.remove(writer)
            return
        writer.write(data)
        self.bytes_sent += len(data)

    async def _loop(self) -> None:
        try:
            while self.watchers:
                await asyncio.sleep(self.every)
                if not self.watchers:
                    break
                d = self.director
                cpu = time.process_time()
                if d.counters.reloads != self._generation:
                    await self._baseline()
                    data = b"".join(await self._snapshot_event())
                    cpu = time.process_time()  # (the rows were rendered between slices, not here)
                else:
                    data = _sse("delta", await self.delta())
                self.ticks += 1
                for w in list(self.watchers):
                    self._write(w, data)
                self.tick_cpu += time.process_time() - cpu
        except Exception:
            log.exception("status page: live updates failed")
            for w in list(self.watchers):
                self.remove(w)
        finally:
            self._task = None

    async def snapshot(self) -> list[bytes]:
        """The status document and ``actions`` (JSON) in pieces, joined from the kept rows."""
        return await rows_of(self.director).document_parts({"actions": self.actions})

    async def _snapshot_event(self) -> list[bytes]:
        return [b"event: snapshot\ndata: ", *await self.snapshot(), b"\n\n"]

    async def _scan(self, emit: bool) -> list[list[Any]]:
        """One pass over the reals: compare with what was sent, remember, and (``emit``) make rows.

        In slices (:data:`~lvscheck.daemon.statusrows.SLICE`, the loop runs between them, one
        virtual at least per slice); a reload between two slices leaves the rest for its snapshot.
        """
        d = self.director
        layout = d.layout
        started = time.perf_counter()
        hist = d.history.reals
        ov = d.overrides
        seqs, states = self._seqs, self._states
        rows: list[list[Any]] = []
        i = 0
        for pool in d.layout.pools.values():
            bucket = d.kernel.dests.get(pool.service.key) or {}
            reals = d.reals
            drained = ov.drained_ids(pool.name, ((s, str(reals[s].slot.dest)) for s in pool.slots))
            for sid in pool.slots:
                rs = reals[sid]
                h = hist.get(sid)
                seq = 0 if h is None else h.seq
                kd = bucket.get(rs.slot.dest.key)
                last = rs.last
                state = (
                    rs.track,
                    None if kd is None else kd.weight,
                    rs.maintenance,
                    sid in drained,
                    0 if h is None else h.changes,
                    None if last is None else last.reason,
                )
                if i >= len(seqs):
                    seqs.append(-1)
                    states.append(None)
                before_seq, before = seqs[i], states[i]
                if emit and (seq != before_seq or state != before):
                    new = seq - before_seq if before_seq >= 0 else 0
                    lat = (
                        [] if h is None or not new else [round(x * 1000, 2) for x in h.recent_latencies(new)]
                    )
                    when = None if rs.last_time is None else round(rs.last_time, 2)
                    if state == before:  # only a new check: a short row
                        rows.append([i, seq, when, lat])
                    else:
                        trans = None
                        if h is not None and (before is None or before[4] != state[4]):
                            trans = [[t.at, t.was, t.now, t.reason] for t in h.transitions]
                        reason = state[5] if before is None or before[5] != state[5] else None
                        rows.append(
                            [
                                i,
                                rs.track.phase.value,
                                rs.track.streak,
                                state[1],
                                seq,
                                when,
                                lat,
                                reason,
                                None if last is None else last.state.value,
                                state[3],
                                state[2],
                                state[4],
                                trans,
                            ]
                        )
                seqs[i], states[i] = seq, state
                i += 1
            if time.perf_counter() - started >= SLICE:
                await asyncio.sleep(0)
                if d.layout is not layout:
                    break  # the next tick sends a snapshot
                started = time.perf_counter()
        return rows

    async def _baseline(self) -> None:
        self._generation = self.director.counters.reloads
        self._seqs, self._states = [], []
        await self._scan(emit=False)

    async def delta(self) -> str:
        """The delta document since the previous tick (and move the baseline)."""
        d = self.director
        rows = await self._scan(emit=True)
        return _dumps({"now": _now(), "rows": rows, "pools": _pool_flags(d), "health": _health(d)})


def _compress(z: Any, data: bytes) -> bytes:
    return bytes(z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))


def _now() -> float:
    return round(time.time(), 3)


def _pool_flags(d: Director) -> list[list[Any]]:
    out = []
    for pool in d.layout.pools.values():
        ps = d.pools.get(pool.key)
        out.append(
            [
                bool(ps and ps.guarded),
                bool(ps and ps.fallback_active),
                pool.service.key in d.kernel.services,
            ]
        )
    return out


def _health(d: Director) -> dict[str, Any]:
    return {
        "state": d.state,
        "checks": d.scheduler.checks,
        "start_lag": d.scheduler.lag.snapshot(),
        "ipvs_writes": d.backend.writes,
        "ipvs_write_errors": d.counters.write_errors,
        "reloads": d.counters.reloads,
        "reload_failures": d.counters.reload_failures,
        "last_reload": d.counters.last_reload,
        "transitions_total": d.counters.transitions,
    }
