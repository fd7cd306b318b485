"""``lvscheck demo``: the main job on a built-in default, with no external servers.

Starts two small web servers on 127.0.0.1 (threads of this process) that serve
``/test.html`` with "Still alive", as in the seed how-to; checks both with the
same http check ldirectord users configure; stops one; and checks again, so the
stopped real's weight visibly drops to 0 while the other keeps its weight.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lvscheck.cli.output import nagios_line
from lvscheck.engine import Engine
from lvscheck.model import CheckSpec, Result, Target

__all__ = ["command_demo"]


class _StillAlive(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"Still alive\n" if self.path == "/test.html" else b"not here\n"
        self.send_response(200 if self.path == "/test.html" else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StillAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _specs(servers: list[ThreadingHTTPServer], weights: list[int]) -> list[CheckSpec]:
    options = {"request": "/test.html", "receive": "Still alive", "negotiatetimeout": "2"}
    return [
        CheckSpec("http", Target("127.0.0.1", s.server_address[1], weight=w, virtual="demo-vip:80"), options)
        for s, w in zip(servers, weights, strict=True)
    ]


def _show(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    for r in results:
        print(f"  {r.state.value:<8} weight {r.weight:<3} {r.target.address:<21} {r.reason}")


def command_demo(args: argparse.Namespace) -> int:
    servers = [_serve(), _serve()]
    specs = _specs(servers, [3, 1])
    print("lvscheck demo: two real servers behind one virtual service, serving /test.html")
    print("check: http request=/test.html receive='Still alive' (ldirectord's negotiate check)")

    async def rounds() -> int:
        engine = Engine()
        checks = [engine.prepare(s) for s in specs]
        _show("round 1: both real servers healthy", await engine.run_many(checks))
        port = servers[1].server_address[1]
        servers[1].shutdown()
        servers[1].server_close()
        print(f"\n... stopping the real server on port {port}")
        last: list[Result] = []
        for n in range(args.rounds):
            last = await engine.run_many(checks)
            _show(f"round {n + 2}: after the stop", last)
        print("\nas Nagios would see the stopped one:")
        print("  " + nagios_line(last[1]))
        return 0 if last and last[0].weight == 3 and last[1].weight == 0 else 1

    try:
        return asyncio.run(rounds())
    finally:
        servers[0].shutdown()
