"""Moved: the daemon's real servers are :class:`tests.peers.nginx.RealNginx` (one nginx launcher).

Kept only so that test modules not yet switched to ``tests.peers.nginx`` still import;
remove once nothing imports ``tests.daemon.realservers``.
"""

from tests.peers.nginx import RealNginx

__all__ = ["RealNginx"]
