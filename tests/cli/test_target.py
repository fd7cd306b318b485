"""``HOST:PORT`` on the command line: a huge or odd port is a usage error, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lvscheck.cli.target import parse_hostport
from lvscheck.errors import TargetError


@pytest.mark.parametrize("port", ["9" * 5000, "²", "٣", "65536", "0", "0" * 5000])
def test_a_port_that_is_not_1_to_65535_in_ascii_digits_is_refused(port: str) -> None:
    with pytest.raises(TargetError, match=r"is not a number 1\.\.65535"):
        parse_hostport(f"127.0.0.1:{port}")


def test_leading_zeros_are_read_whatever_their_number() -> None:
    assert parse_hostport("127.0.0.1:" + "0" * 5000 + "80") == ("127.0.0.1", 80)


def test_a_long_port_is_shortened_in_the_message() -> None:
    with pytest.raises(TargetError) as caught:
        parse_hostport("127.0.0.1:" + "9" * 5000)
    assert len(str(caught.value)) < 300
    assert "(5000 characters)" in str(caught.value)


def test_run_with_a_5000_digit_port_exits_3_without_a_traceback() -> None:
    """Was: ValueError: Exceeds the limit (4300 digits) for integer string conversion."""
    done = subprocess.run(
        [sys.executable, "-m", "lvscheck", "run", "connect", "127.0.0.1:" + "9" * 5000],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "is not a number 1..65535" in done.stderr
