"""``external``: run a command as ldirectord's ``checktype=external`` does.

The command gets exactly four arguments, ``VIP VPORT RIP RPORT`` (VIP is the
firewall mark for fwmark services; IPv6 addresses in brackets; 0 for a missing
port), no shell, stdin from /dev/null.  Exit status 0 means up, anything else
down.  At the deadline (``checktimeout``, as in ldirectord) the command is killed.
The reason of a failure is the exit status and the last line the command wrote
on stderr (at most 4 KiB of it are read; stdout is discarded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from lvscheck.checktype import Check
from lvscheck.engine.probe import Probe
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugins import CheckRegistry

__all__ = ["ExternalCheck"]

_STDERR_MAX = 4096


class ExternalCheck(Check):
    name = "external"
    summary = "run a command with VIP VPORT RIP RPORT; exit 0 means up (ldirectord checktype=external)"
    default_port = 0
    timeout_option = "checktimeout"
    options = (
        Option("checkcommand", "the executable to run (no shell, no arguments of its own)"),
        Option("vip", "argument 1: the virtual address, or the firewall mark", "0"),
        Option("vport", "argument 2: the virtual port (0 for fwmark services)", "0"),
    )

    def setup(self) -> None:
        command = self.opts["checkcommand"]
        if not command:
            raise OptionError("check type 'external' needs checkcommand=/path/to/executable")
        self.command: str = command
        target = self.spec.target
        rip = f"[{target.host}]" if ":" in target.host else target.host
        self.argv = (command, self.opts["vip"], self.opts["vport"], rip, str(target.port or 0))

    def describe(self) -> str:
        return f"external {' '.join(self.argv)}"

    async def probe(self, probe: Probe) -> Outcome:
        probe.phase = f"starting {self.command}"
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise CheckFailed(f"cannot run {self.command}: {exc.strerror or exc}") from None
        try:
            probe.phase = f"waiting for {os.path.basename(self.command)} to exit"
            assert proc.stderr is not None
            err = await proc.stderr.read(_STDERR_MAX)
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # the deadline: kill it and everything it started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            # close the pipes now (a chatty or killed command may leave them open); the
            # child watcher still reaps the process
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
        if code == 0:
            return Outcome.up(f"{os.path.basename(self.command)} exited 0")
        lines = err.decode("utf-8", "replace").strip().splitlines()
        said = f": {lines[-1].strip()[:200]}" if lines else ""
        how = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        return Outcome.down(f"{os.path.basename(self.command)} {how}{said}")


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(ExternalCheck)
