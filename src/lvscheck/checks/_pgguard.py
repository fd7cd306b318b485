"""A guard against a peer that answers the PostgreSQL startup with malformed frames.

asyncpg (0.29 to 0.32 at least) parses server messages in Cython inside ``data_received``.  A
message whose length field is below 4 (for example a run of zero bytes, as a
non-PostgreSQL service on the port may send) makes that loop spin forever, and
the spin happens *inside one event-loop callback* and holds the GIL: no
deadline, no cancellation, no other check (not even in another thread) runs
again.  lvscheck's deadline is worthless against that, so the frames are
checked before asyncpg sees them.

:func:`install` swaps the protocol class that ``asyncpg.connect_utils`` builds
for a subclass whose ``data_received`` walks the frame headers (type byte,
int32 length) up to the first ReadyForQuery ('Z'), and aborts the connection on
a length below 4 or above 16 MiB, or on a message type that cannot come before
ReadyForQuery.  After 'Z' (an authenticated session with a real server) the
bytes go through untouched.  A real server never sends such frames, so nothing
changes for it; the check then reports ``no PostgreSQL handshake``.

The swap is process-wide (every asyncpg connection made in this process gets
the guard) and done once, lazily, by the first ``pgsql`` check.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

__all__ = ["install"]

#: Server message types allowed before the first ReadyForQuery.
_STARTUP_TYPES = frozenset(b"REKNSvZ")
_MAX_LENGTH = 16 * 1024 * 1024

_lock = threading.Lock()
_installed = False


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
            """asyncpg's protocol, with the startup frames checked first."""

            def connection_made(self, transport: Any) -> None:
                self._lvs_transport = transport
                self._lvs_header = b""  # a partial 5-byte header
                self._lvs_skip = 0  # body bytes of the current message still to come
                self._lvs_checking = True
                super().connection_made(transport)

            def data_received(self, data: Any) -> None:
                if self._lvs_checking and not self._lvs_frames_ok(bytes(data)):
                    self._lvs_checking = False
                    self._lvs_transport.abort()  # asyncpg sees connection_lost
                    return
                super().data_received(data)

            def _lvs_frames_ok(self, data: bytes) -> bool:
                pos = 0
                while pos < len(data):
                    if self._lvs_skip:
                        step = min(self._lvs_skip, len(data) - pos)
                        self._lvs_skip -= step
                        pos += step
                        continue
                    need = 5 - len(self._lvs_header)
                    self._lvs_header += data[pos : pos + need]
                    pos += need
                    if len(self._lvs_header) < 5:
                        return True
                    kind = self._lvs_header[0]
                    length = int.from_bytes(self._lvs_header[1:5], "big", signed=True)
                    self._lvs_header = b""
                    if kind not in _STARTUP_TYPES or not 4 <= length <= _MAX_LENGTH:
                        return False
                    if kind == ord("Z"):
                        self._lvs_checking = False  # the session is up: stop looking
                        return True
                    self._lvs_skip = length - 4
                return True

        connect_utils.protocol = _ProtocolModule(protocol, GuardedProtocol)
        _installed = True
