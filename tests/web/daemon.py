"""``lvscheck daemon --ipvs none`` as a real process for the status-page tests.

``--ipvs none`` keeps the IPVS table in memory (MemoryIPVS): the "kernel weight"
the page and ``/status.json`` show is what that table holds after the daemon's writes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.peers import free_port

LVSCHECK = [sys.executable, "-m", "lvscheck"]


def config(reals: list[int], vip: str = "10.9.0.1:80", extra: str = "") -> str:
    lines = [
        "checktimeout=1",
        "checkinterval=1",
        "failurecount=1",
        "quiescent=yes",
        extra,
        "#lvscheck: rise=1 interval=0.3 fastinterval=0.1",
        "",
        f"virtual={vip}",
    ]
    lines += [f"\treal=127.0.0.1:{p} masq 4" for p in reals]
    lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    return "\n".join(lines)


def wait(cond: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


class Daemon:
    """One daemon with a control socket, an HTTP listener and a state directory under ``d``."""

    def __init__(self, d: Path, cf: Path, *extra: str, ipvs: str = "none") -> None:
        self.ipvs = ipvs
        self.dir = d
        self.cf = cf
        self.sock = d / "ctl.sock"
        self.state = d / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = d / "daemon.log"
        self.events = d / "events.jsonl"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [
                *LVSCHECK,
                "daemon",
                "--config",
                str(self.cf),
                "--ipvs",
                self.ipvs,
                "--control",
                str(self.sock),
                "--metrics",
                f"127.0.0.1:{self.port}",
                "--state-dir",
                str(self.state),
                "--event-log",
                str(self.events),
                *self.extra,
            ],
            stderr=open(self.log, "ab"),  # noqa: SIM115
        )
        wait(lambda: self.status(), 20, "the daemon answers /status.json")
        return self

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/status.json", timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
        return doc

    def real(self, port: int) -> dict[str, Any]:
        for v in self.status()["virtuals"]:
            for r in v["reals"]:
                if r["real"] == f"127.0.0.1:{port}":
                    return dict(r)
        raise KeyError(port)

    def cli(self, *words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LVSCHECK, *words, "--control", str(self.sock)], capture_output=True, text=True, timeout=30
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
