"""ldap3's parsing, in its worker thread, is bounded by the check's CPU budget.

A hand-written hostile server (fault injection: no real LDAP server sends this on demand)
accepts the bind, then answers the search with entries of 60 KiB made of tiny attribute
values: each within the guard's byte limits (64 KiB a message, 64 messages, 1 MiB), each
about 60-100 ms of ldap3 decoding in Python while holding the GIL.  15 of them are over a
second of CPU; the check is cut at its 0.5 s budget, measured on the worker thread's own
CPU clock.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.peers.hostile import serve

from lvscheck import CheckSpec, Engine, Result, State, Target

ENTRIES = 15


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _message(message_id: int, op: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x02, message_id.to_bytes(message_id.bit_length() // 8 + 1, "big")) + op)


async def _request(reader: asyncio.StreamReader) -> int:
    """One LDAP request; its message id (ldap3 counts up for the whole process: may pass 127)."""
    head = await reader.readexactly(2)
    length = head[1]
    if length & 0x80:
        length = int.from_bytes(await reader.readexactly(length & 0x7F), "big")
    body = await reader.readexactly(length)
    assert body[0] == 0x02  # messageID INTEGER, short length
    return int.from_bytes(body[2 : 2 + body[1]], "big")


def _done(tag: int, message_id: int) -> bytes:
    return _message(message_id, _tlv(tag, b"\x0a\x01\x00\x04\x00\x04\x00"))  # success, no DN, no text


def _costly_entry(message_id: int) -> bytes:
    values = _tlv(0x31, _tlv(0x04, b"") * 20_000)  # one attribute, 20,000 empty values: 40 KiB of BER
    attributes = _tlv(0x30, _tlv(0x30, _tlv(0x04, b"a") + values) * 1)
    entry = _message(message_id, _tlv(0x64, _tlv(0x04, b"cn=x") + attributes))
    assert len(entry) < 64 * 1024
    return entry


async def costly_entries(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(_done(0x61, await _request(reader)))  # BindResponse
    search = await _request(reader)
    for _ in range(ENTRIES):
        writer.write(_costly_entry(search))
        await writer.drain()
        await asyncio.sleep(0.005)
    writer.write(_done(0x65, search))  # SearchResultDone
    await writer.drain()
    await asyncio.sleep(3600)


def _run(budget: float | None) -> tuple[Result, float, float]:
    with serve(costly_entries) as port:

        async def main() -> tuple[Result, float, float]:
            engine = Engine(cpu_budget=budget)
            spec = CheckSpec("ldap", Target("127.0.0.1", port), {"checktimeout": "10"})
            t0, c0 = time.monotonic(), time.process_time()
            result = await engine.run(spec)
            return result, time.monotonic() - t0, time.process_time() - c0

        return asyncio.run(main())


def test_a_server_that_keeps_ldap3_decoding_is_cut_at_the_cpu_budget() -> None:
    result, wall, cpu = _run(0.5)  # the default
    assert result.state is State.DOWN
    assert "used more than 500 ms of CPU" in result.reason, result.reason
    assert "parsing the LDAP messages" in result.reason
    assert wall < 10 + 0.5, wall
    assert cpu < 1.0, cpu  # the budget and at most one message's decoding beyond it


def test_without_a_budget_ldap3_decodes_every_entry() -> None:
    """The control: the same server costs over a second of CPU when nothing bounds it."""
    result, _wall, cpu = _run(None)
    assert result.state is State.DOWN
    assert f"returned {ENTRIES} entries" in result.reason, result.reason
    assert cpu > 0.6, cpu


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_guard_does_not_charge_cpu_spent_importing_modules() -> None:
    """ldap3 loads parts of itself at a process's first dialogue (0.5 s of CPU in CI's slow
    guest cut a healthy check against slapd): an interval with an import is not charged."""
    import sys
    import types

    from lvscheck.checks._berguard import CountedSocket, Refused

    guard = CountedSocket(None, cpu_budget=0.05, cpu_start=time.thread_time())
    _burn(0.1)  # an "import": CPU spent while a module appears
    sys.modules["_lvscheck_test_imported"] = types.ModuleType("_lvscheck_test_imported")
    try:
        guard.spend()  # not charged
        _burn(0.1)  # the same CPU with no import: charged
        with pytest.raises(Refused, match="parsing the LDAP messages"):
            guard.spend()
    finally:
        del sys.modules["_lvscheck_test_imported"]
