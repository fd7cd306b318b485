"""The docs pages of the smtp/ftp/mail/nntp/simpletcp/http_proxy check types match the code.

Each full page names every option its check type accepts (in backticks) and its
default port; the short pages (submission, imaps, pops) name their port and the
page they share the rest with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lvscheck

DOCS = Path(__file__).resolve().parents[2] / "docs" / "checks"
FULL = ["smtp", "ftp", "imap", "pop", "nntp", "simpletcp", "http_proxy", "agent", "grpc", "external"]
SHORT = {"submission": "smtp", "imaps": "imap", "pops": "pop"}


@pytest.mark.parametrize("name", FULL)
def test_full_page_lists_every_option(name: str) -> None:
    page = (DOCS / f"{name}.md").read_text()
    check = lvscheck.PluginHost(entry_points=False).check_type(name)
    missing = [o.name for o in check.all_options() if f"`{o.name}`" not in page]
    assert not missing, f"docs/checks/{name}.md does not document {missing}"
    assert page.startswith(f"# `{name}`")
    if check.default_port is not None:
        assert str(check.default_port) in page


@pytest.mark.parametrize(("name", "base"), SHORT.items())
def test_short_page_names_its_port_and_base(name: str, base: str) -> None:
    page = (DOCS / f"{name}.md").read_text()
    check = lvscheck.PluginHost(entry_points=False).check_type(name)
    assert page.startswith(f"# `{name}`")
    assert str(check.default_port) in page
    assert f"({base}.md" in page
    base_options = {o.name for o in lvscheck.PluginHost(entry_points=False).check_type(base).all_options()}
    assert {o.name for o in check.all_options()} == base_options
