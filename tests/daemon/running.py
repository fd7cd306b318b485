"""Running a :class:`Director` in a test: the typed-model virtual, waiting, weights, run-until-done.

Shared by the daemon tests on the host (real nginx reals, an in-memory IPVS table).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from lvscheck.adapters.ipvs.table import MemoryIPVS, ServiceKey
from lvscheck.config.model import LvscheckSettings, RealServer, VirtualService
from lvscheck.daemon.director import Director

__all__ = ["VIP", "VIP2", "run_with", "until", "virtual", "weight"]

VIP = ServiceKey.tcp("10.9.0.1", 80)
VIP2 = ServiceKey.tcp("10.9.0.2", 80)


def virtual(addr: str, reals: list[tuple[int, int]], line: int = 1, **kw: object) -> VirtualService:
    fields: dict[str, object] = dict(
        line=line,
        ipv6=False,
        protocol="tcp",
        address=addr,
        port=80,
        fwmark=None,
        service="http",
        service_inferred=False,
        options={"request": "/test.html", "receive": "Still alive"},
        checktimeout=1,
        negotiatetimeout=1,
        failurecount=2,
        quiescent=True,
        reals=tuple(
            RealServer("127.0.0.1", p, "masq", w, line=line + 1 + i) for i, (p, w) in enumerate(reals)
        ),
        lvscheck=LvscheckSettings(rise=2, interval=0.3, fastinterval=0.1, jitter=0.1),
    )
    fields.update(kw)
    return VirtualService(**fields)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not _holds(cond):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def weight(ipvs: MemoryIPVS, key: ServiceKey, port: int) -> int | None:
    d = ipvs.table.dest(key, "127.0.0.1", port)
    return None if d is None else d.weight


def run_with(director: Director, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        task = asyncio.create_task(director.run())
        try:
            await body()
        finally:
            director.stop()
            await task

    asyncio.run(main())


def _holds(cond: Callable[[], bool]) -> bool:
    try:
        return cond()
    except (IndexError, KeyError):  # the daemon has not installed its config yet
        return False
