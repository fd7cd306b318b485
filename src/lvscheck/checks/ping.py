"""``ping``: ICMP echo (IPv4 and IPv6), unprivileged where the kernel allows it.

Socket: with ``icmpsocket=auto`` (the default) an unprivileged ICMP datagram
socket (``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)``, allowed when our group is
inside ``net.ipv4.ping_group_range``), else a raw ICMP socket (root or
CAP_NET_RAW), else the check is down with a reason that says which of the two
to grant (``fault="director"`` in the details: the director, not the real, is
the problem).  The socket is connected to the real server, so the kernel hands
us only its packets.

The dialogue: an echo request (type 8, or 128 for IPv6; code 0; identifier,
sequence number 1, 2, ...; a 16-byte payload ``lvscheck`` + 8 random bytes)
every ``interval`` seconds until the matching echo reply (type 0 / 129, same
sequence number and payload) arrives, or the deadline (``checktimeout``, as in
ldirectord) ends.  An ICMP destination unreachable for our echo is down at once.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time

from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_seconds
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["PingCheck", "checksum"]

UNREACHABLE_V4 = {
    0: "net unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    9: "net prohibited",
    10: "host prohibited",
    13: "communication administratively prohibited",
}
UNREACHABLE_V6 = {
    0: "no route to destination",
    1: "communication administratively prohibited",
    3: "address unreachable",
    4: "port unreachable",
}


def _parse_socket(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "dgram", "raw"):
        raise ValueError("expected auto, dgram (unprivileged ICMP socket) or raw (root)")
    return value


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _open(family: int, kind: str) -> tuple[socket.socket, str]:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    errors: list[str] = []
    kinds = ("dgram", "raw") if kind == "auto" else (kind,)
    for k in kinds:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM if k == "dgram" else socket.SOCK_RAW, proto)
        except PermissionError:
            if k == "dgram":
                try:
                    with open("/proc/sys/net/ipv4/ping_group_range") as f:
                        allowed = " ".join(f.read().split())
                except OSError:
                    allowed = "?"
                errors.append(
                    f"unprivileged ICMP sockets are not allowed for group {os.getgid()} "
                    f"(net.ipv4.ping_group_range = {allowed})"
                )
            else:
                errors.append("a raw ICMP socket needs root or CAP_NET_RAW")
            continue
        sock.setblocking(False)
        return sock, k
    raise CheckFailed(f"cannot open an ICMP socket: {'; '.join(errors)}")


def _why(exc: OSError) -> str:
    """The kernel's refusal to route an echo, with what usually causes it."""
    text = exc.strerror or str(exc)
    hint = {errno.EINVAL: "a blackhole route?", errno.EACCES: "a prohibit route or a firewall rule?"}
    return f"{text} ({hint[exc.errno]})" if exc.errno in hint else text


class PingCheck(Check):
    name = "ping"
    summary = "ICMP echo request and reply (unprivileged ICMP socket where allowed, else raw)"
    default_port = 0  # ICMP has no ports; a port given with the target is ignored
    timeout_option = "checktimeout"
    options = (
        Option("interval", "seconds between echo requests until a reply or the deadline", "1", parse_seconds),
        Option("icmpsocket", "auto, dgram (unprivileged) or raw (needs root)", "auto", _parse_socket),
    )

    def setup(self) -> None:
        self.interval: float = self.opts["interval"]
        self.socket_kind: str = self.opts["icmpsocket"]

    def describe(self) -> str:
        return f"ping {self.spec.target.host}"

    async def probe(self, probe: Probe) -> Outcome:
        loop = asyncio.get_running_loop()
        probe.phase = f"resolving {probe.host}"
        infos = await loop.getaddrinfo(probe.host, None, type=socket.SOCK_DGRAM)
        family, addr = infos[0][0], str(infos[0][4][0])
        try:
            sock, kind = _open(family, self.socket_kind)
        except CheckFailed as exc:
            return Outcome.down(exc.reason, fault="director")
        probe.track(sock)
        try:
            sock.connect((addr, 0))
        except OSError as exc:
            raise CheckFailed(f"cannot send an ICMP echo to {addr}: {_why(exc)}") from None
        v4 = family == socket.AF_INET
        ident = int.from_bytes(os.urandom(2), "big")
        payload = b"lvscheck" + os.urandom(8)
        sent_at: dict[int, float] = {}
        seq = 0
        while True:
            seq += 1
            header = struct.pack("!BBHHH", 8 if v4 else 128, 0, 0, ident, seq)
            if v4:  # the kernel fills in the ICMPv6 checksum itself
                header = header[:2] + struct.pack("!H", checksum(header + payload)) + header[4:]
            try:
                await loop.sock_sendall(sock, header + payload)
            except OSError as exc:
                raise CheckFailed(f"cannot send an ICMP echo to {addr}: {_why(exc)}") from None
            sent_at[seq] = time.perf_counter()
            probe.phase = (
                f"waiting for an ICMP echo reply from {addr} ({seq} echo request{'s' * (seq > 1)} sent)"
            )
            try:
                async with asyncio.timeout(min(self.interval, probe.remaining())):
                    while True:
                        data = await loop.sock_recv(sock, 2048)
                        got = self._match(data, v4, kind, ident, payload, sent_at, addr)
                        if got is not None:
                            return Outcome.up(
                                f"echo reply from {addr} in {got * 1000:.2f} ms ({kind} ICMP socket)",
                                rtt_ms=round(got * 1000, 3),
                            )
            except TimeoutError:
                if probe.remaining() <= 0:
                    raise
            except OSError as exc:  # an ICMP error the kernel reported on the connected socket
                raise CheckFailed(f"ICMP echo to {addr} failed: {exc.strerror or exc}") from None

    @staticmethod
    def _match(
        data: bytes, v4: bool, kind: str, ident: int, payload: bytes, sent_at: dict[int, float], addr: str
    ) -> float | None:
        """Seconds since the echo this reply answers; None for someone else's packet."""
        if v4 and kind == "raw":  # a raw IPv4 socket hands us the IP header too
            if len(data) < 20:
                return None
            data = data[(data[0] & 0x0F) * 4 :]
        if len(data) < 8:
            return None
        icmp_type, code, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
        reply, unreachable = (0, 3) if v4 else (129, 1)
        if icmp_type == reply and data[8:] == payload and rseq in sent_at:
            if kind == "raw" and rid != ident:  # a dgram socket's id is the kernel's choice
                return None
            return time.perf_counter() - sent_at[rseq]
        if icmp_type == unreachable and payload[:8] in data:
            names = UNREACHABLE_V4 if v4 else UNREACHABLE_V6
            raise CheckFailed(f"ICMP destination unreachable from {addr}: {names.get(code, f'code {code}')}")
        return None


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(PingCheck)
