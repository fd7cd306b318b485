"""Operator actions on a running daemon: drain, undrain, maintenance on/off.

Shared by the control socket (``lvscheck drain``) and the HTTP listener (only
with a token).  A request is a small JSON object::

    {"action": "drain" | "undrain", "virtual": "10.0.0.1:80", "real": "10.0.1.5:80"}
    {"action": "maintenance", "on": true, "real": "10.0.1.5:80" | "10.0.1.5"}

Names are matched against the running config (a virtual by its name as the status
shows it, or ``TCP 10.0.0.1:80``; a real by ``IP:PORT``, or by ``IP`` when one real of
the virtual has it), stored canonical, written to the state file, and only then
applied.  Every action is logged with who asked (an event ``operator``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.actions import list_maintenancedir, maintenance_matches

if TYPE_CHECKING:
    from lvscheck.config.pools import Pool
    from lvscheck.daemon.director import Director

__all__ = ["ActionError", "perform"]

log = logging.getLogger("lvscheck.daemon")


class ActionError(Exception):
    """A request the daemon refuses; the message is for the operator."""


def _find_pool(director: Director, virtual: str) -> Pool:
    want = virtual.strip()
    for pool in director.layout.pools.values():
        key = str(pool.service.key)
        if want in (pool.name, key, key.split(" ", 1)[-1], pool.key):
            return pool
    names = ", ".join(sorted(p.name for p in director.layout.pools.values())[:10])
    raise ActionError(f"no virtual {virtual!r} in {director.config_path} (virtuals: {names})")


def _find_real(director: Director, pool: Pool, real: str) -> str:
    want = real.strip()
    matches = []
    for sid in pool.slots:
        dest = director.reals[sid].slot.dest
        text = str(dest)
        if want == text:
            return text
        if want in (dest.addr, f"[{dest.addr}]"):
            matches.append(text)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ActionError(f"{real!r} names {len(matches)} reals of {pool.name}: say IP:PORT")
    raise ActionError(f"no real {real!r} in virtual {pool.name}")


def perform(director: Director, request: dict[str, Any], who: str) -> dict[str, Any]:
    """Carry out ``request`` for ``who``; raises ActionError (nothing changed then)."""
    action = request.get("action")
    ov = director.overrides
    real = str(request.get("real") or "")
    if not real:
        raise ActionError("which real? (REAL is IP:PORT)")
    if action in ("drain", "undrain"):
        pool = _find_pool(director, str(request.get("virtual") or ""))
        canonical = _find_real(director, pool, real)
        on = action == "drain"
        changed = ov.set_drain(pool.name, canonical, on)
        what: dict[str, Any] = {"virtual": pool.name, "real": canonical}
    elif action == "maintenance":
        on = bool(request.get("on"))
        canonical = real.strip()
        dests = {sid: rs.slot.dest for sid, rs in director.reals.items()}
        if on and not maintenance_matches(dests, {canonical}):
            raise ActionError(f"no real {real!r} in {director.config_path} (say IP:PORT or IP)")
        changed = ov.set_maintenance(canonical, on)
        what = {"real": canonical, "on": on}
    else:
        raise ActionError(f"unknown action {action!r}: drain, undrain or maintenance")
    if changed:
        try:
            ov.save()
        except OSError as exc:
            # Put it back: what the daemon does must be what a restart will find.
            if action == "maintenance":
                ov.set_maintenance(canonical, not on)
            else:
                ov.set_drain(pool.name, canonical, not on)
            raise ActionError(f"cannot keep the state in {ov.path}: {exc}") from exc
    director.events.emit("operator", who=who, action=action, changed=changed, **what)
    if action == "maintenance":
        directory = director.config.settings.maintenancedir if director.config is not None else None
        director.apply_maintenance(list_maintenancedir(directory) | ov.maintenance)
    else:
        director.view.mark((pool.key,))
    return {"ok": True, "changed": changed, "action": action, **what}
