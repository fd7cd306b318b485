"""Frames between the main process and its check workers: a length, then a pickled batch.

One frame carries a whole batch (every result of one loop tick, every schedule
change of one reload), so a worker and the main process exchange a few frames a
second, not one per check.  Both ends are this package's code on one machine
(a socketpair made by the main process), so pickle is safe here.

Main -> worker (a list of ops)::

    ("start", handle, spec, connect_spec, combined, interval, fastinterval, jitter, fast, first_within)

(a check travels as its :class:`~lvscheck.model.CheckSpec`; the worker prepares it again
with its check type, as the config's one road did: a prepared check may hold things
such as an ``ssl.SSLContext`` that do not cross processes)
    ("stop", handle)
    ("fast", handle, changing)

Worker -> main (a list of records)::

    (handle, connect_used, state, weight, reason, latency, details, lag)

Both ends read frames with :class:`FrameReader`, a protocol that cuts frames out of
what arrives and hands each batch to a callback: no task, no future and no
``readexactly`` per frame.  Measured (uvloop, 400 frames/s of 3 records): a frame
cost the reading process 95-105 us of CPU through ``StreamReader.readexactly`` and
50-60 us through this protocol, most of it the wake-up and the read itself
(``pickle.loads`` of a record is 0.2 us).
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import socket
import struct
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, cast

from lvscheck.model import _Value

__all__ = ["HEADER", "FrameReader", "encode", "open_channel"]

HEADER = struct.Struct("!I")


def read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """A read-only mapping again, on the worker's side."""
    return MappingProxyType(items)


def _mappingproxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(proxy),)


def immutable(cls: type[_Value], values: tuple[Any, ...]) -> _Value:
    """An immutable model value (:class:`lvscheck.model.Target` ...) again, slot by slot."""
    obj: _Value = object.__new__(cls)
    names: tuple[str, ...] = cls.__slots__
    for name, value in zip(names, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


_REDUCERS: dict[type, Any] = {**copyreg.dispatch_table, MappingProxyType: _mappingproxy}


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _Value) and type(obj).__slots__:
            return immutable, (type(obj), obj._values())
        return NotImplemented


def encode(batch: list[Any]) -> bytes:
    """One frame holding ``batch`` (prepared checks hold read-only mappings: those travel too)."""
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    pickler = _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(batch)
    frame = buf.getbuffer()
    HEADER.pack_into(frame, 0, len(frame) - HEADER.size)
    del frame
    return buf.getvalue()


class FrameReader(asyncio.Protocol):
    """Cuts frames out of a socket's stream: ``on_batch(batch)`` for each, ``on_end()`` once at the end.

    An exception from ``on_batch`` ends the channel (the transport is closed, ``on_end`` runs):
    the owner restarts a worker or stops, it never goes on past a batch it did not take.
    """

    def __init__(
        self, on_batch: Callable[[list[Any]], None], on_end: Callable[[BaseException | None], None]
    ) -> None:
        self.on_batch = on_batch
        self.on_end = on_end
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        start = 0
        end = len(buf)
        try:
            while end - start >= HEADER.size:
                (size,) = HEADER.unpack_from(buf, start)
                stop = start + HEADER.size + size
                if stop > end:
                    break
                with memoryview(buf) as view:
                    batch: list[Any] = pickle.loads(view[start + HEADER.size : stop])  # noqa: S301 - see above
                start = stop
                self.on_batch(batch)
        except Exception as exc:
            self._end(exc)
            return
        finally:
            if start:
                del buf[:start]

    def eof_received(self) -> bool:
        self._end(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        if self.transport is not None:
            self.transport.close()
        self.on_end(exc)


async def open_channel(
    sock: socket.socket, on_batch: Callable[[list[Any]], None], on_end: Callable[[BaseException | None], None]
) -> asyncio.Transport:
    """``sock`` (one end of the socketpair) on the running loop, its frames read by a :class:`FrameReader`."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(lambda: FrameReader(on_batch, on_end), sock=sock)
    return transport
