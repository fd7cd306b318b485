"""The status page in a real headless Chromium (Debian's chromium + chromium-driver, WebDriver).

A daemon (``--ipvs none``: the IPVS table in memory) checks real nginx servers on
127.0.0.1.  The browser loads the page once; the tests stop and start an nginx, drain
a real from the CLI, and watch the page follow without reloading it (a marker set on
``window`` after the first load must still be there).  Screenshots go to the test's
tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.peers import free_port
from tests.peers.nginx import RealNginx
from tests.web.daemon import Daemon, config, wait
from tests.web.webdriver import Browser, start_browser

pytestmark = pytest.mark.slow

ROW_STATE = """
const tr = [...document.querySelectorAll('tr[data-i]')]
  .find((t) => t.cells[0].textContent === arguments[0]);
if (!tr) return null;
return {state: tr.cells[1].textContent, kernel: tr.cells[3].textContent, age: tr.cells[4].textContent,
        spark: tr.cells[6].textContent, timeline: tr.cells[8].querySelectorAll('span').length,
        reason: tr.cells[9].textContent, marker: window.__notReloaded === true,
        updates: +document.body.dataset.updates || 0};
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = start_browser(tmp_path / "profile", tmp_path / "chromedriver.log")
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture
def reals(tmp_path: Path) -> Iterator[list[RealNginx]]:
    rs = [RealNginx(f"web{i}", "127.0.0.1", free_port(), tmp_path) for i in range(3)]
    for r in rs:
        r.start()
    try:
        yield rs
    finally:
        for r in rs:
            r.stop()


@pytest.fixture
def daemon(tmp_path: Path, reals: list[RealNginx]) -> Iterator[Daemon]:
    cf = tmp_path / "web.cf"
    cf.write_text(config([r.port for r in reals]))
    d = Daemon(tmp_path, cf).start()
    try:
        yield d
    finally:
        d.stop()


def row(browser: Browser, real: RealNginx) -> dict[str, object]:
    got = browser.js(ROW_STATE, f"127.0.0.1:{real.port}")
    assert got is not None, f"no row for 127.0.0.1:{real.port}"
    return dict(got)


def open_page(browser: Browser, daemon: Daemon, reals: list[RealNginx]) -> None:
    browser.get(daemon.url + "/")
    browser.wait_js("return document.body.dataset.rendered", 20, "the first render")
    browser.js("window.__notReloaded = true;")
    for r in reals:
        wait(lambda r=r: row(browser, r)["state"].startswith("up"), 15, f"{r.name} up on the page")


def test_page_follows_a_real_going_down_and_back_without_reload(
    browser: Browser, daemon: Daemon, reals: list[RealNginx], tmp_path: Path
) -> None:
    open_page(browser, daemon, reals)
    first = row(browser, reals[0])
    assert first["kernel"] == "4"
    page = daemon.status()["page"]
    assert page["watchers"] == 1
    assert page["gzip_watchers"] == 1  # Chromium takes the event stream gzipped
    wait(lambda: len(row(browser, reals[0])["spark"]) >= 3, 10, "a sparkline of several checks")
    browser.screenshot(tmp_path / "1-all-up.png")

    reals[0].stop()
    down = wait(
        lambda: (r := row(browser, reals[0]))["state"].startswith("down") and r,
        15,
        "the real down on the page",
    )
    assert down["marker"], "the page was reloaded"
    assert "refused" in str(down["reason"]), down
    assert down["kernel"] == "0"  # quiescent=yes: weight 0 in the (in-memory) IPVS table
    assert int(str(down["timeline"])) >= 2  # unknown->up, up->down
    health = browser.js("return document.getElementById('health').textContent")
    assert "start lag p50" in health
    assert "IPVS write errors" in health
    assert daemon.real(reals[0].port)["state"] == "down"
    browser.screenshot(tmp_path / "2-one-down.png")

    # the phone: narrow window, the same page still readable (no reload either)
    browser.size(390, 844)
    browser.screenshot(tmp_path / "3-phone.png")
    width = browser.js("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width} px wide on a 390 px screen"
    browser.size(1280, 900)

    reals[0].start()
    up = wait(lambda: (r := row(browser, reals[0]))["state"].startswith("up") and r, 15, "the real back up")
    assert up["marker"], "the page was reloaded"
    assert up["kernel"] == "4"
    assert int(str(up["timeline"])) >= 3
    assert int(str(up["updates"])) >= 2  # it came through live updates (down, then up)
    assert browser.js("return +document.body.dataset.snapshots") == 1
    browser.screenshot(tmp_path / "4-back-up.png")


def test_drain_from_the_cli_and_the_page_and_table_follow(
    browser: Browser, daemon: Daemon, reals: list[RealNginx], tmp_path: Path
) -> None:
    open_page(browser, daemon, reals)
    target = reals[1]
    out = daemon.cli("drain", "10.9.0.1:80", f"127.0.0.1:{target.port}")
    assert out.returncode == 0, out.stderr
    assert "drained" in out.stdout
    drained = wait(
        lambda: (r := row(browser, target))["kernel"] == "0" and r, 10, "kernel weight 0 on the page"
    )
    assert "DRAINED" in str(drained["state"])
    assert drained["marker"]
    status = daemon.real(target.port)
    assert status["drained"] is True
    assert status["kernel_weight"] == 0
    assert status["state"] == "up"
    browser.screenshot(tmp_path / "1-drained.png")

    out = daemon.cli("maintenance", "on", "127.0.0.1")  # every real of that host
    assert out.returncode == 0, out.stderr
    wait(
        lambda: all(str(row(browser, r)["state"]).startswith("maint") for r in reals),
        10,
        "all in maintenance",
    )
    browser.screenshot(tmp_path / "2-maintenance.png")
    assert daemon.cli("maintenance", "off", "127.0.0.1").returncode == 0
    assert daemon.cli("undrain", "10.9.0.1:80", f"127.0.0.1:{target.port}").returncode == 0
    back = wait(lambda: (r := row(browser, target))["kernel"] == "4" and r, 10, "weight 4 again")
    assert "DRAINED" not in str(back["state"])
    assert not str(back["state"]).startswith("maint")
    assert back["marker"]
    browser.screenshot(tmp_path / "3-undrained.png")


def test_page_actions_need_a_token_and_follow(
    browser: Browser, reals: list[RealNginx], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ops-alice correct-horse-battery-staple\n")
    tokens.chmod(0o600)
    cf = tmp_path / "act.cf"
    cf.write_text(config([r.port for r in reals]))
    d = Daemon(tmp_path, cf, "--http-tokens", str(tokens)).start()
    try:
        open_page(browser, d, reals)
        target = f"127.0.0.1:{reals[2].port}"
        click = """
const td = [...document.querySelectorAll('td.real')].find((t) => t.textContent === arguments[0]);
td.click();
document.querySelector('#act button[value=' + arguments[1] + ']').click();
"""
        browser.js("document.getElementById('token').value = 'wrong-token-wrong-token';")
        browser.js(click, target, "drain")
        toast = browser.wait_js(
            "const t = document.getElementById('toast'); return !t.hidden && t.textContent", 10, "toast"
        )
        assert "401" in toast
        browser.screenshot(tmp_path / "1-refused.png")
        browser.js("document.getElementById('token').value = 'correct-horse-battery-staple';")
        browser.js(click, target, "drain")
        wait(lambda: "DRAINED" in str(row(browser, reals[2])["state"]), 10, "drained from the page")
        assert row(browser, reals[2])["kernel"] == "0"
        assert d.real(reals[2].port)["drained"]
        browser.screenshot(tmp_path / "2-drained-from-the-page.png")
    finally:
        d.stop()
    log = d.events.read_text()
    assert '"who":"http:ops-alice@127.0.0.1:' in log
    assert "correct-horse" not in log
