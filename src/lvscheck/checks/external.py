"""``external``: run a command as ldirectord's ``checktype=external`` does.

The command gets exactly four arguments, ``VIP VPORT RIP RPORT`` (VIP is the
firewall mark for fwmark services; IPv6 addresses in brackets; 0 for a missing
port), no shell, stdin from /dev/null.  Exit status 0 means up, anything else
down.  At the deadline (``checktimeout``, as in ldirectord) the command is killed.
The reason of a failure is the exit status and the last line the command wrote
on stderr (at most 4 KiB of it are kept; stdout is discarded).

``exitcodes=`` reads a weight from the exit status instead (docs/checks/external.md):

* ``misc-dynamic`` (keepalived ``MISC_CHECK`` with ``misc_dynamic``): 0 up at the
  configured weight, 1 down, 2+N up at weight N (clamped to ``minweight..maxweight``);
* ``nagios`` (the Nagios plugin API): 0 OK up, 1 WARNING degraded at
  ``warningweight``, 2 CRITICAL down, 3 UNKNOWN down; the first line of stdout (less
  its performance data) is the reason.

A command killed by a signal, or at the deadline, is down whatever the convention:
its status is never read as a weight (in keepalived #2720 a misc_dynamic script
killed at its timeout made the real's weight grow without bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_choice, parse_weight
from lvscheck.plugin.probe import Probe
from lvscheck.plugin.registry import CheckRegistry

__all__ = ["ExternalCheck"]

_STDERR_MAX = 4096
_STDOUT_MAX = 4096
_NAGIOS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _parse_share(text: str) -> tuple[str, int]:
    """``3`` (a weight) or ``50%`` (of the configured weight)."""
    text = text.strip()
    if text.endswith("%") and text[:-1].isdigit() and int(text[:-1]) <= 100:
        return "percent", int(text[:-1])
    try:
        return "weight", parse_weight(text)
    except ValueError:
        raise ValueError(
            "expected a weight such as 2, or a share of the configured weight such as 50%"
        ) from None


class ExternalCheck(Check):
    name = "external"
    summary = "run a command with VIP VPORT RIP RPORT; exit 0 means up (ldirectord checktype=external)"
    default_port = 0
    timeout_option = "checktimeout"
    options = (
        Option("checkcommand", "the executable to run (no shell, no arguments of its own)"),
        Option("vip", "argument 1: the virtual address, or the firewall mark", "0"),
        Option("vport", "argument 2: the virtual port (0 for fwmark services)", "0"),
        Option(
            "exitcodes",
            "how the exit status is read: ldirectord (0 up), misc-dynamic (2+N weight N) or nagios",
            "ldirectord",
            parse_choice("ldirectord", "misc-dynamic", "nagios"),
        ),
        Option(
            "warningweight", "nagios: weight on WARNING (exit 1), N or N% of the weight", "50%", _parse_share
        ),
        Option("minweight", "misc-dynamic/nagios: lowest weight taken from the command", "0", parse_weight),
        Option(
            "maxweight",
            "misc-dynamic/nagios: highest weight taken from the command (default: the configured weight)",
            None,
            parse_weight,
        ),
    )

    def setup(self) -> None:
        command = self.opts["checkcommand"]
        if not command:
            raise OptionError("check type 'external' needs checkcommand=/path/to/executable")
        self.command: str = command
        target = self.spec.target
        rip = f"[{target.host}]" if ":" in target.host else target.host
        self.argv = (command, self.opts["vip"], self.opts["vport"], rip, str(target.port or 0))
        self.exitcodes: str = self.opts["exitcodes"]
        self.minweight: int = self.opts["minweight"]
        self.maxweight: int = self.opts["maxweight"] if self.opts["maxweight"] is not None else target.weight
        if self.minweight > self.maxweight:
            raise OptionError(f"minweight={self.minweight} is above maxweight={self.maxweight}")
        kind, number = self.opts["warningweight"]
        warning = (target.weight * number + 50) // 100 if kind == "percent" else number
        self.warningweight = max(self.minweight, min(self.maxweight, warning))

    def describe(self) -> str:
        return f"external {' '.join(self.argv)}"

    async def probe(self, probe: Probe) -> Outcome:
        probe.phase = f"starting {self.command}"
        nagios = self.exitcodes == "nagios"
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if nagios else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise CheckFailed(f"cannot run {self.command}: {exc.strerror or exc}") from None
        out = b""
        try:
            probe.phase = f"waiting for {os.path.basename(self.command)} to exit"
            assert proc.stderr is not None
            if proc.stdout is not None:
                out, err = await asyncio.gather(proc.stdout.read(_STDOUT_MAX), proc.stderr.read(_STDERR_MAX))
            else:
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
        name = os.path.basename(self.command)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        said = f": {lines[-1].strip()[:200]}" if lines else ""
        if code < 0:  # killed: never a weight, whatever the convention
            return Outcome.down(f"{name} killed by signal {-code}{said}")
        if self.exitcodes == "misc-dynamic":
            return self._misc_dynamic(name, code, said)
        if nagios:
            return self._nagios(name, code, out, said)
        if code == 0:
            return Outcome.up(f"{name} exited 0")
        return Outcome.down(f"{name} exited {code}{said}")

    def _misc_dynamic(self, name: str, code: int, said: str) -> Outcome:
        """keepalived's misc_dynamic: 0 up, 1 down, 2+N weight N."""
        if code == 0:
            return Outcome.up(f"{name} exited 0")
        if code == 1:
            return Outcome.down(f"{name} exited 1{said}")
        asked = code - 2
        weight = max(self.minweight, min(self.maxweight, asked))
        clamp = f", {asked} clamped to {self.minweight}..{self.maxweight}" if weight != asked else ""
        reason = f"{name} exited {code}: weight {weight} (misc-dynamic 2+N{clamp})"
        if weight < self.spec.target.weight:
            return Outcome.degraded(reason, weight, exit=code)
        return Outcome.up(reason, weight, exit=code)

    def _nagios(self, name: str, code: int, out: bytes, said: str) -> Outcome:
        """The Nagios plugin API: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; stdout's first line says why."""
        first = out.decode("utf-8", "replace").strip().partition("\n")[0]
        text = first.partition("|")[0].strip()[:200]  # performance data after | is not a reason
        status = _NAGIOS.get(code)
        if status is None:
            return Outcome.down(f"{name} exited {code}, not a Nagios status (0..3){said}")
        reason = f"{name} {status}" + (f": {text}" if text else said)
        if code == 0:
            return Outcome.up(reason)
        if code == 1:
            return Outcome.degraded(f"{reason} (weight {self.warningweight})", self.warningweight)
        return Outcome.down(reason)


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(ExternalCheck)
