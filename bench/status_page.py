"""The status page with 10,000 reals: time to first render, bytes per update, daemon CPU per watcher.

The daemon checks 10,000 reals (one nginx answers for all of them, as in ``daemon_10k.py``)
pinned to core 0 with ``--ipvs none``.  Then:

* **first render**: headless Chromium (Debian's chromium + chromium-driver, WebDriver)
  opens the page; the figure is ``performance.now()`` when the tables are built, i.e.
  from navigation start to 10,000 rows in the DOM (the snapshot travels over the event
  stream).  Three loads, each in a fresh tab state.
* **bytes per update**: a raw event-stream reader counts the bytes and rows of every
  ``delta`` event for a while (one delta per second).
* **daemon CPU**: the daemon's utime+stime over equal windows with 0, 1 and 10 watchers
  (raw event-stream readers, pinned to core 1 with this script), in the order
  0 1 10 0 1 10 so drift shows.  A browser costs the daemon what a raw reader costs.

``--cpu-only`` measures, in this process and without checks, the CPU of the parts: the
snapshot (status document, JSON, gzip) and one delta tick with 0, 1,000, 5,000 and 10,000
reals checked since the previous tick.

Usage::

    .venv/bin/python bench/status_page.py [--reals 10000] [--interval 2] [--window 20] [--check http]
    .venv/bin/python bench/status_page.py --cpu-only [--reals 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _daemon import Daemon, cpu_seconds, daemon, nginx, write_config


class Reader(threading.Thread):
    """One watcher: reads the event stream and counts what it gets."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.bytes = 0
        self.deltas: list[tuple[int, int]] = []  # (bytes, rows) per delta event
        self.snapshot_bytes = 0
        self.snapshot_wire = 0  # bytes received up to the end of the snapshot (gzip)
        self.stop = threading.Event()

    def run(self) -> None:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n")
        s.settimeout(1.0)
        buf = b""
        head: bytes | None = b""
        unzip = zlib.decompressobj(31)
        while not self.stop.is_set():
            try:
                data = s.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                break
            if head is not None:  # still reading the HTTP header
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                data = head.partition(b"\r\n\r\n")[2]
                head = None
            self.bytes += len(data)
            buf += unzip.decompress(data)
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if event.startswith(b"event: delta"):
                    payload = event.split(b"data: ", 1)[1]
                    self.deltas.append((len(event) + 2, len(json.loads(payload)["rows"])))
                elif event.startswith(b"event: snapshot"):
                    self.snapshot_bytes = len(event) + 2
                    self.snapshot_wire = self.bytes
        s.close()


def daemon_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def first_render(url: str, runs: int, workdir: Path, arrived: list[float]) -> list[float]:
    from tests.web.webdriver import start_browser

    out = []
    for i in range(runs):
        b = start_browser(workdir / f"profile{i}", workdir / "chromedriver.log")
        try:
            b.get(url)
            b.wait_js("return document.body.dataset.rendered", 120, "first render")
            out.append(float(b.js("return +document.body.dataset.rendered")))
            arrived.append(float(b.js("return +document.body.dataset.snapshotAt")))
            rows = b.js("return document.querySelectorAll('tr[data-i]').length")
            assert rows > 0, rows
        finally:
            b.quit()
    return out


def cpu_only(reals: int) -> None:
    import asyncio
    import random

    from lvscheck.adapters.ipvs.table import MemoryIPVS
    from lvscheck.daemon.director import Director
    from lvscheck.daemon.reload import install
    from lvscheck.web.live import Live

    async def run() -> None:
        d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-page-"))
        try:
            cf = d / "cpu.cf"
            write_config(cf, reals, 1, 3600, "connect")
            director = Director(str(cf), MemoryIPVS())
            director.load_initial()
            director.view.read()
            await install(director, director.prepared, first=True)
            for sid in list(director.reals):
                director.scheduler.stop(sid)
            for sid in director.reals:
                for _ in range(5):
                    director.history.checked(sid, random.random() / 100)
            t0 = time.process_time()
            doc = director.status()
            t1 = time.process_time()
            text = json.dumps(doc, separators=(",", ":"), default=str).encode()
            t2 = time.process_time()
            z = zlib.compressobj(1, zlib.DEFLATED, 31)
            gz = z.compress(text) + z.flush(zlib.Z_SYNC_FLUSH)
            t3 = time.process_time()
            out: dict[str, object] = {
                "reals": reals,
                "snapshot_status_ms": round(1000 * (t1 - t0)),
                "snapshot_json_ms": round(1000 * (t2 - t1)),
                "snapshot_gzip_ms": round(1000 * (t3 - t2)),
                "snapshot_bytes": len(text),
                "snapshot_gzip_bytes": len(gz),
            }
            live = Live(director)
            await live._baseline()
            ids = list(director.reals)
            for changed in (0, 1000, 5000, 10000):
                for sid in ids[:changed]:
                    director.history.checked(sid, 0.002)
                t0 = time.process_time()
                delta = await live.delta()
                out[f"delta_{changed}_checked_ms"] = round(1000 * (time.process_time() - t0), 1)
                out[f"delta_{changed}_checked_bytes"] = len(delta)
            out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(out, indent=2))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reals", type=int, default=10000)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--check", choices=("http", "connect"), default="http")
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--cpu-only", action="store_true", help="only the in-process CPU of snapshot and delta")
    args = ap.parse_args()
    if args.cpu_only:
        cpu_only(args.reals)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # (timeout, kill): still stop nginx and the daemon
    d = Path(tempfile.mkdtemp(prefix="lvscheck-bench-page-"))
    try:
        with contextlib.ExitStack() as stack:
            port = stack.enter_context(nginx(d, cpus="1"))
            cf = d / "bench.cf"
            write_config(cf, args.reals, port, args.interval, args.check)
            # --loop auto and --max-in-flight 512: the daemon's own defaults, as this bench always ran it
            extra = ("--max-in-flight", "512", "--state-dir", str(d / "state"))
            dm = stack.enter_context(daemon(d, cf, cpus="0", loop="auto", extra=extra))
            os.sched_setaffinity(0, {1})  # this script, its readers and the browser: core 1
            dm.wait_for_socket()
            measure(args, dm, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


def measure(args: argparse.Namespace, dm: Daemon, d: Path) -> None:
    """Prints the render, bytes and CPU figures of the running daemon."""
    hport = dm.metrics_port
    url = f"http://127.0.0.1:{hport}/"
    readers: list[Reader] = []
    try:
        time.sleep(args.warmup)
        load = [os.getloadavg()]
        raw = urllib.request.urlopen(url + "status.json", timeout=30).read()
        req = urllib.request.Request(url + "status.json", headers={"Accept-Encoding": "gzip"})
        gz = urllib.request.urlopen(req, timeout=30).read()
        arrived: list[float] = []
        renders = first_render(url, 3, d, arrived)
        load.append(os.getloadavg())

        cpu: dict[int, list[float]] = {0: [], 1: [], 10: []}
        tick_ms: dict[int, list[float]] = {1: [], 10: []}
        probe = None
        for n in (0, 1, 10, 0, 1, 10):
            readers = [Reader(hport) for _ in range(n)]
            for r in readers:
                r.start()
            time.sleep(2.0)  # the snapshot is sent; measure the steady state
            page0 = json.loads(urllib.request.urlopen(url + "status.json", timeout=30).read())["page"]
            cpu[n].append(daemon_cpu(dm.pid, args.window))
            page1 = json.loads(urllib.request.urlopen(url + "status.json", timeout=30).read())["page"]
            if n:
                ticks = page1["ticks"] - page0["ticks"]
                tick_ms[n].append(1000 * (page1["tick_cpu_s"] - page0["tick_cpu_s"]) / max(1, ticks))
            for r in readers:
                r.stop.set()
            for r in readers:
                r.join(5)
            if n == 1:
                probe = readers[0]
            readers = []
            time.sleep(1.5)
        load.append(os.getloadavg())
        assert probe is not None
        deltas = probe.deltas[1:]  # the first one may cover the snapshot's gap
        status = json.loads(raw)
        out = {
            "reals": args.reals,
            "check": args.check,
            "interval_s": args.interval,
            "checks_per_s_expected": round(args.reals / args.interval),
            "status_json_bytes": len(raw),
            "status_json_gzip_bytes": len(gz),
            "snapshot_event_bytes": probe.snapshot_bytes,
            "first_render_ms": [round(x) for x in renders],
            "snapshot_arrived_ms": [round(x) for x in arrived],
            "delta_events": len(deltas),
            "bytes_per_update_mean": round(sum(b for b, _ in deltas) / max(1, len(deltas))),
            "rows_per_update_mean": round(sum(r for _, r in deltas) / max(1, len(deltas))),
            "bytes_per_row": round(sum(b for b, _ in deltas) / max(1, sum(r for _, r in deltas)), 1),
            "snapshot_gzip_bytes": probe.snapshot_wire,
            "gzip_bytes_per_update_on_the_wire_mean": round(
                (probe.bytes - probe.snapshot_wire) / max(1, len(probe.deltas))
            ),
            "tick_cpu_ms_per_update": {f"{n} watchers": [round(x, 1) for x in v] for n, v in tick_ms.items()},
            "daemon_cpu_percent": {f"{n} watchers": [round(x, 1) for x in v] for n, v in cpu.items()},
            "daemon_state": status["state"],
            "load_avg": [[round(x, 2) for x in trio] for trio in load],
        }
        print(json.dumps(out, indent=2))
    finally:
        for r in readers:
            r.stop.set()


if __name__ == "__main__":
    sys.exit(main())
