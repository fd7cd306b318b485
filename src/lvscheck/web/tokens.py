"""Who may act over HTTP: a file of ``NAME TOKEN`` lines (``--http-tokens``).

Without that file the HTTP listener is read-only.  Tokens are compared in constant
time and never logged; the NAME is what the log says did the action.
"""

from __future__ import annotations

import hmac
import os
import stat

from lvscheck.errors import ConfigError

__all__ = ["Tokens"]


class Tokens:
    def __init__(self, pairs: dict[str, str] | None = None) -> None:
        self._by_name = dict(pairs or {})

    def __bool__(self) -> bool:
        return bool(self._by_name)

    @classmethod
    def load(cls, path: str | None) -> Tokens:
        """Read ``path``; ConfigError (file:line) for a bad line or a file others can read."""
        if not path:
            return cls()
        try:
            st = os.stat(path)
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the HTTP token file: {exc.strerror}") from exc
        if st.st_mode & stat.S_IROTH:
            raise ConfigError(f"{path}: the HTTP token file is readable by everyone: chmod o-r {path}")
        pairs: dict[str, str] = {}
        for n, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            name, _, token = text.partition(" ")
            token = token.strip()
            if len(token) < 16:
                raise ConfigError(f"{path}:{n}: expected 'NAME TOKEN' with a token of 16 characters or more")
            pairs[name] = token
        return cls(pairs)

    def who(self, token: str) -> str | None:
        """The name whose token this is, or None."""
        found = None
        for name, good in self._by_name.items():
            if hmac.compare_digest(good.encode(), token.encode()):
                found = name
        return found
