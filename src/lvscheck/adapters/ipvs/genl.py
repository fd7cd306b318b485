"""Generic netlink framing for the kernel's ``IPVS`` family: a socket, requests, answers, attributes.

Shared by the IPVS table adapter (:mod:`~lvscheck.adapters.ipvs.netlink`, which has pyroute2
encode its service and destination attributes) and the sync daemons
(:mod:`~lvscheck.adapters.ipvs.syncd`, which needs nothing but this).  Encoded and decoded
with :mod:`struct` only, so importing it costs nothing.

A request is one ``nlmsghdr`` + ``genlmsghdr`` + attributes; its answers are every message with
its sequence number up to ``NLMSG_DONE`` (a dump) or the acknowledgement (``NLMSG_ERROR`` with
code 0).  An error code from the kernel is :class:`KernelRefused` (an :class:`OSError` with the
errno); failures of the socket itself are plain :class:`OSError` and the callers say what they
were doing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator

from lvscheck.errors import AdapterError

__all__ = [
    "GENLHDR",
    "NLMSGHDR",
    "NLMSG_ERROR",
    "NLM_F_ACK",
    "NLM_F_DUMP",
    "NLM_F_REQUEST",
    "GenlSocket",
    "KernelRefused",
    "attrs",
    "error_code",
    "messages",
    "nla",
]

NETLINK_GENERIC = 16
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLA_F_NESTED = 0x8000
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
GENLHDR = struct.Struct("=BBH")  # cmd, version, reserved
_NLA = struct.Struct("=HH")  # len, type
_ERRNO = struct.Struct("=i")


class KernelRefused(OSError):
    """The kernel answered a request with an error code (``errno``)."""


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    head = _NLA.pack(_NLA.size + len(payload), kind)
    return head + payload + b"\0" * (-(len(head) + len(payload)) % 4)


def attrs(buf: bytes, offset: int = 0) -> dict[int, bytes]:
    """Netlink attributes of ``buf`` from ``offset``: {type: payload} (the nested flag masked)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while offset + _NLA.size <= end:
        length, kind = _NLA.unpack_from(buf, offset)
        if length < _NLA.size:
            break
        out[kind & 0x3FFF] = buf[offset + _NLA.size : offset + length]
        offset += (length + 3) & ~3
    return out


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The netlink messages of one datagram: ``(type, sequence number, payload)``."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, mtype, _flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            return
        yield mtype, seq, data[offset + NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3


def error_code(payload: bytes) -> int:
    """The errno of an ``NLMSG_ERROR`` payload (0: an acknowledgement)."""
    return -int(_ERRNO.unpack_from(payload)[0])


class GenlSocket:
    """A bound ``AF_NETLINK``/``NETLINK_GENERIC`` socket and its sequence numbers."""

    def __init__(self, timeout: float, *, rcvbuf: int = 0, sndbuf: int = 0, recv_size: int = 65536) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.recv_size = recv_size
        self._seq = 0
        try:
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            with contextlib.suppress(OSError):  # acks without a copy of the request
                self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq

    def receive(self) -> list[tuple[int, int, bytes]]:
        """The messages of the next datagram (raises :class:`OSError`, :class:`TimeoutError`)."""
        return list(messages(self.sock.recv(self.recv_size)))

    def request(self, data: bytes, seq: int) -> list[bytes]:
        """Send one framed request; the payloads answering it (until DONE or the acknowledgement)."""
        self.sock.send(data)
        answers: list[bytes] = []
        while True:
            for mtype, rseq, payload in self.receive():
                if rseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return answers
                if mtype == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise KernelRefused(code, os.strerror(code))
                    return answers
                answers.append(payload)

    def call(self, family: int, cmd: int, version: int, attributes: bytes, flags: int) -> list[bytes]:
        """Frame ``cmd`` with ``attributes`` (encoded) for ``family`` and send it: :meth:`request`."""
        seq = self.next_seq()
        body = GENLHDR.pack(cmd, version, 0) + attributes
        head = NLMSGHDR.pack(NLMSGHDR.size + len(body), family, NLM_F_REQUEST | flags, seq, 0)
        return self.request(head + body, seq)

    def family(self, name: str = "IPVS") -> int:
        """The id of the generic netlink family ``name``; :class:`AdapterError` if there is none."""
        try:
            request = nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
            answers = self.call(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, request, NLM_F_ACK)
        except KernelRefused as exc:
            if exc.errno == errno.ENOENT and name == "IPVS":
                raise AdapterError(
                    "this kernel has no IPVS (generic netlink family 'IPVS' not found: modprobe ip_vs)"
                ) from exc
            raise AdapterError(f"{name} netlink: {exc.strerror}") from exc
        except OSError as exc:
            raise AdapterError(f"{name} netlink: {exc.strerror or exc}") from exc
        for payload in answers:
            raw = attrs(payload, GENLHDR.size).get(CTRL_ATTR_FAMILY_ID)
            if raw is not None and len(raw) >= 2:
                return int(struct.unpack_from("=H", raw)[0])
        raise AdapterError(f"{name} netlink: the kernel did not say which family id {name} has")
