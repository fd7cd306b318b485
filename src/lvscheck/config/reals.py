"""``real=``/``real6=`` lines: addresses, ranges, ports and flags, as ``add_real_server`` reads them.

Linear in the number of reals and in the length of each line: a range is expanded
once, duplicates are found with one dictionary, and every regex that searches a
line starts only where a word or a run of blanks starts (see ``_WORD_START``).
"""

from __future__ import annotations

import re
import socket

from lvscheck.config.model import RealServer
from lvscheck.config.raw import RawVirtual
from lvscheck.config.report import Report
from lvscheck.config.values import read_number, resolve_host, resolve_port

__all__ = ["MAX_RANGE", "MAX_REALS", "Budget", "read_reals"]

#: lvscheck refuses a ``real=A->B`` range with more addresses than this (a /16).
MAX_RANGE = 65536
#: ... and a file with more reals than this in all (four full ranges).
MAX_REALS = 4 * MAX_RANGE

# (?<!...) before a repeated class: a search tries a word (or a run of blanks) once, from
# its start, instead of once from each of its characters, which is quadratic in its length.
# The leftmost match is the same: a match from inside a run is also one from its start.
_NAME = r"(?<![A-Za-z0-9.-])(?:\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+)"
_ADDR = rf"(?:{_NAME}|\[[0-9A-fa-f:]+\])"
_REAL = re.compile(rf"({_ADDR})(->({_ADDR}))?(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)", re.ASCII)
_BRACKET_RUN = re.compile(r"[0-9A-fa-f:]*", re.ASCII)
_FORWARDING = re.compile(r"(?<!\w)(\w+)(.*)", re.ASCII)
_WEIGHT = re.compile(r"(?<!\s)\s+(\d+)(.*)", re.ASCII)
_REQREC = re.compile(r'(?<!\s)\s+"(.*)"[, ]\s*"(.*)"(.*)', re.ASCII)
_LOWER = re.compile(r"(?<!\s)\s+l:(\d+)(.*)", re.ASCII)
_UPPER = re.compile(r"(?<!\s)\s+u:(\d+)(.*)", re.ASCII)
_SHAPE = 'expected ADDRESS[->ADDRESS][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]'


class _Flags:
    """What follows the address: ``gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]``."""

    __slots__ = ("forwarding", "lower", "receive", "request", "slash_quirk", "upper", "weight")

    def __init__(self, forwarding: str) -> None:
        self.forwarding = forwarding
        self.weight = 1
        self.request: str | None = None
        self.receive: str | None = None
        self.lower: int | None = None
        self.upper: int | None = None
        self.slash_quirk = False

    def real(self, host: str, port: int, ipv6: bool, line: int, service: str) -> RealServer:
        request, receive = self.request, self.receive
        if self.slash_quirk:
            # ldirectord keeps the real's request but drops its receive; for HTTP the URL
            # is then built from the virtual's request, so nothing of the override is left.
            receive = None
            if service in ("http", "https", "http_proxy"):
                request = None
        return RealServer(
            host, port, self.forwarding, self.weight, request, receive, self.lower, self.upper, ipv6, line
        )


class Budget:
    """How many more reals the file may have (:data:`MAX_REALS`); shared by its virtuals."""

    __slots__ = ("exceeded", "left")

    def __init__(self) -> None:
        self.left = MAX_REALS
        self.exceeded = False


def read_reals(rv: RawVirtual, service: str, budget: Budget, report: Report) -> list[RealServer] | None:
    """Every ``real=`` of the block, ranges expanded; ``None`` if any has an error."""
    out: list[RealServer] = []
    ok = True
    key = "real6" if rv.block.ipv6 else "real"
    for text, line in rv.reals:
        limit = 0 if budget.exceeded else budget.left
        reals = _real_line(text, line, key, rv.block.ipv6, service, limit, report)
        if reals is not None and len(reals) > limit:
            if not budget.exceeded:
                report.error(
                    line,
                    key,
                    f"more than {MAX_REALS} reals in one file: lvscheck takes at most {MAX_REALS} "
                    f"({MAX_REALS // MAX_RANGE} ranges of {MAX_RANGE}); split the file",
                )
            budget.exceeded = True
            reals = None
        if reals is None:
            ok = False
            continue
        budget.left -= len(reals)
        out.extend(reals)
    _warn_duplicates(out, key, report)
    return out if ok else None


def _real_line(
    text: str, line: int, key: str, ipv6: bool, service: str, limit: int, report: Report
) -> list[RealServer] | None:
    """The reals of one line; a range stops after ``limit`` + 1 addresses (too many anyway)."""
    m = _search_real(text)
    if not m:
        report.error(line, key, f"{text.strip()!r} is not valid: {_SHAPE}")
        return None
    if text[: m.start()].strip():
        report.warn(line, key, f"ldirectord ignores {text[: m.start()].strip()!r} before the address")
    first, why = resolve_host(m[1], ipv6)
    if first is None:
        report.error(line, key, why)
        return None
    port = 0
    if m[5] is not None:
        resolved, why = resolve_port(m[5], ())
        if resolved is None:
            report.error(line, key, f"real server port: {why}")
            return None
        port = resolved
    flags = _flags(m[6], line, key, report)
    if flags is None:
        return None
    if m[3] is None:
        return [flags.real(first, port, ipv6, line, service)]
    if ipv6:
        report.error(line, key, "address ranges are IPv4 only (ldirectord: not supported yet for IPv6)")
        return None
    last, why = resolve_host(m[3], ipv6)
    if last is None:
        report.error(line, key, f"range end: {why}")
        return None
    addresses = _range(first, last, line, key, limit, report)
    if addresses is None:
        return None
    return [flags.real(a, port, ipv6, line, service) for a in addresses]


def _search_real(text: str) -> re.Match[str] | None:
    """``_REAL.search(text)`` in linear time.

    ldirectord's ``\\[[0-9A-fa-f:]+\\]`` (sic: ``A-f`` takes ``[`` and ``]`` too) is tried
    from every ``[``; in a run of such characters each try scans the rest of the run.  A
    match from a later ``[`` of the run would also be one from the run's first ``[``, so
    when that one fails the others are skipped.
    """
    if text.count("[") < 16:
        return _REAL.search(text)
    skip_until = 0  # the '[' before this, in the run of a '[' already tried, cannot match
    for i in range(len(text) + 1):
        if i < skip_until and text[i] == "[":
            continue
        m = _REAL.match(text, i)
        if m is not None:
            return m
        if text.startswith("[", i):
            run = _BRACKET_RUN.match(text, i + 1)
            skip_until = max(skip_until, run.end() if run else i + 1)
    return None


def _warn_duplicates(reals: list[RealServer], key: str, report: Report) -> None:
    """ldirectord accepts the same real twice (and checks it twice): warn at each repeat.

    One line never lists an address twice (a range counts up), so a repeat is on a later line.
    """
    first_line: dict[tuple[str, int], int] = {}
    for real in reals:
        where = first_line.setdefault((real.host, real.port), real.line)
        if real.line != where:
            report.warn(
                real.line,
                key,
                f"{real.address} is already a real of this virtual (line {where}); "
                "ldirectord accepts the duplicate and checks it twice",
            )


def _range(first: str, last: str, line: int, key: str, limit: int, report: Report) -> list[str] | None:
    a = int.from_bytes(socket.inet_aton(first), "big")  # both are checked IPv4 addresses
    b = int.from_bytes(socket.inet_aton(last), "big")
    if a > b:
        report.error(
            line, key, f"the range {first}->{last} runs backwards: the first address must be the lower"
        )
        return None
    if b - a + 1 > MAX_RANGE:
        report.error(
            line,
            key,
            f"the range {first}->{last} has {b - a + 1} addresses; lvscheck takes at most {MAX_RANGE}",
        )
        return None
    # ldirectord's loop compares the integers as strings ("while ($i le $last_i)").
    last_text = str(b)
    addresses: list[str] = []
    i = a
    while i <= b and str(i) <= last_text and len(addresses) <= limit:
        addresses.append(socket.inet_ntoa(i.to_bytes(4, "big")))
        i += 1
    if len(addresses) != b - a + 1 and len(addresses) <= limit:
        report.warn(
            line,
            key,
            f"ldirectord expands {first}->{last} to {len(addresses)} reals, not {b - a + 1}: it compares "
            "the addresses as decimal strings, which breaks where the number of digits changes; "
            "lvscheck does the same: split the range",
        )
    return addresses


def _flags(text: str, line: int, key: str, report: Report) -> _Flags | None:
    """``gate|masq|ipip [weight] ["request", "receive"] [l:N] [u:N]``, as ``add_real_server`` reads it."""
    fm = _FORWARDING.search(text)
    if not fm or fm[1] not in ("gate", "masq", "ipip"):
        shown = fm[1] if fm else text.strip()
        report.error(line, key, f"forwarding method {shown!r} is not valid: expected gate, masq or ipip")
        return None
    if text[: fm.start()].strip():
        report.warn(line, key, f"ldirectord ignores {text[: fm.start()].strip()!r} before {fm[1]!r}")
    flags = _Flags(fm[1])
    rest = _weight(flags, fm[2], line, key, report)
    if rest is None:
        return None
    rm = _REQREC.search(rest)
    if rm:
        if not _request_receive(flags, rm[1], rm[2], line, key, report):
            return flags  # the leading-"/" quirk: the rest of the line is ignored
        rest = rm[3]
    rest = _threshold(flags, "lower", _LOWER, rest, line, key, report)
    rest = _threshold(flags, "upper", _UPPER, rest, line, key, report) if rest is not None else None
    if rest is None:
        return None
    if rest.strip(" \t\r\f\v"):
        report.error(
            line,
            key,
            f"{rest.strip()!r} is not understood (ldirectord: invalid real server line): after the "
            'forwarding method expected [WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]',
        )
        return None
    return flags


def _weight(flags: _Flags, rest: str, line: int, key: str, report: Report) -> str | None:
    """The first number after a blank is the weight; returns what follows it."""
    wm = _WEIGHT.search(rest)
    if not wm:
        return rest
    if rest[: wm.start()].strip():
        report.warn(
            line,
            key,
            f"ldirectord takes the first number after a blank as the weight ({wm[1]}) and ignores "
            f"{rest[: wm.start()].strip()!r}; lvscheck does the same: write {flags.forwarding} {wm[1]}",
        )
    weight, why = read_number(wm[1])
    if weight is None or weight > 65535:
        report.error(
            line, key, f"weight: {why}" if why else f"weight {weight} is not valid: expected 0..65535"
        )
        return None
    flags.weight = weight
    return wm[2]


def _request_receive(flags: _Flags, request: str, receive: str, line: int, key: str, report: Report) -> bool:
    """Keep a per-real request/receive; False when ldirectord ignores the rest of the line."""
    if re.fullmatch(r"[lu]:\d+", request) or re.fullmatch(r"[lu]:\d+", receive):
        report.warn(
            line,
            key,
            f'ldirectord takes "{request}" "{receive}" as a request and a receive string, '
            "not as thresholds: write l:N u:N without quotes",
        )
    flags.request = request
    if request.startswith("/"):
        report.warn(
            line,
            key,
            f"ldirectord drops the receive of the per-real override (and, for HTTP, its request) "
            f'because the request "{request}" begins with "/", and ignores the rest of the line; '
            f'lvscheck does the same: write "{request[1:]}" without the leading "/"',
        )
        flags.slash_quirk = True
        return False
    flags.receive = receive
    return True


def _threshold(
    flags: _Flags, name: str, pattern: re.Pattern[str], rest: str, line: int, key: str, report: Report
) -> str | None:
    """``l:N`` or ``u:N``: the connection threshold; returns what follows it."""
    m = pattern.search(rest)
    if not m:
        return rest
    number, why = read_number(m[1])
    if number is None:
        report.error(line, key, f"{name} threshold: {why}")
        return None
    setattr(flags, name, number)
    return m[2]
