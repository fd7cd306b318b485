"""One printable line from a server's words: the single place control bytes are escaped.

Every reason passes through :func:`one_line` where the engine builds a
:class:`~lvscheck.model.Result` (engine/runner.py), so what a server sent
(NUL, ESC, BEL, a bare CR that rewinds a terminal line, a newline that forges a
second log line) reaches reasons, the log, ``status`` and Nagios output as
visible escapes: ``\\x1b``, ``\\n``.
"""

from __future__ import annotations

__all__ = ["one_line"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with every non-printable character written as an escape (``\\x07``, ``\\u2028``)."""
    if text.isprintable():  # the common case: one C-level scan, no copy
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
