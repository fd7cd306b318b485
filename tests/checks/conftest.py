"""Fixtures shared by the check tests: real servers started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.peers.nginx import Nginx, start_nginx


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """Debian nginx on 127.0.0.1: HTTP, HTTPS (test CA), wrong-name and client-cert listeners."""
    with start_nginx(tmp_path_factory.mktemp("nginx")) as ng:
        yield ng
