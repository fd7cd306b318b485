"""A guard between ldap3 and its socket: LDAP message lengths checked, bytes counted.

ldap3's synchronous receive loop trusts the BER length of each message: it
appends every ``recv`` to one ``bytes`` object (a copy of all it has so far,
each time) until the announced length has arrived.  A server announcing a
4 GiB message and streaming garbage made that loop copy gigabytes while holding
the GIL (the daemon's event loop starved: false downs of healthy reals), and
endless search entries were buffered (130-349 MB).

:class:`CountedSocket` stands in for the socket ldap3 reads from.  Every
``recv`` walks the LDAP message headers it carries (``0x30``, a BER length;
constant work per message) and refuses, with :class:`Refused` (an ``OSError``,
which ldap3 wraps and the check unwraps):

* a message longer than :data:`MAX_MESSAGE` (a bind or search response with
  DNs only is a few hundred bytes; a root DSE entry a few KiB);
* a first byte that is not a BER SEQUENCE, or a length of more than 4 bytes;
* more than :data:`MAX_BYTES` or :data:`MAX_MESSAGES` over the whole connection
  (endless entries: ldap3 decodes each in Python, about 20 us of CPU apiece);
* any ``recv``, and any message ldap3 has just decoded (:meth:`CountedSocket.spend`,
  called by the LDAP check), once the worker thread has used more than the check's CPU
  budget (:mod:`lvscheck.engine.cpumeter`) since the guard was put in (an interval in
  which a module was imported is not charged): ldap3 decodes in
  the worker thread, outside the event loop's meter, and a message of many tiny BER
  elements costs about 1 ms of CPU per KiB (a 240 KiB one: 0.23 s), all while holding
  the GIL.  The thread's own CPU clock is read once per ``recv`` and per message (a
  handful per check); it does not count time the thread waits for the server or for
  the GIL.  With :data:`MAX_MESSAGE` (one message's decoding is the most it can
  overshoot), that bounds the CPU a hostile LDAP server can cost.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from lvscheck.engine.cpumeter import reason as cpu_reason
from lvscheck.plugin.check import size_text

__all__ = ["MAX_BYTES", "MAX_MESSAGE", "MAX_MESSAGES", "CountedSocket", "Refused"]

#: A bind or search response with DNs only is a few hundred bytes, a root DSE entry a few KiB.
MAX_MESSAGE = 64 * 1024
MAX_BYTES = 1024 * 1024
#: A check reads a handful: StartTLS, bind, one entry, search done (and a referral or two).
MAX_MESSAGES = 64


class Refused(OSError):
    """The server sent what an LDAP check will not read; ``str()`` says what."""


class _Walk:
    """The message walk, kept across ``recv`` calls and across a StartTLS re-wrap."""

    __slots__ = ("cpu_budget", "cpu_seen", "cpu_used", "header", "messages", "modules_seen", "skip", "total")

    def __init__(self, cpu_budget: float | None = None, cpu_start: float = 0.0) -> None:
        self.header = bytearray()  # a partial message header (tag, length octets)
        self.skip = 0  # bytes of the current message still to come
        self.total = 0
        self.messages = 0
        self.cpu_budget = cpu_budget  # seconds of this thread's CPU the dialogue may use; None: no bound
        self.cpu_seen = cpu_start  # time.thread_time() at the last look
        self.cpu_used = 0.0  # CPU charged to the dialogue so far
        self.modules_seen = len(sys.modules)

    def spend(self) -> None:
        """Refuse to read on once this thread has used more CPU than the budget.

        The CPU between two looks is charged unless a module was imported meanwhile: ldap3
        loads parts of itself at a process's first LDAP dialogue (half a second of CPU in a
        slow VM), which is not the server's doing.
        """
        if self.cpu_budget is None:
            return
        now = time.thread_time()
        modules = len(sys.modules)
        if modules == self.modules_seen:
            self.cpu_used += now - self.cpu_seen
        self.cpu_seen, self.modules_seen = now, modules
        if self.cpu_used > self.cpu_budget:
            raise Refused(f"{cpu_reason(self.cpu_budget, self.cpu_used)} (parsing the LDAP messages)")

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > MAX_BYTES:
            raise Refused(f"the server sent more than {MAX_BYTES >> 20} MiB (the limit for one check)")
        pos, size = 0, len(data)
        while pos < size:
            if self.skip:
                step = min(self.skip, size - pos)
                self.skip -= step
                pos += step
                continue
            self.header.append(data[pos])
            pos += 1
            head = self.header
            if head[0] != 0x30:
                raise Refused(f"not an LDAP message: first byte 0x{head[0]:02x}, not a BER SEQUENCE")
            if len(head) < 2:
                continue
            first = head[1]
            if first < 0x80:
                length = first
            else:
                octets = first & 0x7F
                if octets == 0 or octets > 4:
                    raise Refused(f"not an LDAP message: a BER length of {octets} octets")
                if len(head) < 2 + octets:
                    continue
                length = int.from_bytes(head[2 : 2 + octets], "big")
            if length > MAX_MESSAGE:
                raise Refused(
                    f"the server announced an LDAP message of {length} bytes "
                    f"(more than the {size_text(MAX_MESSAGE)} a check reads)"
                )
            self.header = bytearray()
            self.skip = length
            self.messages += 1
            if self.messages > MAX_MESSAGES:
                raise Refused(
                    f"the server sent more than {MAX_MESSAGES} LDAP messages (the limit for one check)"
                )


class CountedSocket:
    """Wraps a (TLS) socket: ``recv`` data is checked by the walk; everything else passes through."""

    def __init__(
        self, sock: Any, walk: _Walk | None = None, *, cpu_budget: float | None = None, cpu_start: float = 0.0
    ) -> None:
        self.raw = sock
        self.walk = walk or _Walk(cpu_budget, cpu_start)
        self.refused: str | None = None  # why the last recv was refused

    def spend(self) -> None:
        """Refuse (and say why) once the thread has used more CPU than the check's budget."""
        try:
            self.walk.spend()
        except Refused as exc:
            self.refused = str(exc)
            raise

    def recv(self, size: int) -> bytes:
        try:
            self.walk.spend()
            data: bytes = self.raw.recv(size)
            self.walk.feed(data)
        except Refused as exc:
            self.refused = str(exc)
            raise
        return data

    def rewrap(self, sock: Any) -> CountedSocket:
        """The same walk (and byte count) over ``sock``, the TLS socket that replaced ours."""
        return CountedSocket(sock, self.walk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)
