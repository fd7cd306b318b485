"""Just enough RESP (the Redis protocol) for a health check: send a command, read one reply.

This module plays the part a driver (aiomysql, ldap3, ...) plays in other
plugins: :mod:`lvscheck_redis` imports it inside ``RedisCheck.probe``, so that
``lvscheck checks`` or a check of another type never pays for it.

Commands go out as RESP arrays of bulk strings (``*2\\r\\n$4\\r\\nAUTH\\r\\n...``),
so a password may hold spaces or quotes.  Replies are parsed with a bound on
every line and bulk string: a real server that answers with garbage or an
endless reply is judged down, it cannot make the check buffer without end.
"""

from __future__ import annotations

import asyncio

from lvscheck import CheckFailed

__all__ = ["MAX_BULK", "ErrorReply", "Reply", "command", "encode_command", "parse_info", "read_reply"]

#: Largest bulk string we read (``INFO replication`` is a few hundred bytes).
MAX_BULK = 1024 * 1024
#: Deepest array nesting we follow.
MAX_DEPTH = 4

Reply = str | int | bytes | list["Reply"] | None


class ErrorReply(Exception):
    """The server answered ``-ERR ...``: a valid reply that says no."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def encode_command(*words: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise CheckFailed("not a Redis reply: a line longer than 64 KiB without CRLF") from None
    return line[:-2]


async def read_reply(reader: asyncio.StreamReader, depth: int = 0) -> Reply:
    """Read one reply; raise :class:`ErrorReply` for ``-...`` and CheckFailed for garbage.

    A connection closed mid-reply raises :class:`asyncio.IncompleteReadError`,
    which the engine reports as "connection closed by the server <phase>".
    """
    line = await _line(reader)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        raise ErrorReply(rest.decode("utf-8", "replace"))
    if kind == b":" and _is_int(rest):
        return int(rest)
    if kind == b"$" and _is_int(rest):
        size = int(rest)
        if size < 0:
            return None
        if size > MAX_BULK:
            raise CheckFailed(f"Redis reply of {size} bytes is larger than the {MAX_BULK} bytes we read")
        data = await reader.readexactly(size + 2)
        return data[:-2]
    if kind == b"*" and _is_int(rest) and depth < MAX_DEPTH:
        count = int(rest)
        if count < 0:
            return None
        if count > 1024:
            raise CheckFailed(f"Redis reply array of {count} items is larger than expected")
        return [await read_reply(reader, depth + 1) for _ in range(count)]
    raise CheckFailed(f"not a Redis reply: {line[:60].decode('ascii', 'replace')!r}")


def _is_int(text: bytes) -> bool:
    return text.removeprefix(b"-").isdigit()


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *words: str | bytes) -> Reply:
    """Send one command and read its reply."""
    writer.write(encode_command(*words))
    await writer.drain()
    return await read_reply(reader)


def parse_info(data: bytes) -> dict[str, str]:
    """``INFO`` text (``key:value`` lines, ``# Section`` headings) into a dict."""
    fields: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        key, sep, value = raw.partition(":")
        if sep and not raw.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields
