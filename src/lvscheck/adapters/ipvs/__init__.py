"""The IPVS adapter: the table as values (:mod:`.table`) and the kernel over netlink (:mod:`.netlink`).

``from lvscheck.adapters.ipvs import NetlinkIPVS`` opens the kernel table (pyroute2
is imported then, not before); :class:`MemoryIPVS` is the same interface in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lvscheck.adapters.ipvs.table import (
    Dest,
    MemoryIPVS,
    Op,
    OpError,
    OpKind,
    Service,
    ServiceKey,
    Table,
    plan,
)

if TYPE_CHECKING:
    from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

__all__ = [
    "Dest",
    "MemoryIPVS",
    "NetlinkIPVS",
    "Op",
    "OpError",
    "OpKind",
    "Service",
    "ServiceKey",
    "Table",
    "plan",
]


def __getattr__(name: str) -> Any:
    if name == "NetlinkIPVS":
        from lvscheck.adapters.ipvs.netlink import NetlinkIPVS

        return NetlinkIPVS
    raise AttributeError(name)
