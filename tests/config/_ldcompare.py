"""Run scenarios through Debian's real ldirectord and ``lvscheck run --config``; compare the verdicts.

Shared by the guest tests test_ldirectord_verdicts_protocols.py and
test_ldirectord_verdicts_more.py.  One virtual per scenario, each with one real
(quiescent=yes: down is weight 0; a distinct weight per scenario, because ldirectord
checks a real once per round for every virtual with the same check identity, whatever
its login or passwd).  ldirectord checks serially and a stalled server costs it the
whole timeout every round, so the scenarios are dealt over a few ldirectord instances
(one file each, one kernel table) that run side by side.  ``lvscheck run`` runs on the
same files once ldirectord has checked every real once and stopped (so the two never
compete for the guest's one CPU, where a starved check would time out).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.peers.ldirectord import ipvs_weights, running_ldirectord

from lvscheck.config.prepare import read

__all__ = [
    "CHECK_STARTS",
    "TIMEOUT",
    "Scenario",
    "clear_table",
    "compare",
    "first_round_done",
    "header",
    "lvscheck_verdicts",
    "virtual_of",
]

BIN = Path(sys.executable).parent
#: In ldirectord's debug line as each check of a real starts ("Checking negotiate: real
#: server=...", and so for ping and external; also in "Already checked: real server=",
#: which the distinct weights keep away).
CHECK_STARTS = ": real server="
#: Both checkers' timeouts (checktimeout and negotiatetimeout), in seconds: a healthy check must
#: pass in a busy guest (CI runs two side by side), and every stall costs ldirectord this much.
TIMEOUT = 8


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # what the real is: a key of the caller's ports
    vport: str  # the virtual's port, with "/udp" for a UDP virtual
    lines: str  # the virtual's directives ({placeholders} filled by the caller)
    ldirectord: str  # its verdict, as observed: up or down
    differs: str = ""  # the documented difference when lvscheck's verdict is not ldirectord's


#: Scenario -> (the real's "address:port", the virtual's directives, placeholders filled).
Render = Callable[[Scenario], tuple[str, str]]


def header(extra: str = "") -> str:
    """The global section: both checkers' timeouts, checks every second, down is weight 0."""
    # readdquiescent: a real goes in at weight 0 at start, not up and then down; cleanstop=no: no
    # ipvsadm run per real at the end (fewer ipvsadm runs, slow in the guest): clear_table() instead
    return (
        f"checktimeout={TIMEOUT}\nnegotiatetimeout={TIMEOUT}\ncheckinterval=1\n"
        f"quiescent=yes\nreaddquiescent=yes\ncleanstop=no\n{extra}"
    )


def virtual_of(net: str, i: int, s: Scenario) -> str:
    """How ``lvscheck run --json`` names scenario ``i``'s virtual."""
    port, _, proto = s.vport.partition("/")
    return f"{net}.{i}:{port}" + (f"/{proto}" if proto else "")


def _write(cf: Path, net: str, lane: list[tuple[int, Scenario]], render: Render) -> dict[int, int]:
    """The lane's ldirectord.cf; returns each scenario's virtual= line number in it."""
    text = f'logfile="{cf.with_suffix(".log")}"\n' + header()
    lines: dict[int, int] = {}
    for i, s in lane:
        real, body = render(s)
        lines[i] = text.count("\n") + 1
        virtual = virtual_of(net, i, s).removesuffix("/udp")
        body = body.replace("\n", "\n\t")
        text += f"virtual={virtual}\n\treal={real} masq {i}\n\tscheduler=wrr\n\t{body}\n"
    cf.write_text(text)
    return lines


def first_round_done(outputs: list[Path], sizes: list[int], most: float) -> None:
    """Wait until each ldirectord has checked each of its reals once (its next round has begun).

    That is the verdict to compare: ``lvscheck run`` checks each real once too, and with
    failurecount=1 and readdquiescent=yes ldirectord's first check decides (a real starts
    at weight 0 and comes up on its first success).  ldirectord checks serially, and a
    loaded guest makes a round take many seconds, so rounds are counted in its debug
    output instead of timed.
    """
    start = time.monotonic()
    for output, size in zip(outputs, sizes, strict=True):
        while output.read_text(errors="replace").count(CHECK_STARTS) < size + 1:
            if time.monotonic() - start > most:
                tail = output.read_text(errors="replace")[-3000:]
                raise AssertionError(f"ldirectord did not check every real in {most} s:\n{tail}")
            time.sleep(0.25)


def clear_table() -> None:
    """Empty the guest's IPVS table (the files say cleanstop=no)."""
    subprocess.run(["ipvsadm", "-C"], check=True, timeout=30)


def lvscheck_verdicts(cf: Path) -> dict[str, dict[str, str]]:
    """``lvscheck run --config CF --json``: each virtual's row (state, reason, ...)."""
    return _done(_started(cf))


def _started(cf: Path) -> subprocess.Popen[str]:
    argv = [BIN / "lvscheck", "run", "--config", str(cf), "--json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(run: subprocess.Popen[str]) -> dict[str, dict[str, str]]:
    out, err = run.communicate(timeout=120)
    assert out, err
    return {row["virtual"]: row for row in json.loads(out)}


def compare(
    scenarios: tuple[Scenario, ...], net: str, render: Render, tmp_path: Path, lanes: int = 2
) -> list[tuple[str, str, str]]:
    """Run every scenario through both checkers; assert equal verdicts or the documented difference.

    Also asserts that ``lvscheck check-config`` warns at the virtual of every scenario
    with a documented difference.  Returns (scenario, ldirectord's verdict, lvscheck's).
    """
    numbered = list(enumerate(scenarios, start=1))
    dealt = [numbered[n::lanes] for n in range(lanes)]
    stem = net.replace(".", "-")
    files = [tmp_path / f"{stem}-{n}-{os.getpid()}.cf" for n in range(lanes)]  # a pid file per name
    at = [_write(cf, net, lane, render) for cf, lane in zip(files, dealt, strict=True)]
    with contextlib.ExitStack() as stack:
        stack.callback(clear_table)
        outputs = []
        for n, cf in enumerate(files):
            workdir = tmp_path / f"lane{n}"
            workdir.mkdir()
            outputs.append(stack.enter_context(running_ldirectord(cf, workdir, clear=n == 0)))
        first_round_done(outputs, [len(lane) for lane in dealt], most=400)
        table = ipvs_weights()
        said = [
            line for o in outputs for line in o.read_text(errors="replace").splitlines() if "DEBUG" in line
        ]
    rows: dict[str, dict[str, str]] = {}
    for verdicts in map(_done, [_started(cf) for cf in files]):
        rows |= verdicts
    wrong, report = [], []
    for i, s in numbered:
        virtual = virtual_of(net, i, s)
        weights = [w for (v, _), w in table.items() if v == virtual.removesuffix("/udp")]
        theirs = "up" if weights and weights[0] > 0 else "down"
        mine = rows[virtual]["state"]
        report.append((s.name, theirs, mine))
        if theirs != s.ldirectord:
            wrong.append(f"{s.name}: ldirectord {theirs}, expected {s.ldirectord}: {_about(said, virtual)}")
        elif (mine != theirs) != bool(s.differs):
            wrong.append(f"{s.name}: lvscheck {mine} ({rows[virtual]['reason']}), ldirectord {theirs}")
    assert not wrong, "\n".join(wrong)
    for cf, lane, lines in zip(files, dealt, at, strict=True):
        # what `lvscheck check-config` prints (the same call, without a process start in the slow guest)
        warnings = read(str(cf), syntax_only=True).warnings
        warned = {w.line for w in warnings}
        for i, s in lane:
            if s.differs:
                assert lines[i] in warned, f"{s.name}: check-config does not warn: {warnings}"
    return report


def _about(said: list[str], virtual: str) -> str:
    """ldirectord's last debug lines about ``virtual``'s real."""
    ip = virtual.split(":")[0]
    return " | ".join([line for line in said if ip + ":" in line][-4:])
