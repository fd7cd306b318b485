"""Moved to :mod:`tests.peers.hostile` (one module of hand-written hostile servers).

Kept only so that test modules written before the merge still import; remove once
nothing imports ``tests.peers.textfaults``.
"""

from tests.peers.hostile import endless_line, endless_lines, open_fds, paused, script, stall

__all__ = ["endless_line", "endless_lines", "open_fds", "paused", "script", "stall"]
