"""A real gRPC server with the standard health service: grpcio's own ``HealthServicer``.

grpcio (the gRPC project's C core with its Python binding) and grpcio-health-checking
(the reference implementation of grpc.health.v1) come from PyPI through the ``test``
extra.  The server runs in the test process, on grpcio's threads, with a plaintext
port and a TLS port (certificates from a trustme CA, as nginx's); a test switches a
service between SERVING and NOT_SERVING at run time with :meth:`GrpcHealth.set`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

__all__ = ["GrpcHealth", "start_grpc_health"]


class GrpcHealth:
    """A running health server: ``port`` (plaintext), ``tls_port``, ``ca`` (PEM path)."""

    def __init__(self, servicer: Any, port: int, tls_port: int, files: dict[str, Path]) -> None:
        self.servicer = servicer
        self.port = port
        self.tls_port = tls_port
        self.files = files
        self.ca = files["ca"]

    def set(self, service: str, status: str) -> None:
        """Set ``service`` ("" = the whole server) to SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN."""
        from grpc_health.v1 import health_pb2

        self.servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))


@contextlib.contextmanager
def start_grpc_health(workdir: Path) -> Iterator[GrpcHealth]:
    grpc = pytest.importorskip("grpc", reason="grpcio not installed (pip install -e '.[test]')")
    health = pytest.importorskip("grpc_health.v1.health", reason="grpcio-health-checking not installed")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    from tests.peers.nginx import write_certs

    files = write_certs(workdir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    credentials = grpc.ssl_server_credentials([(files["key"].read_bytes(), files["cert"].read_bytes())])
    tls_port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    handle = GrpcHealth(servicer, port, tls_port, files)
    handle.set("", "SERVING")
    try:
        yield handle
    finally:
        server.stop(grace=None).wait(5)


if __name__ == "__main__":  # a server in its own process (bench/grpc_agent_cpu.py): ports on stdout
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lvscheck-grpc-") as tmp, start_grpc_health(Path(tmp)) as server:
        print(server.port, server.tls_port, server.ca, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
