"""What an operator decided by hand: drained reals and reals in maintenance, kept on disk.

* **drain** ``VIRTUAL REAL``: the real keeps its kernel entry at weight 0
  (existing connections finish, no new ones); checks go on and are shown.
* **maintenance** ``REAL``: the real is out whatever its checks say, exactly
  as a file named ``IP:PORT`` (or ``IP``) in ldirectord's ``maintenancedir``.

Pure: two sets of strings and a JSON file written atomically (temporary file,
fsync, rename) so a crash never leaves half a file and a restart never
silently undrains.  The daemon matches the names against its reals.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from lvscheck.errors import ConfigError

__all__ = ["STATE_FILE", "Overrides"]

STATE_FILE = "overrides.json"


@dataclass(slots=True)
class Overrides:
    """Drained (virtual, real) pairs and reals in maintenance; ``path`` is where they are kept."""

    path: str | None = None
    drained: set[tuple[str, str]] = field(default_factory=set)
    maintenance: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, state_dir: str | None) -> Overrides:
        """The overrides kept in ``state_dir`` (none yet: empty); ConfigError for a broken file."""
        if state_dir is None:
            return cls()
        path = os.path.join(state_dir, STATE_FILE)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the drain/maintenance state: {exc}") from exc
        try:
            drained = {(str(v), str(r)) for v, r in data.get("drained", [])}
            maintenance = {str(r) for r in data.get("maintenance", [])}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a drain/maintenance state file: {exc}") from exc
        return cls(path, drained, maintenance)

    def save(self) -> None:
        """Write the state atomically; raises OSError (nothing changed on disk then)."""
        if self.path is None:
            return
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o750, exist_ok=True)
        data = {"drained": sorted(self.drained), "maintenance": sorted(self.maintenance)}
        fd, tmp = tempfile.mkstemp(prefix=".overrides.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def set_drain(self, virtual: str, real: str, on: bool) -> bool:
        """Drain or undrain; True if that changed anything (then call :meth:`save`)."""
        key = (virtual, real)
        if (key in self.drained) == on:
            return False
        if on:
            self.drained.add(key)
        else:
            self.drained.discard(key)
        return True

    def set_maintenance(self, real: str, on: bool) -> bool:
        """Put ``real`` (``IP:PORT`` or ``IP``) in or out of maintenance; True if that changed anything."""
        if (real in self.maintenance) == on:
            return False
        if on:
            self.maintenance.add(real)
        else:
            self.maintenance.discard(real)
        return True

    def drained_ids(self, virtual: str, reals: Iterable[tuple[str, str]]) -> set[str]:
        """The ids of the drained reals among ``reals`` (id, ``IP:PORT``) of ``virtual``."""
        if not self.drained:
            return set()  # the common case: ``reals`` is not even iterated
        return {rid for rid, real in reals if (virtual, real) in self.drained}

    def is_drained(self, virtual: str, real: str) -> bool:
        return bool(self.drained) and (virtual, real) in self.drained
