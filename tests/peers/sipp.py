"""Real SIPp (Debian ``sip-tester``) as the SIP peer (UAS) on 127.0.0.1, over UDP or TCP.

Two behaviours, both SIPp's own code answering our OPTIONS:

* ``start_sipp(dir, "udp"|"tcp")``: the built-in ``uas`` scenario with ``-aa``
  (SIPp answers out-of-dialog OPTIONS with ``200 OK`` itself);
* ``start_sipp(dir, transport, status_line="486 Busy Here")``: a two-step XML
  scenario (receive OPTIONS, send that status) for the ``status=`` option.

TCP readiness is a TCP connect; UDP readiness is a first OPTIONS answered.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.peers import Server, free_port, require_binary, running, spawn

__all__ = ["start_sipp"]

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer OPTIONS with {status}">
  <recv request="OPTIONS" />
  <send>
    <![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
</scenario>
"""


def _udp_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sipp exited with {proc.returncode} before answering on UDP {port}")
        n += 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", port))
            host, lport = s.getsockname()
            s.send(
                (
                    f"OPTIONS sip:ready@127.0.0.1:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {host}:{lport};branch=z9hG4bKready{n}{os.getpid()}\r\n"
                    f"Max-Forwards: 70\r\nTo: <sip:ready@127.0.0.1>\r\n"
                    f"From: <sip:ready@{host}>;tag=r{n}\r\nCall-ID: ready{n}-{os.getpid()}@test\r\n"
                    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                ).encode()
            )
            s.settimeout(0.2)
            with contextlib.suppress(OSError):
                if s.recv(4096).startswith(b"SIP/2.0"):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"sipp did not answer OPTIONS on UDP {port}")


@contextlib.contextmanager
def start_sipp(
    workdir: Path, transport: str = "udp", status_line: str | None = None, extra: Sequence[str] = ()
) -> Iterator[Server]:
    binary = require_binary("sipp")
    port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    argv = [
        binary,
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-nostdin",
        "-t",
        "u1" if transport == "udp" else "t1",
    ]
    if status_line is None:
        argv += ["-sn", "uas", "-aa"]
    else:
        (workdir / "options.xml").write_text(SCENARIO.format(status=status_line))
        argv += ["-sf", str(workdir / "options.xml")]
    argv += extra
    if transport == "tcp":
        with running(argv, port, workdir) as server:
            yield server
        return
    with open(workdir / "server.log", "wb") as log:
        proc = spawn(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=workdir)
        server = Server(proc, port, workdir)
        try:
            _udp_ready(port, proc)
            yield server
        finally:
            server.stop()
