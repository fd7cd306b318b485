"""Hostile line-protocol servers and process helpers for the mail, FTP, NNTP and simpletcp tests.

Hand-written on purpose: no real server stalls, babbles or sends an endless line
on demand.  Each factory returns a handler for :func:`tests.peers.faults.serve`.
``pause_tree`` / ``resume_tree`` SIGSTOP/SIGCONT a real server and all its
children, the honest way to make a real server stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.peers.faults import Handler

__all__ = [
    "endless_line",
    "endless_lines",
    "open_fds",
    "paused",
    "script",
    "stall",
]


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then say nothing."""
    await asyncio.sleep(3600)


def script(*steps: bytes | None, then: str = "stall") -> Handler:
    """Send ``steps[0]``, then for each following step read one line and send it.

    A ``None`` step reads a line and sends nothing.  After the last step the server
    stalls (``then="stall"``) or closes (``then="close"``).
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, *rest = steps
        if first:
            writer.write(first)
            await writer.drain()
        for step in rest:
            await reader.readline()
            if step:
                writer.write(step)
                await writer.drain()
        if then == "close":
            # A clean FIN, and keep reading: closing with unread input would make the
            # kernel send a RST instead (and the framework aborts with one at the end).
            writer.write_eof()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    while await reader.read(65536):
                        pass
            return
        await asyncio.sleep(3600)

    return handler


def endless_line(prefix: bytes = b"", after: Sequence[bytes] = ()) -> Handler:
    """Send ``prefix`` (after answering one line per ``after`` item), then bytes without a newline forever."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i, item in enumerate(after):
            if i:
                await reader.readline()
            writer.write(item)
        if after:
            await reader.readline()
        writer.write(prefix)
        while True:
            writer.write(b"z" * 4096)
            await writer.drain()

    return handler


def endless_lines(line: bytes, first: bytes = b"", after: Sequence[bytes] = ()) -> Handler:
    """Like :func:`endless_line`, but well-formed lines (``line``) forever, never the last one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i, item in enumerate(after):
            if i:
                await reader.readline()
            writer.write(item)
        if after:
            await reader.readline()
        writer.write(first)
        while True:
            writer.write(line * 64)
            await writer.drain()

    return handler


def _tree(pid: int) -> list[int]:
    found = [pid]
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
            found += kids
            todo += kids
    return found


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` and its descendants for the block (the kernel still completes TCP handshakes)."""
    pids = _tree(pid)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
