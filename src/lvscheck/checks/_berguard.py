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
  (endless entries: ldap3 decodes each in Python, about 20 us of CPU apiece).
"""

from __future__ import annotations

from typing import Any

from lvscheck.plugin.check import size_text

__all__ = ["MAX_BYTES", "MAX_MESSAGE", "MAX_MESSAGES", "CountedSocket", "Refused"]

MAX_MESSAGE = 256 * 1024
MAX_BYTES = 1024 * 1024
#: A check reads a handful: StartTLS, bind, one entry, search done (and a referral or two).
MAX_MESSAGES = 64


class Refused(OSError):
    """The server sent what an LDAP check will not read; ``str()`` says what."""


class _Walk:
    """The message walk, kept across ``recv`` calls and across a StartTLS re-wrap."""

    __slots__ = ("header", "messages", "skip", "total")

    def __init__(self) -> None:
        self.header = bytearray()  # a partial message header (tag, length octets)
        self.skip = 0  # bytes of the current message still to come
        self.total = 0
        self.messages = 0

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

    def __init__(self, sock: Any, walk: _Walk | None = None) -> None:
        self.raw = sock
        self.walk = walk or _Walk()
        self.refused: str | None = None  # why the last recv was refused

    def recv(self, size: int) -> bytes:
        data: bytes = self.raw.recv(size)
        try:
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
