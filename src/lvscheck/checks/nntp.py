"""``nntp``: the news server greeting, optional AUTHINFO login, QUIT.

The dialogue (RFC 3977, RFC 4643): read the greeting, which must be ``200``
(posting allowed) or ``201`` (no posting); ``400``/``502`` mean the server
refuses service.  With ``login``/``passwd``: ``AUTHINFO USER`` -> ``381`` (or
``281``), ``AUTHINFO PASS`` -> ``281``.  Then ``QUIT`` -> ``205``.

ldirectord reads at most 64 bytes and is satisfied by any reply starting with
``2``, with no connect timeout; here the greeting code is exact, the line is
bounded (8 KiB) and one deadline covers it all.
"""

from __future__ import annotations

from lvscheck.checks._db import PASSWORD_OPTIONS
from lvscheck.checks._lines import MAX_LINE, line_login, parse_word, read_coded_reply
from lvscheck.errors import CheckFailed
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["NntpCheck"]


class NntpCheck(Check):
    name = "nntp"
    summary = "NNTP greeting 200/201, optional AUTHINFO USER/PASS, QUIT 205"
    default_port = 119
    options = (
        Option("login", "user for AUTHINFO USER (no login when unset; needs passwd)", None, parse_word),
        *PASSWORD_OPTIONS,
    )

    def setup(self) -> None:
        self.login, self.passwd = line_login(self.name, self.opts)
        self.keep_secret(self.passwd)

    async def probe(self, probe: Probe) -> Outcome:
        reader, writer = await probe.connect(limit=MAX_LINE)
        probe.phase = "waiting for the greeting"
        greeting = await read_coded_reply(reader, probe, "NNTP")
        if greeting.code in (400, 502):
            raise CheckFailed(f"NNTP server refuses service: {greeting.text}")
        if greeting.code not in (200, 201):
            raise CheckFailed(f"NNTP greeting is not 200 or 201: {greeting.text}")
        steps = [f"greeting {greeting.code} ({'posting' if greeting.code == 200 else 'no posting'})"]

        async def command(line: str, verb: str) -> int:
            writer.write(line.encode("utf-8") + b"\r\n")
            probe.phase = f"waiting for the reply to {verb}"
            reply = await read_coded_reply(reader, probe, "NNTP")
            if reply.code >= 400 and verb.startswith("AUTHINFO"):
                raise CheckFailed(f"login failed: {reply.text}")
            if reply.code >= 400:
                raise CheckFailed(f"unexpected reply to {verb}: {reply.text}")
            return reply.code

        if self.login is not None:
            code = await command(f"AUTHINFO USER {self.login}", "AUTHINFO USER")
            if code == 381:
                code = await command(f"AUTHINFO PASS {self.passwd}", "AUTHINFO PASS")
            if code != 281:
                raise CheckFailed(f"login failed: unexpected code {code} to AUTHINFO")
            steps.append(f"logged in as {self.login}")
        if await command("QUIT", "QUIT") != 205:
            raise CheckFailed("unexpected reply to QUIT (expected 205)")
        return Outcome.up(", ".join(steps))


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(NntpCheck)
