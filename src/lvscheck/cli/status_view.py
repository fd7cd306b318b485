"""The text of ``lvscheck status``, and ``--watch``: the same table redrawn in place.

Colours (state red/green/yellow) only when stdout is a terminal and ``NO_COLOR``
is unset; a closed pipe (``| head``) ends the command quietly.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["render", "watch"]

_RED, _GREEN, _YELLOW, _BOLD, _DIM, _RESET = (
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[0m",
)
_HOME_CLEAR = "\x1b[H\x1b[2J"


def _paint(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour else text


def _state_colour(r: dict[str, Any]) -> str:
    if r.get("maintenance") or r.get("drained"):
        return _YELLOW
    return {"up": _GREEN, "down": _RED}.get(r["state"], _YELLOW)


def render(answer: dict[str, Any], colour: bool = False, now: float | None = None) -> str:
    """The status table as text (what ``lvscheck status`` prints)."""
    now = time.time() if now is None else now
    lag = answer["start_lag"]
    out = [
        f"lvscheck daemon pid {answer['pid']} {answer['state']}, config {answer['config']}, "
        f"ipvs {answer['ipvs']}, {answer['checks']} checks, start lag p50 {lag['p50'] * 1000:.1f} ms "
        f"p99 {lag['p99'] * 1000:.1f} ms, IPVS write errors {answer['ipvs_write_errors']}"
    ]
    shadow = bool(answer.get("shadow"))  # daemon --shadow (lvscheck.daemon.shadow)
    if shadow:
        out.append(
            f"shadow mode: {answer['shadow_disagreements']} reals disagree with ldirectord now, "
            f"{answer['shadow_disagreements_total']} disagreements since start"
        )
    last_reload = answer.get("last_reload")
    if last_reload and not last_reload.get("ok"):
        problems = "; ".join(last_reload.get("problems") or [])
        out.append(_paint(f"last reload REFUSED (the old config runs): {problems}", _RED, colour))
    for v in answer["virtuals"]:
        flags = []
        if not v["in_kernel"]:
            flags.append("NOT IN KERNEL")
        if v["guarded"]:
            flags.append("GUARDED")
        if v["fallback_active"]:
            flags.append(f"fallback {v['fallback']} active")
        flag_text = _paint("  " + ", ".join(flags), _RED, colour) if flags else ""
        out.append("")
        out.append(_paint(f"{v['virtual']} ({v['service']} {v['scheduler']})", _BOLD, colour) + flag_text)
        kernel = f"{'ldirectord':>10} {'lvscheck':>8}" if shadow else f"{'kernel':>6}"
        out.append(f"  {'real':<24} {'state':<8} {'weight':>6} {kernel} {'last':>7} {'latency':>9}  reason")
        for r in v["reals"]:
            kw = "-" if r["kernel_weight"] is None else str(r["kernel_weight"])
            last = "-" if r["last_check"] is None else f"{now - r['last_check']:.1f}s"
            lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}ms"
            state = r["state"] + (f"({r['streak']})" if r["streak"] else "")
            reason = r["reason"] or (f"fixed {r['fixed']}" if r["fixed"] else "")
            if r.get("maintenance"):
                reason = f"MAINTENANCE ({r['maintenance']}); last check: {reason}"
            elif r.get("drained"):
                reason = f"DRAINED; last check: {reason}"
            if shared := r.get("shared_probe"):
                reason = f"(probe shared with {', '.join(shared['with'])}) {reason}"
            if ramp := r.get("slowstart"):
                reason = (
                    f"SLOW START {ramp['weight']}/{ramp['target']} (step {ramp['step']}/{ramp['steps']}, "
                    f"{ramp['ends_in']:g} s left); {reason}"
                )
            if shadow:
                kw, reason = _shadow_cells(r, kw, reason, now)
            weight = r["configured_weight"]
            state_cell = _paint(f"{state:<8}", _state_colour(r), colour)
            out.append(f"  {r['real']:<24} {state_cell} {weight:>6} {kw:>6} {last:>7} {lat:>9}  {reason}")
    via = answer.get("via_services") or []
    if via:
        out.append("")
        out.append(
            _paint("checks through the VIP (via=vip): private services, no client traffic", _BOLD, colour)
        )
        for s in via:
            where = "" if s["in_kernel"] else _paint("  NOT IN KERNEL", _RED, colour)
            out.append(f"  {s['service']:<24} -> {s['real']} {s['forwarding']}{where}")
    return "\n".join(out) + "\n"


def _shadow_cells(r: dict[str, Any], kernel: str, reason: str, now: float) -> tuple[str, str]:
    """``--shadow``: the kernel's weight (ldirectord's) beside lvscheck's, and DIFFERS."""
    mine = "-" if r["lvscheck_weight"] is None else str(r["lvscheck_weight"])
    if r["disagree_since"] is not None:
        reason = f"DIFFERS for {now - r['disagree_since']:.0f}s; {reason}"
    return f"{kernel:>10} {mine:>8}", reason


def _colour_wanted(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def watch(fetch: Any, every: float, stream: TextIO | None = None, frames: int = 0) -> int:
    """Redraw ``render(fetch())`` every ``every`` s until interrupted (or ``frames`` frames)."""
    out = stream or sys.stdout
    tty = out.isatty()
    colour = _colour_wanted(out)
    n = 0
    try:
        while True:
            try:
                text = render(fetch(), colour)
            except (OSError, ValueError) as exc:
                text = f"no daemon answers: {exc}\n"
            stamp = time.strftime("%H:%M:%S")
            header = f"every {every:g}s, {stamp} (Ctrl-C ends)\n"
            if tty:
                out.write(_HOME_CLEAR + _paint(header, _DIM, colour) + text)
            else:
                out.write(("\n" if n else "") + header + text)
            out.flush()
            n += 1
            if frames and n >= frames:
                return 0
            time.sleep(every)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # the reader went away (| head): say nothing, and keep Python from complaining at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        return 0
