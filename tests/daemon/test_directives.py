"""ldirectord directives the daemon acts on, driven through its public entry points.

Each test writes a real ldirectord.cf, runs :class:`Director` on it with an
in-memory IPVS table against real nginx reals on 127.0.0.1, and looks at the
table, the files and the log: ``maintenancedir`` with reals that are never
checked, ``readdquiescent``, ``monitorfile``, ``logfile``, unsupported
directives, and a refused reload.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.daemon.running import run_with, until, weight
from tests.peers import free_port
from tests.peers.nginx import RealNginx

from lvscheck.adapters.ipvs.table import MemoryIPVS, ServiceKey
from lvscheck.daemon.director import Director, DirectorOptions
from lvscheck.daemon.logfile import LogTarget

VIP = ServiceKey.tcp("10.9.0.1", 80)
VIP2 = ServiceKey.tcp("10.9.0.1", 81)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNginx]:
    r = RealNginx("directives", "127.0.0.1", free_port(), tmp_path_factory.mktemp("directives"))
    r.start()
    yield r
    r.stop()


HEAD = "checktimeout=1\nfailurecount=1\n#lvscheck: rise=1 interval=0.2 fastinterval=0.1\n"


def test_a_real_that_is_never_checked_comes_back_from_maintenance(web: RealNginx, tmp_path: Path) -> None:
    """checktype=on: held down by maintenancedir, back up when the file goes; a reload meanwhile
    keeps it down, and status and the kernel agree."""
    mdir = tmp_path / "maint"
    mdir.mkdir()
    cf = tmp_path / "on.cf"
    cf.write_text(
        f"{HEAD}maintenancedir={mdir}\nquiescent=yes\n\nvirtual=10.9.0.1:80\n"
        f"\treal=127.0.0.1:{web.port} masq 5\n\tchecktype=on\n"
    )
    ipvs = MemoryIPVS()
    director = Director(str(cf), ipvs, options=DirectorOptions(maintenance_every=0.05))

    def state() -> str:
        return str(director.status()["virtuals"][0]["reals"][0]["state"])

    async def body() -> None:
        await until(lambda: weight(ipvs, VIP, web.port) == 5, 3, "checktype=on: up at once")
        (mdir / f"127.0.0.1:{web.port}").touch()
        await until(lambda: weight(ipvs, VIP, web.port) == 0, 3, "in maintenance: weight 0")
        cf.write_text(cf.read_text().replace("masq 5", "masq 6"))
        assert await director.reload("test")
        await asyncio.sleep(0.2)
        assert state() == "down"
        assert weight(ipvs, VIP, web.port) == 0
        (mdir / f"127.0.0.1:{web.port}").unlink()
        await until(lambda: weight(ipvs, VIP, web.port) == 6, 3, "out of maintenance: back at once")
        assert state() == "up"

    run_with(director, body)


@pytest.mark.parametrize("readd", [False, True])
def test_readdquiescent(tmp_path: Path, readd: bool) -> None:
    """A down real's weight-0 entry deleted by hand comes back only with readdquiescent=yes."""
    dead = free_port()
    cf = tmp_path / "readd.cf"
    cf.write_text(
        f"{HEAD}quiescent=yes\nreaddquiescent={'yes' if readd else 'no'}\n\nvirtual=10.9.0.1:80\n"
        f"\treal=127.0.0.1:{dead} masq 5\n\tchecktype=connect\n"
    )
    ipvs = MemoryIPVS()
    director = Director(str(cf), ipvs, options=DirectorOptions(reconcile=0))

    async def body() -> None:
        await until(lambda: director.status()["virtuals"][0]["reals"][0]["state"] == "down", 3, "down")
        await until(lambda: weight(ipvs, VIP, dead) == 0, 3, "quiesced: weight 0")
        del ipvs.table.dests[VIP][("127.0.0.1", dead)]  # ipvsadm -d by hand
        await director.reconcile()
        assert weight(ipvs, VIP, dead) == (0 if readd else None)

    run_with(director, body)


def test_monitorfile_gets_a_line_per_result(web: RealNginx, tmp_path: Path) -> None:
    monitor = tmp_path / "monitor.log"
    dead = free_port()
    cf = tmp_path / "monitor.cf"
    cf.write_text(
        f"{HEAD}\nvirtual=10.9.0.1:80\n\treal=127.0.0.1:{web.port} masq 5\n\treal=127.0.0.1:{dead} masq 5\n"
        f'\tservice=http\n\trequest="test.html"\n\treceive="Still alive"\n\tmonitorfile={monitor}\n'
    )
    ipvs = MemoryIPVS()
    director = Director(str(cf), ipvs)

    async def body() -> None:
        await until(lambda: monitor.exists() and len(monitor.read_text().splitlines()) >= 4, 5, "lines")

    run_with(director, body)
    lines = monitor.read_text().splitlines()
    # [<localtime>] [<pid>] <real id with ':' as ' '> [up|down] <message>, as ldirectord writes it
    stamp = r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] \[\d+\]"
    pattern = stamp + r" negotiate http tcp 127\.0\.0\.1 (\d+) .*\[(up|down)\] (.+)"
    states = {}
    for line in lines:
        m = re.fullmatch(pattern, line)
        assert m, line
        states[int(m[1])] = m[2]
    assert states == {web.port: "up", dead: "down"}


def test_logfile_and_unsupported_directives_are_logged(tmp_path: Path) -> None:
    log_path = tmp_path / "ld.log"
    cf = tmp_path / "log.cf"
    cf.write_text(
        f'{HEAD}logfile="{log_path}"\nfork=yes\nquiescent=yes\n'
        f"virtual=10.9.0.1:80\n\treal=127.0.0.1:{free_port()} masq 1\n"
        '\tchecktype=external-perl\n\tcheckcommand="/usr/local/bin/check.pl"\n'
        f"\nvirtual=10.9.0.1:81\n\treal=127.0.0.1:{free_port()} masq 1\n\tchecktype=connect\n"
    )
    logging.getLogger().setLevel(logging.INFO)
    ipvs = MemoryIPVS()
    director = Director(str(cf), ipvs, logfile=LogTarget(None))
    director.load_initial()

    async def body() -> None:
        await until(lambda: bool(ipvs.table.dests.get(VIP2)), 3, "the connect virtual runs")
        assert VIP in ipvs.table.services  # the external-perl virtual exists, its real is not managed
        assert not ipvs.table.dests.get(VIP)

    run_with(director, body)
    text = log_path.read_text()
    assert f"config: {cf}:5: fork: not supported by lvscheck" in text
    assert f"config: {cf}:8: real: checktype=external-perl" in text
    assert director.logfile.handler is None  # closed at stop


def test_a_refused_reload_keeps_the_running_config_and_says_why(web: RealNginx, tmp_path: Path) -> None:
    cf = tmp_path / "reload.cf"
    good = f"{HEAD}\nvirtual=10.9.0.1:80\n\treal=127.0.0.1:{web.port} masq 5\n\tchecktype=connect\n"
    cf.write_text(good)
    ipvs = MemoryIPVS()
    director = Director(str(cf), ipvs)

    async def body() -> None:
        await until(lambda: weight(ipvs, VIP, web.port) == 5, 3, "up")
        cf.write_text(good.replace("masq 5", "masq 5\n\tchecktype=bogus\n#lvscheck: rise=x"))
        assert not await director.reload("test")
        last = director.status()["last_reload"]
        assert last["ok"] is False
        assert any(f"{cf}:7" in p and "checktype" in p for p in last["problems"])
        assert weight(ipvs, VIP, web.port) == 5

    run_with(director, body)
