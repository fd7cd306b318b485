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
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import struct
from types import MappingProxyType
from typing import Any

from lvscheck.model import _Value

__all__ = ["HEADER", "encode", "read_frame"]

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


async def read_frame(reader: asyncio.StreamReader) -> list[Any] | None:
    """The next batch, or None at the end of the stream (the other side is gone)."""
    try:
        head = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    batch: list[Any] = pickle.loads(body)  # noqa: S301 - our own socketpair, our own process
    return batch
