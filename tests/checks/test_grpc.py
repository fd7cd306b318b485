"""The grpc check against a real gRPC server: grpcio with its reference health servicer.

The server (tests/peers/grpc_health.py) is switched between SERVING and
NOT_SERVING while the tests run.  Hand-written servers appear only for faults no
real server shows on demand (one that accepts and never answers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers import free_port
from tests.peers.faults import serve
from tests.peers.grpc_health import GrpcHealth, start_grpc_health
from tests.peers.nginx import Nginx
from tests.peers.textfaults import script, stall

import lvscheck
from lvscheck import CheckSpec, OptionError, Result, State, Target
from lvscheck.checks.grpc import decode_status, encode_request


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcHealth]:
    with start_grpc_health(tmp_path_factory.mktemp("grpc")) as server:
        yield server


def run(port: int, host: str = "127.0.0.1", **options: Any) -> Result:
    [result] = lvscheck.run_checks([CheckSpec("grpc", Target(host, port), options)])
    return result


def test_whole_server_serving(grpc_server: GrpcHealth) -> None:
    r = run(grpc_server.port)
    assert (r.state, r.weight, r.reason) == (State.UP, 1, "server SERVING")


def test_service_switched_at_run_time(grpc_server: GrpcHealth) -> None:
    grpc_server.set("web", "SERVING")
    r = run(grpc_server.port, service="web")
    assert (r.state, r.reason) == (State.UP, "service 'web' SERVING")
    grpc_server.set("web", "NOT_SERVING")
    r = run(grpc_server.port, service="web")
    assert (r.state, r.reason) == (State.DOWN, "service 'web' NOT_SERVING")
    assert r.details["status"] == "NOT_SERVING"
    grpc_server.set("web", "SERVING")
    assert run(grpc_server.port, service="web").state is State.UP


@pytest.mark.parametrize("status", ["UNKNOWN", "SERVICE_UNKNOWN"])
def test_other_statuses_are_down(grpc_server: GrpcHealth, status: str) -> None:
    grpc_server.set("odd", status)
    r = run(grpc_server.port, service="odd")
    assert (r.state, r.reason) == (State.DOWN, f"service 'odd' {status}")


def test_unknown_service(grpc_server: GrpcHealth) -> None:
    r = run(grpc_server.port, service="nosuch")
    assert r.state is State.DOWN
    assert r.reason.startswith("service 'nosuch' unknown to the server (gRPC NOT_FOUND)")


def test_server_without_health_service() -> None:
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        r = run(port)
    finally:
        server.stop(None).wait(5)
    assert r.state is State.DOWN
    assert r.reason.startswith("no grpc.health.v1.Health service (gRPC UNIMPLEMENTED)")


def test_tls_verified_like_https(grpc_server: GrpcHealth) -> None:
    ca = str(grpc_server.ca)
    r = run(grpc_server.tls_port, tls="yes", cafile=ca)
    assert (r.state, r.reason) == (State.UP, "server SERVING")
    r = run(grpc_server.tls_port, host="127.0.0.1", tls="yes", cafile=ca, virtualhost="localhost")
    assert r.state is State.UP
    # the system store does not trust the test CA
    r = run(grpc_server.tls_port, tls="yes")
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted")
    # a name the certificate does not carry
    r = run(grpc_server.tls_port, tls="yes", cafile=ca, virtualhost="wrong.example.test")
    assert r.state is State.DOWN
    assert r.reason.startswith("TLS certificate not accepted")
    r = run(grpc_server.tls_port, tls="yes", tlsverify="no")
    assert r.state is State.UP


def test_tls_option_errors(tmp_path: Any) -> None:
    with pytest.raises(OptionError, match="cafile="):
        run(1, tls="yes", cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(OptionError, match="tls='maybe' is not valid"):
        run(1, tls="maybe")
    with pytest.raises(OptionError, match="no default port"):
        lvscheck.run_checks([CheckSpec("grpc", Target("127.0.0.1"))])


def test_plaintext_to_the_tls_port(grpc_server: GrpcHealth) -> None:
    t0 = time.monotonic()
    r = run(grpc_server.tls_port, negotiatetimeout="1")
    assert time.monotonic() - t0 < 2.5
    assert r.state is State.DOWN


def test_tls_to_the_plaintext_port(grpc_server: GrpcHealth) -> None:
    r = run(grpc_server.port, tls="yes", tlsverify="no", negotiatetimeout="1")
    assert r.state is State.DOWN
    assert "TLS" in r.reason or "timed out" in r.reason or "closed" in r.reason


def test_http1_server_is_not_grpc(nginx: Nginx) -> None:
    r = run(nginx.http_port)  # nginx answers the HTTP/2 preface with an HTTP/1.1 400
    assert (r.state, r.reason) == (
        State.DOWN,
        "not an HTTP/2 reply (no SETTINGS frame first): 'HTTP/1.1 400 Bad Request\\r\\nServer: nginx/'",
    )
    with serve(script(b"", then="close")) as port:
        r = run(port)
    assert (r.state, r.reason) == (
        State.DOWN,
        "connection closed by the server without a reply (no HTTP/2 here?)",
    )


def test_refused() -> None:
    r = run(free_port())
    assert (r.state, r.reason) == (State.DOWN, "connection refused")


def test_one_deadline() -> None:
    with serve(stall) as port:
        t0 = time.monotonic()
        r = run(port, negotiatetimeout="0.4")
        assert time.monotonic() - t0 < 1.5
    assert r.state is State.DOWN
    assert r.reason == "timed out after 0.4 s waiting for the gRPC reply"


def test_messages_match_grpcio_protobuf() -> None:
    from grpc_health.v1 import health_pb2

    for service in ("", "web", "x" * 300, "naïve"):
        expected = health_pb2.HealthCheckRequest(service=service).SerializeToString()
        framed = encode_request(service)
        assert framed[5:] == expected
        assert framed[:5] == b"\x00" + len(expected).to_bytes(4, "big")
    for status in range(4):
        body = health_pb2.HealthCheckResponse(status=status).SerializeToString()
        assert decode_status(body) == status
    assert decode_status(b"\x12\x03abc\x08\x01") == 1  # an unknown field first is skipped
    with pytest.raises(ValueError, match="truncated"):
        decode_status(b"\x08")


def test_an_http_one_shot_imports_neither_grpc_nor_agent() -> None:
    """``lvscheck run http`` (started once per check by ldirectord) pays nothing for grpc or agent."""
    import json
    import subprocess
    import sys
    import textwrap

    code = f"""
        import json, sys
        from lvscheck.cli import main
        code = main(["run", "http", "127.0.0.1:{free_port()}"])
        mods = ("lvscheck.checks.grpc", "lvscheck.checks.agent", "h2", "hpack", "grpc")
        print(json.dumps([code, [m for m in mods if m in sys.modules]]))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.splitlines()[-1]) == [2, []]


def test_finding_the_grpc_check_type_does_not_import_h2() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lvscheck; h = lvscheck.PluginHost(entry_points=False); h.check_type('grpc');"
        "print('h2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
