"""``oracle``: a TNS "ping" of the Oracle listener, in pure Python (what ``tnsping`` does).

The dialogue (big-endian; byte layout in docs/checks/oracle.md): one TNS
CONNECT packet, the same 58-byte preamble tnscmd, nmap and Metasploit send
(TNS version 310, lowest 300, SDU 2048, TDU 32767), carrying the connect data
``(CONNECT_DATA=(COMMAND=ping))``.  A live listener answers with a REFUSE
packet whose text is ``(DESCRIPTION=(TMP=)(VSNNUM=<n>)(ERR=0)(ALIAS=...))``:
ERR=0 means alive, and VSNNUM, when present, is decoded into the listener's
version (318767104 = 19.0.0.0.0).  A RESEND packet makes us send the CONNECT
again, at most :data:`MAX_RESENDS` times.  Any other ERR is down, reported by
number and meaning; ACCEPT and REDIRECT (not expected for a ping) still show a
listener speaking TNS and count as up.  Every read is bounded: an 8-byte header
and a body of at most :data:`MAX_PACKET` bytes per packet.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["OracleCheck", "connect_packet", "decode_vsnnum", "parse_refuse"]

CONNECT, ACCEPT, REFUSE, REDIRECT, DATA, RESEND = 1, 2, 4, 5, 6, 11
PACKET_TYPES = {
    1: "CONNECT",
    2: "ACCEPT",
    3: "ACK",
    4: "REFUSE",
    5: "REDIRECT",
    6: "DATA",
    7: "NULL",
    9: "ABORT",
    11: "RESEND",
    12: "MARKER",
    13: "ATTENTION",
    14: "CONTROL",
}
MAX_RESENDS = 3
MAX_PACKET = 8192
TNS_VERSION = 310
PING_DATA = b"(CONNECT_DATA=(COMMAND=ping))"

#: Listener errors a REFUSE may carry (the number after ERR=), with Oracle's text.
TNS_ERRORS = {
    1169: "TNS-01169: the listener has not recognized the password",
    1189: "TNS-01189: the listener could not authenticate the user",
    1190: "TNS-01190: the user is not authorized to execute the requested listener command",
    1194: "TNS-01194: the listener command did not arrive in a secure transport",
    12500: "ORA-12500: TNS:listener failed to start a dedicated server process",
    12502: "ORA-12502: TNS:listener received no CONNECT_DATA from client",
    12504: "ORA-12504: TNS:listener was not given the SERVICE_NAME in CONNECT_DATA",
    12505: "ORA-12505: TNS:listener does not currently know of SID given in connect descriptor",
    12508: "ORA-12508: TNS:listener could not resolve the COMMAND given",
    12511: "ORA-12511: TNS:service handler found but it is not accepting connections",
    12514: "ORA-12514: TNS:listener does not currently know of service requested in connect descriptor",
    12516: "ORA-12516: TNS:listener could not find available handler with matching protocol stack",
    12518: "ORA-12518: TNS:listener could not hand off client connection",
    12519: "ORA-12519: TNS:no appropriate service handler found",
    12520: "ORA-12520: TNS:listener could not find available handler for requested type of server",
    12526: "ORA-12526: TNS:listener: all appropriate instances are in restricted mode",
    12527: "ORA-12527: TNS:listener: all instances are in restricted mode or blocking new connections",
    12528: "ORA-12528: TNS:listener: all appropriate instances are blocking new connections",
    12529: "ORA-12529: TNS:connect request rejected based on current filtering rules",
}


def connect_packet(connect_data: bytes = PING_DATA, version: int = TNS_VERSION) -> bytes:
    """A CONNECT packet with the classic 58-byte preamble (connect data at offset 58)."""
    return (
        struct.pack("!HHBBH", 58 + len(connect_data), 0, CONNECT, 0, 0)
        + struct.pack("!10H", version, 300, 0, 0x0800, 0x7FFF, 0x7F08, 0, 1, len(connect_data), 58)
        + b"\0" * 4  # max receivable connect data
        + b"\0\0"  # connect flags 0 and 1
        + b"\0" * 8  # trace cross-facility items 1 and 2
        + b"\0\0\x34\xe6\0\0\0\x01"  # trace unique connection id, as tnscmd and nmap send it
        + b"\0" * 8  # reserved
        + connect_data
    )


def decode_vsnnum(vsnnum: int) -> str:
    """The listener version packed in VSNNUM, decoded as nmap does (318767104 -> 19.0.0.0.0)."""
    return ".".join(
        str(n)
        for n in (vsnnum >> 24, vsnnum >> 20 & 0xF, vsnnum >> 12 & 0xFF, vsnnum >> 8 & 0xF, vsnnum & 0xFF)
    )


def parse_refuse(body: bytes) -> tuple[int | None, int | None, str]:
    """ERR, VSNNUM (``None`` when absent) and the text of a REFUSE packet body."""
    if len(body) < 4:
        return None, None, ""
    (size,) = struct.unpack("!H", body[2:4])
    text = body[4 : 4 + size].decode("latin-1")
    err = re.search(r"\(ERR=(\d+)\)", text, re.IGNORECASE)
    vsn = re.search(r"\(VSNNUM=(\d+)\)", text, re.IGNORECASE)
    return (int(err[1]) if err else None), (int(vsn[1]) if vsn else None), text


class OracleCheck(Check):
    name = "oracle"
    summary = "Oracle listener TNS ping: CONNECT (COMMAND=ping), REFUSE with ERR=0 means alive"
    default_port = 1521
    #: ldirectord's service=oracle directives (a DBI login and query).  Accepted so an
    #: ldirectord.cf runs unchanged, but a TNS ping does not log in: the reason says so.
    options = tuple(
        Option(name, f"ldirectord's {name}=: accepted, not used (a TNS ping does not log in)", secret=secret)
        for name, secret in (
            ("login", False),
            ("passwd", True),
            ("database", False),
            ("request", False),
            ("receive", False),
        )
    )

    def setup(self) -> None:
        unused = [o.name for o in self.options if self.opts[o.name] is not None]
        self.unused_note = f"; {', '.join(unused)} not checked: a TNS ping does not log in" if unused else ""

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect()
        packet = connect_packet()
        for sent in range(1, MAX_RESENDS + 2):
            writer.write(packet)
            probe.phase = "waiting for the listener's answer to the TNS ping"
            header = await reader.readexactly(8)
            length, checksum, kind = struct.unpack("!HHB", header[:5])
            if checksum != 0 or not 8 <= length <= MAX_PACKET:
                raise CheckFailed(f"not a TNS listener: reply header {header.hex(' ')} is not a TNS packet")
            probe.phase = f"reading the {PACKET_TYPES.get(kind, f'type {kind}')} packet ({length} bytes)"
            body = await reader.readexactly(length - 8)
            if kind == RESEND:
                if sent > MAX_RESENDS:
                    raise CheckFailed(f"listener asked to RESEND the ping more than {MAX_RESENDS} times")
                continue
            return self._judge(kind, body)
        raise AssertionError("unreachable")

    def _judge(self, kind: int, body: bytes) -> Outcome:
        if kind == ACCEPT:
            version = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else 0
            return Outcome.up(f"listener accepted the connection (TNS ACCEPT, version {version})")
        if kind == REDIRECT:
            return Outcome.up("listener answered with a TNS REDIRECT (alive, hands connections on)")
        if kind != REFUSE:
            raise CheckFailed(f"unexpected TNS {PACKET_TYPES.get(kind, f'packet type {kind}')} to a ping")
        err, vsnnum, text = parse_refuse(body)
        details: dict[str, Any] = {}
        version = ""
        if vsnnum is not None:
            details["vsnnum"] = vsnnum
            if vsnnum:
                details["version"] = decode_vsnnum(vsnnum)
                version = f", version {details['version']}"
        if err is None:
            shown = f": {text[:80]!r}" if text else " (no text)"
            raise CheckFailed(f"listener REFUSE without an ERR= code{shown}")
        details["err"] = err
        if err == 0:
            return Outcome.up(f"listener alive (ping answered ERR=0{version}){self.unused_note}", **details)
        meaning = TNS_ERRORS.get(err, f"TNS error {err}")
        return Outcome.down(f"listener refused the ping: ERR={err} ({meaning}){version}", **details)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(OracleCheck)
