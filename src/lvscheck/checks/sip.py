"""``sip``: a SIP OPTIONS request (RFC 3261 11) over UDP or TCP; any valid response means alive.

The dialogue (CRLF line ends)::

    OPTIONS sip:lvscheck@<real> SIP/2.0
    Via: SIP/2.0/UDP <local-ip>:<local-port>;branch=z9hG4bK<random>;rport
    Max-Forwards: 70
    To: <sip:lvscheck@<real>>
    From: <sip:lvscheck@<local-ip>>;tag=<random>
    Call-ID: <random>@lvscheck
    CSeq: 1 OPTIONS
    Contact: <sip:lvscheck@<local-ip>:<local-port>>
    Accept: application/sdp
    User-Agent: lvscheck/<version>
    Content-Length: 0

Over UDP the datagram is resent every second until a reply; over TCP it is sent
once.  A response counts only if its status line is ``SIP/2.0 NNN reason`` and it
carries our Call-ID and ``CSeq: 1 OPTIONS``.  Provisional (1xx) responses are
skipped.  By default any final status proves the server alive (``405 Method Not
Allowed`` is a live server); ``status=200`` (or ``2xx``, ``200,405``...) demands
particular codes, as ldirectord demands ``200 OK``.
"""

from __future__ import annotations

import asyncio
import os
import re

from lvscheck import __version__
from lvscheck.checks._udp import exchange
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_choice
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["SipCheck", "parse_response"]

MAX_HEADER = 16 * 1024
_STATUS = re.compile(rb"SIP/2\.0 ([1-6]\d\d) ([^\r\n]*)\r?\n")


_parse_protocol = parse_choice("udp", "tcp")


def _parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``any``, ``200``, ``200,405``, ``200-299`` or ``2xx``: inclusive ranges of final codes."""
    if text.strip().lower() == "any":
        return ((200, 699),)
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip().lower()
        if re.fullmatch(r"[2-6]xx", part):
            low = int(part[0]) * 100
            ranges.append((low, low + 99))
        elif m := re.fullmatch(r"([2-6]\d\d)(?:-([2-6]\d\d))?", part):
            low, high = int(m[1]), int(m[2] or m[1])
            if low > high:
                raise ValueError(f"range {part} runs backwards")
            ranges.append((low, high))
        else:
            raise ValueError("expected any, or final status codes such as 200, 200,405, 200-299 or 2xx")
    return tuple(ranges)


def parse_response(head: bytes, call_id: str) -> tuple[int, str, int]:
    """Status, reason and Content-Length of one response head; CheckFailed if it is not ours."""
    m = _STATUS.match(head)
    if m is None:
        first = head.split(b"\n", 1)[0][:60].decode("latin-1", "replace").strip()
        raise CheckFailed(f"not a SIP response: {first!r}")
    headers: dict[str, str] = {}
    compact = {"i": "call-id", "l": "content-length", "v": "via"}
    for line in head[m.end() :].decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers.setdefault(compact.get(key, key), value.strip())
    if headers.get("call-id") != call_id or headers.get("cseq", "").split() != ["1", "OPTIONS"]:
        raise CheckFailed("SIP response does not answer our OPTIONS (Call-ID or CSeq differ)")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise CheckFailed(f"SIP response has a bad Content-Length {length[:20]!r}")
    return int(m[1]), m[2].decode("utf-8", "replace").strip(), int(length)


class SipCheck(Check):
    name = "sip"
    summary = "SIP OPTIONS over UDP or TCP; any valid response (or the status= codes) means alive"
    default_port = 5060
    options = (
        Option("login", "user part of the request URI (or a full user@host)", "lvscheck"),
        Option("protocol", "udp or tcp", "udp", _parse_protocol),
        Option(
            "status", "final status codes that mean up: any, 200, 2xx, 200,405, ...", "any", _parse_statuses
        ),
    )

    def setup(self) -> None:
        login: str = self.opts["login"]
        host = self.spec.target.host
        host = f"[{host}]" if ":" in host else host
        port = "" if self.port == 5060 else f":{self.port}"
        self.uri = f"sip:{login}" if "@" in login else f"sip:{login}@{host}{port}"
        self.user = login.split("@", 1)[0]
        self.protocol: str = self.opts["protocol"]
        self.statuses: tuple[tuple[int, int], ...] = self.opts["status"]
        if any(c in self.uri for c in " \r\n<>"):
            raise OptionError("login= must not contain spaces, line breaks or angle brackets")

    def describe(self) -> str:
        return f"sip OPTIONS {self.uri} over {self.protocol}"

    def _request(self, local: tuple[str, int], call_id: str) -> bytes:
        lhost = f"[{local[0]}]" if ":" in local[0] else local[0]
        branch, tag = os.urandom(8).hex(), os.urandom(4).hex()
        return (
            f"OPTIONS {self.uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{self.protocol.upper()} {lhost}:{local[1]};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <{self.uri}>\r\n"
            f"From: <sip:{self.user}@{lhost}>;tag={tag}\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:{self.user}@{lhost}:{local[1]}>\r\n"
            "Accept: application/sdp\r\n"
            f"User-Agent: lvscheck/{__version__}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    async def probe(self, probe: Probe) -> Outcome:
        call_id = f"{os.urandom(8).hex()}@lvscheck"
        if self.protocol == "udp":
            endpoint = await probe.datagram()
            assert endpoint.transport is not None
            request = self._request(endpoint.transport.get_extra_info("sockname")[:2], call_id)
            probe.phase = "waiting for the SIP response over UDP"
            data = await exchange(probe, endpoint, request)
            while True:
                head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
                status, reason, _ = parse_response(head, call_id)
                if status >= 200:
                    return self._judge(status, reason, "UDP")
                probe.phase = f"waiting for a final SIP response after {status} {reason} over UDP"
                data = await endpoint.recv()
        reader, writer = await probe.connect(limit=MAX_HEADER)
        writer.write(self._request(writer.get_extra_info("sockname")[:2], call_id))
        probe.phase = "waiting for the SIP response over TCP"
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise CheckFailed(f"SIP response head longer than {MAX_HEADER} bytes") from None
            status, reason, length = parse_response(head, call_id)
            if status >= 200:
                return self._judge(status, reason, "TCP")
            probe.phase = f"waiting for a final SIP response after {status} {reason} over TCP"
            if length > MAX_HEADER:
                raise CheckFailed(f"SIP {status} response announces a {length}-byte body")
            await reader.readexactly(length)

    def _judge(self, status: int, reason: str, transport: str) -> Outcome:
        text = f"SIP/2.0 {status} {reason}".rstrip()
        if any(low <= status <= high for low, high in self.statuses):
            return Outcome.up(f"{text} to OPTIONS over {transport}", status=status)
        accepted = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.statuses)
        return Outcome.down(f"{text} to OPTIONS over {transport}; accepted: {accepted}", status=status)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(SipCheck)
