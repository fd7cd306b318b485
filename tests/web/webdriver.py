"""A small W3C WebDriver client (stdlib only) for Debian's chromium + chromium-driver.

No browser is downloaded: ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` come
from Debian (.ci/apt-packages.txt).  Chromium runs headless with a fresh profile
directory and without any background network traffic.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.peers import free_port, wait_for_port

__all__ = ["Browser", "start_browser"]

CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class Browser:
    def __init__(self, driver: subprocess.Popen[bytes], port: int, session: str) -> None:
        self.driver = driver
        self.base = f"http://127.0.0.1:{port}/session/{session}"

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def size(self, width: int, height: int) -> None:
        self._call("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def wait_js(self, script: str, timeout: float, what: str) -> Any:
        """Poll ``script`` (a JS expression body with ``return``) until it returns something truthy."""
        end = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < end:
            last = self.js(script)
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"not within {timeout} s in the browser: {what} (last {last!r})")

    def quit(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self._call("DELETE", "", timeout=20)
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
            self.driver.wait()


def start_browser(profile: Path, log: Path) -> Browser:
    """chromedriver on a free loopback port, and one headless Chromium session."""
    driver_bin = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(driver_bin).exists() or not Path(chromium).exists():
        pytest.skip("needs Debian's chromium and chromium-driver")
    port = free_port()
    driver = subprocess.Popen(
        [driver_bin, f"--port={port}", "--allowed-ips=127.0.0.1", f"--log-path={log}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, "127.0.0.1", timeout=30, proc=driver)
    caps = {
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [*CHROME_ARGS, f"--user-data-dir={profile}", "--window-size=1280,900"],
                },
            }
        }
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/session",
        data=json.dumps(caps).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            session = json.loads(resp.read())["value"]["sessionId"]
    except Exception:
        driver.kill()
        driver.wait()
        raise
    return Browser(driver, port, session)
