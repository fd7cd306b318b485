"""Probe sockets through the VIP (via=vip): SO_MARK set, bound to the director's address, VIP as peer.

On loopback: the "VIP" and the "real" are both 127.0.0.1 here, so the connection
succeeds without IPVS; what is checked is the socket the probe opened.  SO_MARK
needs CAP_NET_ADMIN (root).
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from lvscheck.plugin.probe import Probe, source_towards

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SO_MARK needs CAP_NET_ADMIN")


def test_tcp_socket_to_the_real_goes_to_the_vip_marked() -> None:
    async def main() -> tuple[int, str, tuple[str, int]]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        probe = Probe("127.0.0.1", port, 2.0, 1.0, mark=0x4C560001, real="127.0.0.2")
        try:
            _, writer = await probe.connect("127.0.0.2")  # a check that names the real's address
            sock = writer.get_extra_info("socket")
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_MARK),
                probe.phase,
                writer.get_extra_info("peername"),
            )
        finally:
            probe.close()
            server.close()

    mark, phase, peer = asyncio.run(main())
    assert mark == 0x4C560001
    assert peer[0] == "127.0.0.1"  # the VIP, not the real
    assert "through the VIP to 127.0.0.2" in phase


def test_udp_endpoint_is_marked_too() -> None:
    async def main() -> int:
        probe = Probe("127.0.0.1", 9, 2.0, 1.0, mark=77, real="127.0.0.1")
        try:
            endpoint = await probe.datagram()
            assert endpoint.transport is not None
            return int(
                endpoint.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_MARK)
            )
        finally:
            probe.close()

    assert asyncio.run(main()) == 77


def test_other_hosts_and_unmarked_probes_are_left_alone() -> None:
    async def main() -> int:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        probe = Probe("127.0.0.1", port, 2.0, 1.0)
        try:
            _, writer = await probe.connect()
            return int(writer.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_MARK))
        finally:
            probe.close()
            server.close()

    assert asyncio.run(main()) == 0


def test_source_towards_is_a_route_lookup() -> None:
    assert source_towards("127.0.0.1", socket.AF_INET) == "127.0.0.1"
