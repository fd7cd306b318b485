"""A test Oracle TNS listener, hand-written because no real one can be installed here.

Oracle's listener (tnslsnr) ships only with Oracle Database / XE downloads, not
in Debian, so this asyncio server implements the pre-session part of TNS from
the documented byte layout (../shared/reference/test-peers.md section 2, and
docs/checks/oracle.md): it reads a CONNECT packet (the classic 58-byte preamble
of tnscmd/nmap/lvscheck, python-oracledb's 74-byte one, and connect data longer
than 230 bytes sent on in a DATA packet), and answers as a 19c listener does:

* ``(COMMAND=ping)``: REFUSE ``(DESCRIPTION=(TMP=)(VSNNUM=318767104)(ERR=0)(ALIAS=LISTENER))``;
* ``(COMMAND=version)`` from a remote host (10g+): REFUSE with ERR=1189;
* anything else (a real session: SERVICE_NAME=...): REFUSE with ERR=12514
  (service unknown), which python-oracledb turns into DPY-6001 / ORA-12514.

Because it is our own, the tests prove it against independent implementations
of the same protocol: nmap's ``oracle-tns-version`` script as a client, tshark's
TNS dissector as a decoder of the check's own bytes, python-oracledb thin mode
as a client.  Knobs: ``resends`` (RESEND packets before answering), ``vsnnum``,
``ping_err`` (the ERR a ping gets).  ``seen`` records each connect data received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.peers.hostile import serve

__all__ = ["TnsListener", "refuse_packet", "tns_listener"]

VSNNUM_19C = 318767104  # 19.0.0.0.0


def refuse_packet(text: bytes, user_reason: int = 0x22, system_reason: int = 0) -> bytes:
    """A REFUSE packet (type 4): reasons, data length, data."""
    body = struct.pack("!BBH", user_reason, system_reason, len(text)) + text
    return struct.pack("!HHBBH", 8 + len(body), 0, 4, 0, 0) + body


RESEND = struct.pack("!HHBBH", 8, 0, 11, 0, 0)


@dataclass
class TnsListener:
    port: int = 0
    resends: int = 0
    vsnnum: int = VSNNUM_19C
    ping_err: int = 0
    seen: list[bytes] = field(default_factory=list)
    connects: int = 0  # CONNECT packets received, resends included

    def answer(self, connect_data: bytes) -> bytes:
        cd = connect_data.upper()
        stack = lambda err: b"(ERROR_STACK=(ERROR=(CODE=%d)(EMFI=4)))" % err  # noqa: E731
        if b"(COMMAND=PING)" in cd:
            if self.ping_err:
                text = b"(DESCRIPTION=(TMP=)(VSNNUM=%d)(ERR=%d)%s)" % (
                    self.vsnnum,
                    self.ping_err,
                    stack(self.ping_err),
                )
            else:
                text = b"(DESCRIPTION=(TMP=)(VSNNUM=%d)(ERR=0)(ALIAS=LISTENER))" % self.vsnnum
        elif b"(COMMAND=" in cd:  # version, status, ...: refused to remote hosts since 10g
            text = b"(DESCRIPTION=(TMP=)(VSNNUM=%d)(ERR=1189)%s)" % (self.vsnnum, stack(1189))
        else:
            text = b"(DESCRIPTION=(TMP=)(VSNNUM=%d)(ERR=12514)%s)" % (self.vsnnum, stack(12514))
        return refuse_packet(text)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        resends_left = self.resends
        while True:
            packet = await _read_packet(reader)
            if packet[4] != 1:
                return  # not a CONNECT: a real listener drops the connection
            self.connects += 1
            cd_len, cd_off = struct.unpack("!HH", packet[24:28])
            if cd_off + cd_len <= len(packet):
                data = packet[cd_off : cd_off + cd_len]
            else:  # connect data over 230 bytes: it follows in a DATA packet (2-byte flags first)
                more = await _read_packet(reader)
                data = more[10 : 10 + cd_len]
            self.seen.append(data)
            if resends_left > 0:
                resends_left -= 1
                writer.write(RESEND)
                continue
            writer.write(self.answer(data))
            await writer.drain()
            return


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(8)
    if header[2:4] == b"\0\0":
        (length,) = struct.unpack("!H", header[:2])
    else:  # a 4-byte length (TNS version >= 315 after negotiation)
        (length,) = struct.unpack("!I", header[:4])
    if not 8 <= length <= 65535:
        raise ConnectionError(f"bad TNS length {length}")
    return header + await reader.readexactly(length - 8)


@contextlib.contextmanager
def tns_listener(**knobs: int) -> Iterator[TnsListener]:
    """Start the listener on a free 127.0.0.1 port in its own thread."""
    listener = TnsListener(**knobs)
    with serve(listener.handle) as port:
        listener.port = port
        yield listener


def describe_text(packet: bytes) -> str:
    """The DESCRIPTION text of a REFUSE packet (for assertions)."""
    m = re.search(rb"\(DESCRIPTION=.*\)", packet)
    return m[0].decode() if m else ""
