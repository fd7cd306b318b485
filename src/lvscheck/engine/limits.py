"""Caps on checks in flight: one global, one per real-server host."""

from __future__ import annotations

import asyncio

__all__ = ["Limits"]


class Limits:
    """At most ``total`` checks at once, and at most ``per_host`` against one host.

    :meth:`acquire`/:meth:`release` are the engine's hot path (no context-manager
    generator per check).  A host's
    entry is dropped when its last check ends, so the table does not grow with
    the number of hosts ever checked.
    """

    def __init__(self, total: int = 512, per_host: int = 8) -> None:
        if total < 1 or per_host < 1:
            raise ValueError("concurrency caps must be at least 1")
        self.total = total
        self.per_host = per_host
        self._global = asyncio.Semaphore(total)
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    async def acquire(self, host: str) -> None:
        """Wait for a slot against ``host`` and a global one; pair with :meth:`release`."""
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = (asyncio.Semaphore(self.per_host), [0])
        sem, users = entry
        users[0] += 1
        try:
            await sem.acquire()
        except BaseException:
            self._forget(host, users)
            raise
        try:
            await self._global.acquire()
        except BaseException:
            sem.release()
            self._forget(host, users)
            raise

    def release(self, host: str) -> None:
        sem, users = self._hosts[host]
        self._global.release()
        sem.release()
        self._forget(host, users)

    def _forget(self, host: str, users: list[int]) -> None:
        users[0] -= 1
        if users[0] == 0:
            del self._hosts[host]

    @property
    def hosts_tracked(self) -> int:
        return len(self._hosts)
