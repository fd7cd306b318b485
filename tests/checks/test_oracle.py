"""The oracle check (TNS ping) against a test listener, proven by independent TNS implementations.

No real Oracle listener can be installed here (tnslsnr comes only with Oracle's
own downloads), so tests/peers/tns_listener.py is a hand-written listener built
from the documented byte layout.  To keep it honest, three independent
implementations of TNS judge it and the check:

* nmap's ``oracle-tns-version`` NSE script, as a client of the listener, decodes
  its REFUSE as "Oracle TNS listener 19.0.0.0.0 (unauthorized)"; and nmap's
  own ``oracle-tns`` service probe is byte-identical to our CONNECT layout;
* tshark's TNS dissector decodes the check's own packets, captured on loopback,
  field by field (type, length, version, SDU/TDU, connect data offset and text)
  and the listener's RESEND and REFUSE, with no malformed packet;
* python-oracledb (thin mode, pure Python) connects to the listener and fails
  exactly as against a real one: DPY-6001 (similar to ORA-12514) for an unknown
  service, and DPY-5005 for a ping (it does not expect the ERR=0 answer).

Hostile servers (hand-written): refused, stall, garbage, REFUSE cut short, a
4-byte length, endless RESENDs, an endless body, a bare 8-byte REFUSE (what the
honeypots package answers).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from tests.peers import free_port, require_binary
from tests.peers.hostile import open_fds, serve
from tests.peers.tns_listener import RESEND, refuse_packet, tns_listener
from tests.runcheck import Checks

from lvscheck import Result, State
from lvscheck.checks.oracle import connect_packet, decode_vsnnum

pytestmark = pytest.mark.peer


def test_ping_answered_err0_is_up_with_version(check: Checks) -> None:
    with tns_listener() as listener:
        r = check("oracle", listener.port)
    assert r.state is State.UP, r.reason
    assert r.reason == "listener alive (ping answered ERR=0, version 19.0.0.0.0)"
    assert r.details == {"vsnnum": 318767104, "version": "19.0.0.0.0", "err": 0}
    assert listener.seen == [b"(CONNECT_DATA=(COMMAND=ping))"]


def test_ldirectord_dbi_options_are_accepted_and_said_unused(check: Checks) -> None:
    options = {"login": "scott", "passwd": "tiger", "database": "ORCL", "request": "select 1 from dual"}
    with tns_listener() as listener:
        r = check("oracle", listener.port, **options)
    assert r.state is State.UP
    assert r.reason.endswith("; login, passwd, database, request not checked: a TNS ping does not log in")
    assert "tiger" not in r.reason


def test_vsnnum_zero_is_up_without_version(check: Checks) -> None:
    with tns_listener(vsnnum=0) as listener:
        r = check("oracle", listener.port)
    assert r.state is State.UP
    assert r.reason == "listener alive (ping answered ERR=0)"


def test_resend_is_followed_a_bounded_number_of_times(check: Checks) -> None:
    with tns_listener(resends=3) as listener:
        r = check("oracle", listener.port)
    assert r.state is State.UP, r.reason
    assert listener.connects == 4
    with tns_listener(resends=10) as listener:
        r = check("oracle", listener.port)
    assert r.state is State.DOWN
    assert r.reason == "listener asked to RESEND the ping more than 3 times"
    assert listener.connects == 4


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (1194, "TNS-01194: the listener command did not arrive in a secure transport"),
        (12514, "ORA-12514: TNS:listener does not currently know of service requested"),
        (4242, "TNS error 4242"),
    ],
)
def test_other_err_is_down_by_number_and_meaning(err: int, text: str, check: Checks) -> None:
    with tns_listener(ping_err=err) as listener:
        r = check("oracle", listener.port)
    assert r.state is State.DOWN
    assert r.reason.startswith(f"listener refused the ping: ERR={err} ({text}")
    assert r.reason.endswith(", version 19.0.0.0.0")
    assert r.details["err"] == err


def test_vsnnum_decoding_matches_nmap() -> None:
    # the test vectors of nmap's oracle-tns-version.nse
    for n, v in {
        135290880: "8.1.6.0.0",
        153092352: "9.2.0.1.0",
        185599488: "11.1.0.6.0",
        202375680: "12.1.0.2.0",
        318767104: "19.0.0.0.0",
        352321536: "21.0.0.0.0",
    }.items():
        assert decode_vsnnum(n) == v


def test_connect_layout_is_byte_identical_to_nmaps_probe() -> None:
    probes = Path("/usr/share/nmap/nmap-service-probes")
    if not probes.exists():
        pytest.skip("nmap not installed (.ci/run installs it)")
    m = re.search(r"^Probe TCP oracle-tns q\|(.*)\|$", probes.read_text(errors="replace"), re.M)
    assert m is not None
    nmap_probe = _nmap_unescape(m[1])
    assert connect_packet(b"(CONNECT_DATA=(COMMAND=version))") == nmap_probe
    assert len(connect_packet()) == 87


def _nmap_unescape(text: str) -> bytes:
    """nmap-service-probes escapes: \\xHH, \\0 (one NUL; a digit after it is literal), \\r \\n \\t \\\\."""
    simple = {"0": b"\0", "r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "|": b"|"}
    out = b""
    i = 0
    while i < len(text):
        if text[i] != "\\":
            out += text[i].encode("latin-1")
            i += 1
        elif text[i + 1] == "x":
            out += bytes([int(text[i + 2 : i + 4], 16)])
            i += 4
        else:
            out += simple[text[i + 1]]
            i += 2
    return out


def _hostile(check: Checks, handler: object, **options: str) -> Result:
    with serve(handler) as port:  # type: ignore[arg-type]
        return check("oracle", port, **options)


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def _replying(data: bytes, then_stall: bool = False) -> object:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(data)
        await writer.drain()
        if then_stall:
            await asyncio.sleep(30)

    return handler


async def _endless_resend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(RESEND * 1000)
        await writer.drain()


async def _endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1000)
    writer.write(struct.pack("!HHBBH", 8000, 0, 4, 0, 0))
    while True:
        writer.write(b"(" * 65536)
        await writer.drain()


def test_hostile_servers_are_down_without_leaks(check: Checks) -> None:
    before = open_fds()
    cases: list[tuple[object, str, dict[str, str]]] = [
        (
            _stall,
            "timed out after 1 s waiting for the listener's answer to the TNS ping",
            {"negotiatetimeout": "1"},
        ),
        (_replying(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not a TNS listener: reply header 48 54 54 50", {}),
        (_replying(b"\x00\x04\x00\x00\x04"), "connection closed by the server waiting for the listener", {}),
        (
            _replying(refuse_packet(b"(DESCRIPTION=(ERR=0))")[:20]),
            "connection closed by the server reading the REFUSE",
            {},
        ),
        (
            _replying(refuse_packet(b"(DESCRIPTION=(ERR=0))")[:20], True),
            "timed out after 1 s reading the REFUSE packet",
            {"negotiatetimeout": "1"},
        ),
        (_replying(b"\x00\x00\x00\x49\x04\x00\x00\x00" + b"\0" * 65), "not a TNS listener", {}),
        (
            _replying(b"\x00\x08\x00\x00\x04\x00\x00\x00"),
            "listener REFUSE without an ERR= code (no text)",
            {},
        ),
        (
            _replying(refuse_packet(b"(DESCRIPTION=(TMP=))")),
            "listener REFUSE without an ERR= code: '(DESCRIPTION=(TMP=))'",
            {},
        ),
        (_replying(struct.pack("!HHBBH", 8, 0, 12, 0, 0)), "unexpected TNS MARKER to a ping", {}),
        (_endless_resend, "listener asked to RESEND the ping more than 3 times", {}),
        (_endless_body, "listener REFUSE without an ERR= code: '((((", {}),
        (_replying(struct.pack("!HHBBH", 65535, 0, 4, 0, 0)), "not a TNS listener: reply header ff ff", {}),
    ]
    for handler, reason, options in cases:
        r = _hostile(check, handler, **options)
        assert r.state is State.DOWN, (reason, r.reason)
        assert r.reason.startswith(reason), (reason, r.reason)
        assert r.latency < 1.5
    assert open_fds() <= before


def test_accept_counts_as_alive(check: Checks) -> None:
    accept = struct.pack("!HHBBH", 32, 0, 2, 0, 0) + struct.pack("!HH", 310, 0) + b"\0" * 20
    r = _hostile(check, _replying(accept))
    assert r.state is State.UP
    assert "ACCEPT, version 310" in r.reason


def test_refused_port(check: Checks) -> None:
    r = check("oracle", free_port())
    assert r.state is State.DOWN
    assert r.reason == "connection refused"


def test_nmap_script_decodes_the_listener() -> None:
    """nmap's oracle-tns-version (an independent TNS client) reads our listener as a 19c one."""
    nmap = require_binary("nmap")
    with tns_listener() as listener, _nmap_datadir(listener.port) as datadir:
        out = subprocess.run(
            [
                nmap,
                "-Pn",
                "-sT",
                "-n",
                "-p",
                str(listener.port),
                "--datadir",
                datadir,
                "--script",
                "oracle-tns-version",
                "-oX",
                "-",
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    assert 'product="Oracle TNS listener" version="19.0.0.0.0" extrainfo="unauthorized"' in out.stdout
    assert listener.seen == [b"(CONNECT_DATA=(COMMAND=version))"]


class _nmap_datadir:
    """An nmap data dir whose nmap-services names the port oracle-tns (the script's portrule wants it)."""

    def __init__(self, port: int) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        Path(self.tmp.name, "nmap-services").write_text(f"oracle-tns\t{port}/tcp\t0.5\n")

    def __enter__(self) -> str:
        return self.tmp.name

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()


def test_tshark_decodes_the_checks_own_packets(check: Checks) -> None:
    """tshark's TNS dissector (an independent decoder) parses what the check sent and received."""
    tshark = require_binary("tshark")
    if os.geteuid() != 0:
        pytest.skip("capturing on loopback needs root")
    fields = [
        "frame.number",
        "tns.type",
        "tns.length",
        "tns.version",
        "tns.compat_version",
        "tns.sdu_size",
        "tns.max_tdu_size",
        "tns.connect_data_length",
        "tns.connect_data_offset",
        "tns.connect_data",
        "tns.refuse_data",
        "_ws.malformed",
        "_ws.expert.severity",
    ]
    rows: list[list[str]] = []
    with tns_listener(resends=1) as listener:
        proc = subprocess.Popen(
            [
                tshark,
                "-l",
                "-i",
                "lo",
                "-f",
                f"tcp port {listener.port}",
                "-d",
                f"tcp.port=={listener.port},tns",
                "-T",
                "fields",
                *[a for f in fields for a in ("-e", f)],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            end = time.monotonic() + 30
            # "Capture started" can come before the filter sees packets: poke the port with bare
            # TCP connects (no TNS rows; shown because there is no display filter) until one shows.
            while not select.select([fd], [], [], 0.2)[0]:
                assert time.monotonic() < end, "tshark did not start capturing"
                socket.create_connection(("127.0.0.1", listener.port)).close()
            os.read(fd, 65536)  # the pokes' rows
            r = check("oracle", listener.port)
            assert r.state is State.UP, r.reason
            text = b""
            while text.count(b"\n") < 100 and time.monotonic() < end and select.select([fd], [], [], 2)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                text += chunk
                rows = [
                    r[1:] for r in (line.split("\t") for line in text.decode().splitlines()) if r[1:2] != [""]
                ]
                if len(rows) >= 4:
                    break
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    connect = [
        "1",
        "87",
        "310",
        "300",
        "2048",
        "32767",
        "29",
        "58",
        "(CONNECT_DATA=(COMMAND=ping))",
        "",
        "",
        "",
    ]
    resend = ["11", "8", *[""] * 10]
    refuse = ["4", "73", *[""] * 7, "(DESCRIPTION=(TMP=)(VSNNUM=318767104)(ERR=0)(ALIAS=LISTENER))", "", ""]
    assert rows == [connect, resend, connect, refuse]


def test_python_oracledb_thin_fails_as_against_a_real_listener() -> None:
    """python-oracledb (thin, pure Python) as an independent client of the test listener."""
    oracledb = pytest.importorskip("oracledb")
    with tns_listener() as listener:
        with pytest.raises(oracledb.OperationalError) as info:
            oracledb.connect(
                user="scott",
                password="tiger",
                dsn=f"127.0.0.1:{listener.port}/FREEPDB1",
                retry_count=0,
                tcp_connect_timeout=5,
            )
        assert "DPY-6001" in str(info.value)
        assert "Similar to ORA-12514" in str(info.value)
        # a connect string over 230 bytes travels in a DATA packet after the CONNECT
        long_service = "S" * 300
        with pytest.raises(oracledb.OperationalError) as info:
            oracledb.connect(
                user="scott", password="tiger", dsn=f"127.0.0.1:{listener.port}/{long_service}", retry_count=0
            )
        assert "DPY-6001" in str(info.value)
        assert long_service.encode() in listener.seen[-1]
        # oracledb forwards COMMAND=ping too, and does not expect the ERR=0 answer a ping gets
        dsn = (
            f"(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=127.0.0.1)(PORT={listener.port}))"
            "(CONNECT_DATA=(COMMAND=ping)))"
        )
        with pytest.raises(oracledb.OperationalError) as info:
            oracledb.connect(user="scott", password="tiger", dsn=dsn, retry_count=0)
        assert "DPY-5005" in str(info.value)
        assert b"(COMMAND=ping)" in listener.seen[-1]
