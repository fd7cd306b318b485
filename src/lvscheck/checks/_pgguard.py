"""A guard in front of asyncpg: frames checked, bytes and messages counted, before asyncpg parses them.

asyncpg (0.29 to 0.32 at least) parses server messages in Cython inside
``data_received``, and trusts them:

* a message whose length field is below 4 (a run of zero bytes, as a
  non-PostgreSQL service on the port may send) makes that loop spin forever
  *inside one event-loop callback*: no deadline, no cancellation, no other check
  runs again;
* a server that streams ParameterStatus (or any startup message) for ever is
  parsed for ever: one such real took 61 % of the daemon's loop and made healthy
  reals time out;
* after the startup, whatever rows come are buffered.

So :func:`install` swaps the protocol class ``asyncpg.connect_utils`` builds for
a subclass whose ``data_received`` first walks the frame headers (type byte,
int32 length; a constant amount of work per frame, nothing copied but a partial
5-byte header: linear in the messages, at most a few hundred thousand header
reads per check) and counts:

* until the first ReadyForQuery ('Z'): only startup message types, lengths 4 ..
  :data:`STARTUP_BYTES`, at most :data:`STARTUP_MESSAGES` messages and
  :data:`STARTUP_BYTES` bytes (a real server sends about twenty messages and
  well under 2 KiB);
* after it: lengths of at least 4, at most :data:`SESSION_MESSAGES` messages
  and :data:`UNASKED_MESSAGES` asynchronous ones (notices, notifications,
  parameter changes: a server streaming notices made asyncpg build an object
  for each);
* for the whole connection: at most :data:`MAX_BYTES` bytes.

Past a limit the connection is aborted before asyncpg sees the bytes and the
reason is left where the check finds it (:func:`watching`).  ErrorResponse
messages of the startup are decoded here too, as UTF-8 or else Latin-1 (a
server whose ``lc_messages`` is not UTF-8 sends Latin-1, which asyncpg cannot
decode and then reports as a lost connection): the check reports the server's
own words.

The time spent here (the walk and asyncpg's own parsing) is charged to the check's
CPU meter (:mod:`lvscheck.engine.cpumeter`): a server that keeps asyncpg parsing
within the byte limits is cut off at the check's CPU budget.

The swap is process-wide (every asyncpg connection made in this process gets
the guard) and done once, lazily, by the first ``pgsql`` check.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from lvscheck.engine import cpumeter
from lvscheck.plugin.check import size_text

__all__ = [
    "MAX_BYTES",
    "SESSION_MESSAGES",
    "STARTUP_BYTES",
    "STARTUP_MESSAGES",
    "UNASKED_MESSAGES",
    "Report",
    "install",
    "watching",
]

#: Server message types allowed before the first ReadyForQuery.
_STARTUP_TYPES = frozenset(b"REKNSvZ")
#: Messages and bytes a server may send before ReadyForQuery.
STARTUP_MESSAGES = 256
STARTUP_BYTES = 64 * 1024
#: Bytes a server may send over one check's connection, results included.
MAX_BYTES = 8 * 1024 * 1024
#: After the startup: messages in all (rows included), and asynchronous ones (asyncpg builds
#: a Python object for every notice: 8 MiB of them cost more CPU than the rest of a check).
SESSION_MESSAGES = 65536
UNASKED_MESSAGES = 64
_ASYNC_TYPES = frozenset(b"NAS")

_lock = threading.Lock()
_installed = False


class Report:
    """What the guard saw on one check's connection: why it aborted, the startup's ErrorResponse."""

    __slots__ = ("error", "in_startup", "refused")

    def __init__(self) -> None:
        self.refused: str | None = None  # the guard aborted the connection: why
        self.in_startup = True  # refused before the first ReadyForQuery
        self.error: tuple[str, str] | None = None  # (SQLSTATE, message) of a startup ErrorResponse


_report: contextvars.ContextVar[Report | None] = contextvars.ContextVar("lvscheck_pgguard", default=None)


@contextlib.contextmanager
def watching() -> Iterator[Report]:
    """Connections opened inside the block report to the yielded :class:`Report`."""
    report = Report()
    token = _report.set(report)
    try:
        yield report
    finally:
        _report.reset(token)


def error_fields(body: bytes) -> tuple[str, str]:
    """(SQLSTATE, message) of an ErrorResponse body; UTF-8, else Latin-1 (never fails)."""
    fields: dict[int, bytes] = {}
    for part in body.split(b"\x00"):
        if part:
            fields[part[0]] = part[1:]

    def text(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    return text(fields.get(ord("C"), b"?")), text(fields.get(ord("M"), b""))


class _Frames:
    """The frame walk: one object per connection, state between ``data_received`` calls."""

    __slots__ = ("error", "errors", "header", "messages", "refused", "skip", "startup", "total", "unasked")

    def __init__(self) -> None:
        self.header = b""  # a partial 5-byte header
        self.skip = 0  # body bytes of the current message still to come
        self.startup = True  # before the first ReadyForQuery
        self.messages = 0
        self.unasked = 0  # NoticeResponse, NotificationResponse, ParameterStatus after the startup
        self.total = 0
        self.error: bytearray | None = None  # an ErrorResponse body being collected
        self.errors: list[bytes] = []  # complete ErrorResponse bodies not yet reported
        self.refused: str | None = None

    def feed(self, data: bytes) -> bool:
        """Walk ``data``; False (and :attr:`refused` set) when the connection must be aborted."""
        size = len(data)
        self.total += size
        if self.total > MAX_BYTES:
            self.refused = f"the server sent more than {MAX_BYTES >> 20} MiB (the limit for one check)"
            return False
        if not self._walk(data, size):
            return False
        if self.startup and self.total > STARTUP_BYTES:
            self.refused = (
                f"{self.messages} messages and more than {size_text(STARTUP_BYTES)} "
                "without finishing the startup (ReadyForQuery)"
            )
            return False
        return True

    def _session_message(self, kind: int, length: int) -> bool:
        """After ReadyForQuery: any type, but bounded lengths, counts and asynchronous messages."""
        if length < 4:
            self.refused = f"a malformed frame (type {bytes([kind])!r}, length {length})"
            return False
        if self.messages > SESSION_MESSAGES:
            self.refused = f"the server sent more than {SESSION_MESSAGES} messages (the limit for one check)"
            return False
        if kind in _ASYNC_TYPES:
            self.unasked += 1
            if self.unasked > UNASKED_MESSAGES:
                self.refused = (
                    f"the server sent more than {UNASKED_MESSAGES} notices, notifications or parameter "
                    "changes (the limit for one check)"
                )
                return False
        return True

    def _walk(self, data: bytes, size: int) -> bool:
        pos = 0
        while pos < size:
            if self.skip:
                step = min(self.skip, size - pos)
                if self.error is not None:
                    self.error += data[pos : pos + step]
                self.skip -= step
                pos += step
                if self.skip == 0 and self.error is not None:
                    self.errors.append(bytes(self.error))
                    self.error = None
                continue
            if self.header or size - pos < 5:
                need = 5 - len(self.header)
                self.header += data[pos : pos + need]
                pos += need
                if len(self.header) < 5:
                    return True
                head = self.header
                self.header = b""
                kind = head[0]
                length = int.from_bytes(head[1:5], "big", signed=True)
            else:
                kind = data[pos]
                length = int.from_bytes(data[pos + 1 : pos + 5], "big", signed=True)
                pos += 5
            self.messages += 1
            if not self.startup:
                if not self._session_message(kind, length):
                    return False
                self.skip = length - 4
                continue
            if kind not in _STARTUP_TYPES or not 4 <= length <= STARTUP_BYTES:
                self.refused = f"a malformed frame (type {bytes([kind])!r}, length {length})"
                return False
            if self.messages > STARTUP_MESSAGES:
                self.refused = (
                    f"more than {STARTUP_MESSAGES} messages without finishing the startup (ReadyForQuery)"
                )
                return False
            if kind == ord("Z"):
                self.startup = False  # the session is up: the session limits from here
                self.messages = 0
                self.skip = length - 4
                continue
            self.skip = length - 4
            if kind == ord("E"):
                if self.skip:
                    self.error = bytearray()
                else:
                    self.errors.append(b"")
        return True


class _ProtocolModule(ModuleType):
    """``asyncpg.protocol`` as ``connect_utils`` sees it, with the guarded ``Protocol``."""

    def __init__(self, real: ModuleType, guarded: type) -> None:
        super().__init__(real.__name__, real.__doc__)
        self._real = real
        self.Protocol = guarded

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> None:
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        from asyncpg import connect_utils, protocol

        base: Any = protocol.Protocol

        class GuardedProtocol(base):  # type: ignore[misc]
            """asyncpg's protocol, with the frames checked and counted first."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self._lvs_report = _report.get()  # built inside the check's task
                self._lvs_meter = cpumeter.current()  # and so is the check's CPU meter
                self._lvs_frames: _Frames | None = _Frames()
                super().__init__(*args, **kwargs)

            def connection_made(self, transport: Any) -> None:
                self._lvs_transport = transport
                super().connection_made(transport)

            def data_received(self, data: Any) -> None:
                # asyncpg parses here, in a loop callback outside the check's task: the
                # guard's walk and asyncpg's parsing are charged to the check's CPU meter
                meter = self._lvs_meter
                if meter is None:
                    self._lvs_data(data)
                    return
                if meter.over:  # cut off: the check is being cancelled; parse nothing more
                    self._lvs_transport.abort()
                    return
                with cpumeter.charging(meter):
                    self._lvs_data(data)

            def _lvs_data(self, data: Any) -> None:
                frames: _Frames | None = self._lvs_frames
                failed = False
                if frames is not None:
                    ok = frames.feed(data)
                    if frames.errors:
                        failed = frames.startup  # a startup ErrorResponse is FATAL: the session is over
                        self._lvs_error(frames)
                    if not ok:
                        self._lvs_frames = None
                        if self._lvs_report is not None:
                            self._lvs_report.refused = frames.refused
                            self._lvs_report.in_startup = frames.startup
                        self._lvs_transport.abort()  # asyncpg sees connection_lost
                        return
                super().data_received(data)
                if failed:  # (asyncpg hangs on one it cannot decode: Latin-1)
                    self._lvs_transport.abort()

            def _lvs_error(self, frames: _Frames) -> None:
                if self._lvs_report is not None and self._lvs_report.error is None:
                    self._lvs_report.error = error_fields(frames.errors[0])
                frames.errors.clear()

        connect_utils.protocol = _ProtocolModule(protocol, GuardedProtocol)
        _installed = True
