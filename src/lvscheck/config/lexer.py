"""Lines of an ldirectord.cf into global lines, virtual blocks and ``#lvscheck:`` lines.

This reproduces ``read_config``'s line handling exactly (ldirectord.md §2.1):

* a line matching ``virtual(6)? = ...`` at column 0 opens a block;
* inside a block, a comment line (first non-blank ``#``, any indentation) is
  skipped and does *not* end the block; otherwise everything from the first
  ``#`` is cut (even inside quotes), tabs become 4 spaces, and the line belongs
  to the block only if it then starts with at least 4 spaces followed by
  something; any other line (a blank line included) ends the block and is read
  again as a global line, so ``virtual=`` right after a block opens the next;
* global lines keep everything (trailing blanks, ``#``, ``\\r``); blank and
  comment lines are skipped.

Lines are split on ``\\n`` only, as Perl reads them: a ``\\r`` stays in the text.
"""

from __future__ import annotations

import re

__all__ = ["Block", "Directive", "Lexed", "LvscheckLine", "lex"]

# re.ASCII: Perl's \s on the bytes of the file is [ \t\n\r\f\v], not Unicode blanks.
_VIRTUAL = re.compile(r"virtual(6)?\s*=\s*(.*)", re.ASCII)
_COMMENT = re.compile(r"\s*#", re.ASCII)
_INBLOCK = re.compile(r" {4,}(.+)", re.ASCII)
_LVSCHECK = re.compile(r"\s*#\s*lvscheck:(.*)", re.ASCII)
_BLANK = re.compile(r"\s*", re.ASCII)


# Plain slotted classes, not dataclasses: these are internal, and creating dataclasses costs
# milliseconds at import time, which lvscheck-ldirectord pays on every cold start.


class Directive:
    """One directive line: ``text`` is what ldirectord matches (comment cut, indent removed)."""

    __slots__ = ("line", "raw", "text")

    def __init__(self, line: int, text: str, raw: str) -> None:
        self.line = line
        self.text = text
        self.raw = raw


class LvscheckLine:
    __slots__ = ("indented", "line", "text")

    def __init__(self, line: int, text: str, indented: bool) -> None:
        self.line = line
        self.text = text  # after "#lvscheck:"
        self.indented = indented


class Block:
    __slots__ = ("directives", "end", "header", "ipv6", "line", "lvscheck")

    def __init__(self, line: int, ipv6: bool, header: str, end: int) -> None:
        self.line = line  # the virtual= line
        self.ipv6 = ipv6
        self.header = header  # after "virtual(6)? = "
        self.end = end  # the line that ended the block (ldirectord reports duplicates there)
        self.directives: list[Directive] = []
        self.lvscheck: list[LvscheckLine] = []


class Lexed:
    __slots__ = ("blank_lines", "blocks", "crlf", "globals", "lvscheck")

    def __init__(self, crlf: bool = False) -> None:
        self.globals: list[Directive] = []
        self.blocks: list[Block] = []
        self.lvscheck: list[LvscheckLine] = []  # global (column-0) ones
        self.blank_lines: set[int] = set()
        self.crlf = crlf


def _indented(raw: str) -> bool:
    return raw.replace("\t", "    ").startswith("    ")


def lex(text: str) -> Lexed:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = Lexed(crlf=any(line.endswith("\r") for line in lines))
    i = 0
    n = len(lines)
    pending: str | None = None
    while True:
        if pending is None:
            if i >= n:
                break
            pending = lines[i]
            i += 1
        raw, pending = pending, None
        lineno = i
        m = _VIRTUAL.match(raw)
        if m:
            block = Block(line=lineno, ipv6=m[1] is not None, header=m[2], end=lineno)
            out.blocks.append(block)
            while i < n:
                inner = lines[i]
                i += 1
                block.end = i
                if _COMMENT.match(inner):
                    lv = _LVSCHECK.match(inner)
                    if lv:
                        entry = LvscheckLine(i, lv[1], _indented(inner))
                        (block.lvscheck if entry.indented else out.lvscheck).append(entry)
                    continue
                cut = inner.split("#", 1)[0].replace("\t", "    ")
                mm = _INBLOCK.match(cut)
                if not mm:
                    pending = inner
                    break
                block.directives.append(Directive(i, mm[1], inner))
            continue
        blank = _BLANK.fullmatch(raw) is not None
        if blank or _COMMENT.match(raw):
            if blank:
                out.blank_lines.add(lineno)
            lv = _LVSCHECK.match(raw)
            if lv:
                out.lvscheck.append(LvscheckLine(lineno, lv[1], _indented(raw)))
            continue
        out.globals.append(Directive(lineno, raw, raw))
    return out
