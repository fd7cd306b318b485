"""Moved to :mod:`tests.peers.hostile` (one module of hand-written hostile servers).

Kept only so that test modules written before the merge still import; remove once
nothing imports ``tests.peers.faults``.
"""

from tests.peers.hostile import Handler, serve, serve_many

__all__ = ["Handler", "serve", "serve_many"]
