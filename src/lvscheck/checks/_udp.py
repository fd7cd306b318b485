"""Request/response over UDP for the datagram checks (dns, radius, sip).

UDP loses packets, so the request is sent again every ``every`` seconds until a
datagram comes back or the check's one deadline ends.  The same bytes are resent
(same DNS id, same RADIUS identifier and authenticator, same SIP branch), which
every one of these protocols treats as a retransmission, not a new request.
"""

from __future__ import annotations

import asyncio

from lvscheck.errors import CheckFailed
from lvscheck.plugin.probe import Datagrams, Probe

__all__ = ["RETRANSMIT", "exchange"]

#: Seconds between retransmissions of a UDP request.
RETRANSMIT = 1.0


async def exchange(probe: Probe, endpoint: Datagrams, payload: bytes, every: float = RETRANSMIT) -> bytes:
    """Send ``payload``; resend it every ``every`` s; return the first datagram that comes back."""
    while True:
        endpoint.send(payload)
        try:
            async with asyncio.timeout(min(every, probe.remaining())):
                return await endpoint.recv()
        except ConnectionRefusedError:
            host = f"[{probe.host}]" if ":" in probe.host else probe.host
            raise CheckFailed(f"ICMP port unreachable: nothing listens on UDP {host}:{probe.port}") from None
        except TimeoutError:
            if probe.remaining() <= 0:
                raise
