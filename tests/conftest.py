"""Fixtures for the whole suite.

``check`` runs one check through lvscheck's public API (``lvscheck.run_checks``)
against one target and returns its Result; every check type's tests use it
instead of a helper of their own.  A module whose reals have another configured
weight overrides it::

    @pytest.fixture(scope="module")
    def check(check: Checks) -> Checks:
        return check.weighted(100)
"""

from __future__ import annotations

import pytest
from tests.peers import sweep_leftovers
from tests.runcheck import Checks


@pytest.fixture(scope="session")
def check() -> Checks:
    """Run one check against 127.0.0.1 (or ``host=``): ``check("ftp", port, login="x")``."""
    return Checks()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove the server directories that a killed earlier run left under /tmp."""
    sweep_leftovers()
