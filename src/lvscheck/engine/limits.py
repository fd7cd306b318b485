"""Caps on checks in flight: one global, one per real-server host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Limits"]


class Limits:
    """At most ``total`` checks at once, and at most ``per_host`` against one host."""

    def __init__(self, total: int = 512, per_host: int = 8) -> None:
        if total < 1 or per_host < 1:
            raise ValueError("concurrency caps must be at least 1")
        self.total = total
        self.per_host = per_host
        self._global = asyncio.Semaphore(total)
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = (asyncio.Semaphore(self.per_host), [0])
        sem, users = entry
        users[0] += 1
        try:
            async with sem, self._global:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._hosts[host]

    @property
    def hosts_tracked(self) -> int:
        return len(self._hosts)
