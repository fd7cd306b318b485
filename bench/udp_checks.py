"""1,000 checks each of dns (UDP, TCP), radius, sip (UDP, TCP), oracle and ping, 32 at a time.

Starts the test peers on 127.0.0.1 (unbound, FreeRADIUS, SIPp, the test TNS
listener; ping goes to the kernel's own echo responder) and for each check
configuration runs N checks through ``Engine(max_in_flight=C, per_host=C).run_many``.
Reports wall time, checks per second and the director-side CPU per check
(``time.process_time()`` of this process; for the TNS listener, which runs in a
thread of this process, its CPU is included, so that row is an upper bound).
Also the import cost of each check module (``-X importtime``: the extra self time of
``lvscheck.checks.<type>`` over ``import lvscheck, lvscheck.engine.runner``).

    .venv/bin/python bench/udp_checks.py [-n 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.peers.freeradius import PASSWORD, SECRET, USER, start_freeradius
from tests.peers.sipp import start_sipp
from tests.peers.tns_listener import tns_listener
from tests.peers.unbound import start_unbound

from lvscheck import CheckSpec, Engine, State, Target


async def engine_round(
    check: str, port: int, options: dict[str, str], n: int, conc: int
) -> tuple[float, float, int]:
    engine = Engine(max_in_flight=conc, per_host=conc)
    prepared = engine.prepare(CheckSpec(check, Target("127.0.0.1", port), options))
    cpu, wall = time.process_time(), time.perf_counter()
    results = await engine.run_many([prepared] * n)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bad = [r.reason for r in results if r.state is not State.UP]
    if bad:
        print(f"    {len(bad)} not up, e.g. {bad[0]}")
    return wall, cpu, n - len(bad)


def _self_us(code: str) -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    return sum(int(m[1]) for m in re.finditer(r"import time:\s+(\d+) \|", out.stderr))


def import_ms(module: str, runs: int = 7) -> float:
    """Extra import time (ms, median) of ``module`` over the engine it runs in."""
    base = "import lvscheck, lvscheck.engine.runner"
    extra = sorted(_self_us(f"{base}; import {module}") - _self_us(base) for _ in range(runs))
    return extra[runs // 2] / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    n, conc = args.n, args.concurrency
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for d in ("unbound", "radius", "sipp-udp", "sipp-tcp"):
            (tmp / d).mkdir()
        unbound = stack.enter_context(start_unbound(tmp / "unbound"))
        radius = stack.enter_context(start_freeradius(tmp / "radius"))
        sipp_udp = stack.enter_context(start_sipp(tmp / "sipp-udp", "udp"))
        sipp_tcp = stack.enter_context(start_sipp(tmp / "sipp-tcp", "tcp"))
        tns = stack.enter_context(tns_listener())
        rounds: list[tuple[str, str, int, dict[str, str]]] = [
            ("dns udp", "dns", unbound.port, {"request": "www.example.test A", "receive": "127.0.0.9"}),
            ("dns tcp", "dns", unbound.port, {"request": "www.example.test A", "protocol": "tcp"}),
            ("radius accept", "radius", radius.port, {"login": USER, "passwd": PASSWORD, "secret": SECRET}),
            ("radius reject", "radius", radius.port, {"login": USER, "passwd": "bad", "secret": SECRET}),
            ("sip udp", "sip", sipp_udp.port, {}),
            ("sip tcp", "sip", sipp_tcp.port, {"protocol": "tcp"}),
            ("oracle (tns ping)", "oracle", tns.port, {}),
            ("ping 127.0.0.1", "ping", 0, {}),
        ]
        print(f"{n} checks each, {conc} at a time")
        print(f"{'check':<20} {'wall s':>8} {'checks/s':>9} {'CPU ms/check':>13} {'up':>6}")
        for label, check, port, options in rounds:
            wall, cpu, up = asyncio.run(engine_round(check, port, options, n, conc))
            print(f"{label:<20} {wall:8.2f} {n / wall:9.0f} {cpu / n * 1000:13.3f} {up:6d}")
    print("\nextra import cost over `import lvscheck, lvscheck.engine.runner` (ms, median of 7):")
    for t in ("dns", "radius", "sip", "oracle", "ping"):
        print(f"  lvscheck.checks.{t:<8} {import_ms(f'lvscheck.checks.{t}'):7.1f}")
    dnspython = import_ms("dns.message, dns.rdatatype, dns.reversename, dns.rcode")
    print(f"  dnspython (dns.message etc., when a dns check is prepared) {dnspython:7.1f}")


if __name__ == "__main__":
    main()
