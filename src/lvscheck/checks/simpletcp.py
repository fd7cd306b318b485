"""``simpletcp``: send ``request``, search ``receive`` in the reply, line by line.

The dialogue, as ldirectord's: connect; if ``request`` is set, send it with
every literal ``\\n`` (backslash, n) turned into a newline and nothing added,
then shut down the write side (the server sees end of file); read the reply
line by line and stop at the first line ``receive`` matches (up).  End of file,
or ``maxreply`` bytes without a match, is down.  A final line without a
newline is searched too.

Lines are searched one at a time, as ldirectord does, so ``^`` anchors at the
start of every line.  The read is bounded by ``maxreply`` in total.
"""

from __future__ import annotations

import contextlib
import re

from lvscheck.checks._lines import parse_size, quote_shown, size_text
from lvscheck.errors import OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_bool, parse_regex
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["SimpleTcpCheck"]


class SimpleTcpCheck(Check):
    name = "simpletcp"
    summary = "send request (literal \\n = newline), search receive in the reply lines"
    options = (
        Option("request", "bytes to send; a literal \\n is a newline (nothing sent when unset)"),
        Option("receive", "regular expression searched in each reply line (required)", None, parse_regex),
        Option("maxreply", "read at most this much of the reply", "64k", parse_size),
        Option(
            "shutdown",
            "shut down the write side after sending request, as ldirectord (yes/no)",
            "yes",
            parse_bool,
        ),
    )

    def setup(self) -> None:
        receive: re.Pattern[bytes] | None = self.opts["receive"]
        if receive is None:
            raise OptionError(
                "check type 'simpletcp' needs receive= (a regular expression the reply must contain)"
            )
        self.receive = receive
        request: str | None = self.opts["request"]
        self.request = request.replace("\\n", "\n").encode("utf-8", "surrogateescape") if request else b""
        self.maxreply: int = self.opts["maxreply"]
        self.shutdown: bool = self.opts["shutdown"]

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect()
        if self.request:
            writer.write(self.request)
            if self.shutdown and writer.can_write_eof():
                with contextlib.suppress(OSError):  # the server may have closed already: read what it sent
                    writer.write_eof()
        probe.phase = "waiting for the reply"
        pattern = self.receive.pattern.decode("utf-8", "replace")
        line = bytearray()
        total = 0
        while total < self.maxreply:
            chunk = await reader.read(min(65536, self.maxreply - total))
            if not chunk:
                break
            total += len(chunk)
            start = 0
            while (newline := chunk.find(b"\n", start)) >= 0:
                line += chunk[start : newline + 1]
                if self.receive.search(line) is not None:
                    return Outcome.up(f"{pattern!r} found: {quote_shown(bytes(line))}", bytes=total)
                line.clear()
                start = newline + 1
            line += chunk[start:]
        if line and self.receive.search(line) is not None:  # the last line, without a newline
            return Outcome.up(f"{pattern!r} found: {quote_shown(bytes(line))}", bytes=total)
        if total >= self.maxreply:
            return Outcome.down(f"{pattern!r} not found in the first {size_text(self.maxreply)} of the reply")
        if total == 0:
            return Outcome.down("connection closed by the server without a reply")
        return Outcome.down(f"{pattern!r} not found in the reply ({total} bytes)", bytes=total)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(SimpleTcpCheck)
