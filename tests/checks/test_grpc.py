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
from tests.peers.grpc_health import GrpcHealth, start_grpc_health
from tests.peers.hostile import script, serve, stall
from tests.peers.nginx import Nginx

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


def test_finding_the_grpc_check_type_does_not_import_hpack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lvscheck; h = lvscheck.PluginHost(entry_points=False); h.check_type('grpc');"
        "print('hpack' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


# -- HTTP/2 framing corner cases and hostile servers ---------------------------------------------
# Hand-written servers (fault injection): grpcio never sends CONTINUATION, padding or RST_STREAM
# on demand.  Header blocks are encoded with hpack's own Encoder.


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


SETTINGS = frame(4, 0, 0, b"")


def block(*headers: tuple[str, str]) -> bytes:
    import hpack

    return bytes(hpack.Encoder().encode(list(headers)))


OK_HEAD = (":status", "200"), ("content-type", "application/grpc")


def message(status: int) -> bytes:
    body = b"\x08" + bytes((status,))
    return b"\x00" + len(body).to_bytes(4, "big") + body


def against(server_bytes: bytes, **options: Any) -> Result:
    with serve(script(server_bytes)) as port:
        return run(port, negotiatetimeout="2", **options)


def test_padding_priority_and_continuation() -> None:
    trailers = block(*OK_HEAD, ("grpc-status", "14"), ("grpc-message", "overloaded%20now"))
    first, rest = trailers[:5], trailers[5:]
    headers = frame(1, 0x8 | 0x20 | 0x1, 1, b"\x03" + b"\x00\x00\x00\x00\x10" + first + b"\x00\x00\x00")
    r = against(SETTINGS + headers + frame(9, 0x4, 1, rest))
    assert (r.state, r.reason) == (State.DOWN, "gRPC status UNAVAILABLE: 'overloaded now'")


def test_ping_and_window_update_between_frames() -> None:
    reply = (
        SETTINGS
        + frame(6, 0, 0, b"12345678")  # PING
        + frame(1, 0x4, 1, block(*OK_HEAD))
        + frame(8, 0, 0, b"\x00\x00\x10\x00")  # WINDOW_UPDATE
        + frame(0, 0x8, 1, b"\x02" + message(1) + b"\x00\x00")  # padded DATA
        + frame(1, 0x4 | 0x1, 1, block(("grpc-status", "0")))
    )
    r = against(reply)
    assert (r.state, r.reason) == (State.UP, "server SERVING")


def test_ping_is_acknowledged() -> None:
    import asyncio

    async def waits_for_the_ack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SETTINGS + frame(6, 0, 0, b"pingpong"))
        seen = b""
        while frame(6, 1, 0, b"pingpong") not in seen:
            seen += await reader.read(4096)
        writer.write(
            frame(1, 0x4, 1, block(*OK_HEAD))
            + frame(0, 0, 1, message(2))
            + frame(1, 0x5, 1, block(("grpc-status", "0")))
        )
        await asyncio.sleep(3600)

    with serve(waits_for_the_ack) as port:
        r = run(port, negotiatetimeout="2")
    assert (r.state, r.reason) == (State.DOWN, "server NOT_SERVING")


@pytest.mark.parametrize(
    ("server_bytes", "reason"),
    [
        (
            SETTINGS + frame(3, 0, 1, b"\x00\x00\x00\x07"),
            "the server reset the stream (HTTP/2 REFUSED_STREAM)",
        ),
        (
            SETTINGS + frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x0b"),
            "the server ended the HTTP/2 connection (GOAWAY ENHANCE_YOUR_CALM)",
        ),
        (SETTINGS + b"\x10\x00\x00\x00\x00\x00\x00\x00\x01", "a frame of 1048576 bytes, above 16384"),
        (SETTINGS + frame(1, 0, 1, b"") + SETTINGS, "a header block without its CONTINUATION"),
        (SETTINGS + frame(9, 0x4, 1, b""), "CONTINUATION without HEADERS"),
        (SETTINGS + frame(1, 0x4, 1, b"\xff\xff\xff"), "not a valid HTTP/2 header block"),
        (
            SETTINGS + frame(1, 0x5, 1, block((":status", "404"), ("content-type", "text/html"))),
            "HTTP/2 status 404: not a gRPC reply",
        ),
        (
            SETTINGS + frame(1, 0x4, 1, block(*OK_HEAD)) + frame(0, 0x1, 1, message(1)),
            "gRPC reply without a grpc-status",
        ),
        (
            SETTINGS
            + frame(1, 0x4, 1, block(*OK_HEAD))
            + frame(0, 0, 1, b"\x00\x00\x00\x00\x09\x08")
            + frame(1, 0x5, 1, block(("grpc-status", "0"))),
            "truncated gRPC message (1 of 9 bytes)",
        ),
    ],
)
def test_hostile_frames(server_bytes: bytes, reason: str) -> None:
    r = against(server_bytes)
    assert r.state is State.DOWN
    assert reason in r.reason, r.reason


def test_endless_data_is_bounded() -> None:
    endless = SETTINGS + frame(1, 0x4, 1, block(*OK_HEAD)) + frame(0, 0, 1, b"x" * 16384) * 8
    r = against(endless)
    assert (r.state, r.reason) == (State.DOWN, "reply larger than 64 KiB waiting for the gRPC reply")


def test_tls_server_without_h2(nginx: Nginx) -> None:
    r = run(nginx.https_port, tls="yes", cafile=str(nginx.cafile), virtualhost="localhost")
    assert (r.state, r.reason) == (
        State.DOWN,
        "the server refused HTTP/2 in the TLS handshake (ALPN h2: no application protocol)",
    )
