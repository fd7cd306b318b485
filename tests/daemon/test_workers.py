"""Check workers (``--workers N``): real nginx reals, the director's pools in the main process.

Reals on six loopback addresses (one Debian nginx each), so both workers get some
(a real goes to the worker its host hashes to).  What is proven: results from the
workers reach the pools and the IPVS table; a worker killed with SIGKILL is back
within 2 s and no real changes state; a reload sends only the diff (a real that
stays keeps its job and its worker); SIGTERM to ``lvscheck daemon --workers 2``
stops the workers too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.daemon.running import run_with, until, virtual
from tests.peers import free_port
from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.table import MemoryIPVS, ServiceKey
from lvscheck.config.model import Config, LvscheckSettings, RealServer, VirtualService
from lvscheck.daemon.director import Director, DirectorOptions
from lvscheck.daemon.state import Phase
from lvscheck.daemon.workers import WorkerPool

DAEMON = (sys.executable, "-m", "lvscheck", "daemon", "--ipvs", "none", "--workers", "2", "--reconcile", "0")
HOSTS = tuple(f"127.0.0.{i}" for i in range(2, 8))
VIP = ServiceKey.tcp("10.9.7.1", 80)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    d = tmp_path_factory.mktemp("worker-reals")
    p = free_port()
    servers = [RealNginx(f"w{i}", host, p, d) for i, host in enumerate(HOSTS)]
    for s in servers:
        s.start()
    yield p
    for s in servers:
        s.stop()


def config(port: int, hosts: tuple[str, ...], weight: int = 5, down: str = "") -> Config:
    """One virtual with a real per host; ``down``: a host whose check asks for a missing page."""
    settings = LvscheckSettings(rise=1, interval=0.3, fastinterval=0.1, jitter=0.1)
    v = replace(
        virtual("10.9.7.1", [], lvscheck=settings),
        reals=tuple(RealServer(h, port, "masq", weight, line=2 + i) for i, h in enumerate(hosts)),
    )
    extra: tuple[VirtualService, ...] = ()
    if down:
        missing = {"request": "/missing.html", "receive": "Still alive"}
        reals = (RealServer(down, port, "masq", weight, line=20),)
        extra = (replace(v, address="10.9.7.2", options=missing, reals=reals, line=19),)
    return Config("test.cf", virtuals=(v, *extra))


def weights(ipvs: MemoryIPVS, port: int, hosts: tuple[str, ...]) -> list[int | None]:
    out = []
    for h in hosts:
        d = ipvs.table.dest(VIP, h, port)
        out.append(None if d is None else d.weight)
    return out


def test_results_reach_the_pools_and_a_killed_worker_changes_nothing(port: int) -> None:
    cfg = config(port, HOSTS, down=HOSTS[0])
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg, options=DirectorOptions(workers=2))
    pool = director.scheduler
    assert isinstance(pool, WorkerPool)

    async def body() -> None:
        await until(lambda: weights(ipvs, port, HOSTS) == [5] * len(HOSTS), 10, "every real up")
        down_key = ServiceKey.tcp("10.9.7.2", 80)
        await until(
            lambda: (
                (d := ipvs.table.dest(down_key, HOSTS[0], port)) is not None
                and d.weight == 0
                and all(rs.track.phase is not Phase.UNKNOWN for rs in director.reals.values())
            ),
            10,
            "the real with a missing page decided down (weight 0 alone is also the undecided start)",
        )
        assert all(w.handles for w in pool._workers), "both workers got reals"
        assert len(pool.pids()) == 2
        phases = {sid: rs.track.phase for sid, rs in director.reals.items()}
        transitions = director.counters.transitions
        victim = pool.pids()[0]
        checks = pool.checks
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: len(pool.pids()) == 2 and victim not in pool.pids(), 2.0, "the worker back")
        back = time.monotonic() - killed
        # every real is checked again after the restart, and nothing moved meanwhile
        before = {sid: rs.checks for sid, rs in director.reals.items()}
        await until(
            lambda: all(rs.checks > before[sid] for sid, rs in director.reals.items()),
            5,
            "every real checked again after the restart",
        )
        assert pool.restarts == 1
        assert pool.checks > checks
        assert {sid: rs.track.phase for sid, rs in director.reals.items()} == phases
        assert director.counters.transitions == transitions
        assert weights(ipvs, port, HOSTS) == [5] * len(HOSTS)
        assert back < 2.0

    run_with(director, body)
    assert pool.pids() == []


def test_reload_sends_only_the_diff(port: int) -> None:
    configs = {"now": config(port, HOSTS[:4])}
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: configs["now"], options=DirectorOptions(workers=2))
    pool = director.scheduler
    assert isinstance(pool, WorkerPool)

    async def body() -> None:
        await until(lambda: weights(ipvs, port, HOSTS[:4]) == [5] * 4, 10, "four reals up")
        kept = {sid: pool._jobs[sid].handle for sid in director.reals if HOSTS[1] in sid or HOSTS[2] in sid}
        gone = [sid for sid in director.reals if HOSTS[0] in sid]
        configs["now"] = config(port, HOSTS[1:5])  # HOSTS[0] leaves, HOSTS[4] comes
        sent: list[tuple[int, list[tuple[object, ...]]]] = []
        real_queue = pool._queue

        def spy(worker: object, op: tuple[object, ...]) -> None:
            sent.append((getattr(worker, "index", -1), [op]))
            real_queue(worker, op)  # type: ignore[arg-type]

        pool._queue = spy  # type: ignore[method-assign]
        assert await director.reload("test")
        await until(lambda: weights(ipvs, port, HOSTS[1:5]) == [5] * 4, 10, "the new real up")
        ops = [op[0] for _, batch in sent for op in batch]
        assert ops.count("start") == 1, ops  # only the new real
        assert ops.count("stop") == len(gone), ops  # only the removed one
        for sid, handle in kept.items():
            assert pool._jobs[sid].handle == handle  # not restarted
            assert director.reals[sid].track.phase is Phase.UP
        assert ipvs.table.dest(VIP, HOSTS[0], port) is None

    run_with(director, body)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _start_daemon(port: int, tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """``lvscheck daemon --workers 2`` with every real up; the daemon and its workers' pids."""
    from lvscheck.daemon.control import query

    cf = tmp_path / "w.cf"
    lines = ["checkinterval=1", "virtual=10.9.7.3:80"]
    lines += [f"\treal={h}:{port} masq 1" for h in HOSTS]
    lines += ["\tservice=http", '\trequest="test.html"', '\treceive="Still alive"', ""]
    cf.write_text("\n".join(lines))
    sock = tmp_path / "ctl.sock"
    daemon = subprocess.Popen(
        [*DAEMON, "--config", str(cf), "--control", str(sock), "--log-level", "warning"]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = _children(daemon.pid)
        if sock.exists() and len(workers) == 2:
            status = query(str(sock))
            if all(r["state"] == "up" for v in status["virtuals"] for r in v["reals"]):
                return daemon, workers
        time.sleep(0.1)
    daemon.kill()
    daemon.wait()
    raise AssertionError("the daemon with two workers never had every real up")


def test_sigkill_of_the_daemon_ends_its_workers(port: int, tmp_path: Path) -> None:
    daemon, workers = _start_daemon(port, tmp_path)
    daemon.kill()
    daemon.wait()
    deadline = time.monotonic() + 5
    while not all(_zombie_or_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_zombie_or_gone(pid) for pid in workers), "a worker outlived its daemon (kill -9)"


def test_sigterm_stops_the_daemon_and_its_workers(port: int, tmp_path: Path) -> None:
    daemon, workers = _start_daemon(port, tmp_path)
    try:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or _zombie_or_gone(pid), (
                f"worker {pid} outlived the daemon"
            )
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_failing_real_switches_its_worker_to_fastinterval(tmp_path: Path) -> None:
    """The main process owns rise/fall: when a real's state starts moving it tells the worker."""
    real = RealNginx("wfast", "127.0.0.9", free_port(), tmp_path)
    real.start()
    cfg = config(real.port, ("127.0.0.9",))
    ipvs = MemoryIPVS()
    director = Director("test.cf", ipvs, loader=lambda _p: cfg, options=DirectorOptions(workers=2))
    pool = director.scheduler
    assert isinstance(pool, WorkerPool)
    fast_ops: list[bool] = []
    real_queue = pool._queue

    def spy(worker: object, op: tuple[object, ...]) -> None:
        if op[0] == "fast":
            fast_ops.append(bool(op[2]))
        real_queue(worker, op)  # type: ignore[arg-type]

    pool._queue = spy  # type: ignore[method-assign]

    async def body() -> None:
        await until(lambda: weights(ipvs, real.port, ("127.0.0.9",)) == [5], 10, "the real up")
        fast_ops.clear()
        real.stop()
        await until(lambda: weights(ipvs, real.port, ("127.0.0.9",)) == [0], 10, "the real down")
        await until(lambda: fast_ops[-2:] == [True, False], 5, "fastinterval on while failing, off once down")

    try:
        run_with(director, body)
    finally:
        real.stop()
