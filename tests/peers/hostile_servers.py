"""Moved to :mod:`tests.peers.hostile` (one module of hand-written hostile servers).

Kept only so that test modules written before the merge still import; remove once
nothing imports ``tests.peers.hostile_servers``.
"""

from tests.peers.hostile import UdpHandler, open_fds, serve, udp_server

__all__ = ["UdpHandler", "open_fds", "serve", "tcp_server", "udp_server"]

tcp_server = serve
