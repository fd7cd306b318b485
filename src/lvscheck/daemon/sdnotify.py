"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) in a few lines, no libsystemd.

``notify("READY=1")`` sends one datagram to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket when it starts with ``@``); without the variable it does
nothing.  :func:`watchdog_interval` is half of ``$WATCHDOG_USEC`` (when it is
meant for this process), the period at which to send ``WATCHDOG=1``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval"]


def notify(message: str) -> bool:
    """Send ``message`` (``KEY=value`` lines) to systemd; False when not under systemd or on error."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half the watchdog timeout), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2e6)
    except ValueError:
        return None
