"""``dns``: ask the real server one question and search ``receive`` in the answer.

The dialogue: one DNS query ``request`` (``NAME [TYPE]``, type A by default; an
IP address alone becomes its PTR question, as in ldirectord) with recursion
desired, over UDP (default) or TCP (``protocol=tcp``, RFC 1035 2-byte length
prefix).  A UDP query is resent every second until the deadline; a truncated
(TC) UDP answer is asked again over TCP.  Up iff the reply matches the query,
its rcode is NOERROR, it has answer records, and ``receive`` (if given) is found
in the text of one answer's rdata.  dnspython builds and parses the messages; it
is imported only when a dns check is prepared.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import TYPE_CHECKING, Any

from lvscheck.checks._udp import exchange
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_choice, parse_regex
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

if TYPE_CHECKING:
    import dns.message

__all__ = ["DnsCheck"]


_parse_protocol = parse_choice("udp", "tcp")


class DnsCheck(Check):
    name = "dns"
    requires = ("dns",)
    summary = "DNS query (UDP or TCP); rcode, answers and a regular expression on them decide"
    default_port = 53
    options = (
        Option("request", "the question: NAME [TYPE] (type A by default; an IP address asks PTR)"),
        Option("receive", "regular expression searched in each answer's rdata text", None, parse_regex),
        Option("protocol", "udp or tcp", "udp", _parse_protocol),
    )

    def setup(self) -> None:
        import dns.exception
        import dns.name
        import dns.rdataclass
        import dns.rdatatype
        import dns.reversename

        request: str | None = self.opts["request"]
        if not request or not request.split():
            raise OptionError("check type 'dns' needs request=NAME [TYPE], e.g. request='www.example.org A'")
        parts = request.split()
        if len(parts) > 2:
            raise OptionError(f"request={request!r}: expected NAME [TYPE], e.g. 'www.example.org A'")
        try:
            ipaddress.ip_address(parts[0])
            is_ip = True
        except ValueError:
            is_ip = False
        try:
            if is_ip and len(parts) == 1:
                self.qname = dns.reversename.from_address(parts[0])
                self.qtype = dns.rdatatype.PTR
            else:
                self.qname = dns.name.from_text(parts[0])
                self.qtype = dns.rdatatype.from_text(parts[1]) if len(parts) == 2 else dns.rdatatype.A
        except (dns.exception.DNSException, ValueError) as exc:
            raise OptionError(f"request={request!r} is not a DNS question NAME [TYPE]: {exc}") from None
        if dns.rdatatype.is_metatype(self.qtype) and self.qtype != dns.rdatatype.ANY:
            raise OptionError(f"request={request!r}: {dns.rdatatype.to_text(self.qtype)} is not a query type")
        self.question = f"{self.qname} {dns.rdatatype.to_text(self.qtype)}"
        self.rdclass = dns.rdataclass.IN
        self.receive: re.Pattern[bytes] | None = self.opts["receive"]
        self.protocol: str = self.opts["protocol"]

    def describe(self) -> str:
        return f"dns {self.question} over {self.protocol} {self.spec.target.host}:{self.port}"

    async def probe(self, probe: Probe) -> Outcome:
        import dns.message

        query = dns.message.make_query(self.qname, self.qtype, self.rdclass)
        wire = query.to_wire()
        if self.protocol == "udp":
            endpoint = await probe.datagram()
            probe.phase = f"waiting for the answer to {self.question} over UDP"
            reply = self._parse(query, await exchange(probe, endpoint, wire))
            if not reply.flags & 0x0200:  # TC
                return self._judge(reply, "UDP")
            truncated = "UDP answer truncated, asked again over TCP"
        else:
            truncated = ""
        reader, writer = await probe.connect()
        writer.write(struct.pack("!H", len(wire)) + wire)
        probe.phase = f"waiting for the answer to {self.question} over TCP"
        (size,) = struct.unpack("!H", await reader.readexactly(2))
        reply = self._parse(query, await reader.readexactly(size))
        outcome = self._judge(reply, "TCP")
        if truncated:
            return Outcome(outcome.state, f"{outcome.reason} ({truncated})", outcome.weight, outcome.details)
        return outcome

    def _parse(self, query: dns.message.Message, data: bytes) -> dns.message.Message:
        import dns.exception
        import dns.message

        try:
            reply = dns.message.from_wire(data, ignore_trailing=True)
        except (dns.exception.DNSException, ValueError, IndexError, struct.error) as exc:
            raise CheckFailed(
                f"garbled DNS reply to {self.question} ({len(data)} bytes): {exc or type(exc).__name__}"
            ) from None
        if not query.is_response(reply):
            raise CheckFailed(f"reply ({len(data)} bytes) does not answer the query for {self.question}")
        return reply

    def _judge(self, reply: dns.message.Message, transport: str) -> Outcome:
        import dns.rcode

        rcode = reply.rcode()
        details: dict[str, Any] = {"rcode": dns.rcode.to_text(rcode)}
        if rcode != dns.rcode.NOERROR:
            return Outcome.down(f"{dns.rcode.to_text(rcode)} for {self.question}", **details)
        texts = [rdata.to_text() for rrset in reply.answer for rdata in rrset]
        details["answers"] = len(texts)
        if not texts:
            return Outcome.down(f"NOERROR but no answer records for {self.question}", **details)
        shown = ", ".join(texts[:3]) + (", ..." if len(texts) > 3 else "")
        if self.receive is not None:
            wanted = self.receive.pattern.decode("utf-8", "replace")
            if not any(self.receive.search(t.encode("utf-8", "surrogateescape")) for t in texts):
                return Outcome.down(
                    f"{wanted!r} not found in the answer to {self.question}: {shown}", **details
                )
            return Outcome.up(f"{self.question} -> {shown} ({wanted!r} found, {transport})", **details)
        return Outcome.up(f"{self.question} -> {shown} ({transport})", **details)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(DnsCheck)
