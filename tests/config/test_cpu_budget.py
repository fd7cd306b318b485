"""``#lvscheck: cpubudget=SECONDS``: the CPU budget of checks, for every virtual or one of them.

It is a check option common to every check type (like ``checktimeout``), so the config's
``#lvscheck:`` lines carry it: at column 0 for every virtual, indented for one; a bad
value is an error at the line that set it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lvscheck.config.prepare import read
from lvscheck.errors import ConfigError

CONFIG = """checktimeout=3
#lvscheck: cpubudget=0.8

virtual=127.0.0.1:80
\treal=127.0.0.2:80 gate
\tservice=http

virtual=127.0.0.1:81
\treal=127.0.0.2:81 gate
\tservice=http
\t#lvscheck: cpubudget=0
"""


def _budgets(path: Path) -> dict[int | None, float | None]:
    prepared = read(str(path))
    return {p.check.port: p.check.cpu_budget for p in prepared.plans if p.check is not None}


def test_column_zero_sets_every_virtual_and_an_indented_line_one(tmp_path: Path) -> None:
    cf = tmp_path / "ldirectord.cf"
    cf.write_text(CONFIG)
    assert _budgets(cf) == {80: 0.8, 81: 0.0}  # 0: this virtual's checks are not metered


def test_without_the_directive_the_engine_decides(tmp_path: Path) -> None:
    cf = tmp_path / "ldirectord.cf"
    cf.write_text(CONFIG.replace("#lvscheck: cpubudget=0.8\n", "").replace("\t#lvscheck: cpubudget=0\n", ""))
    assert _budgets(cf) == {80: None, 81: None}  # the engine's: --check-cpu-budget, else 0.5 s


@pytest.mark.parametrize("value", ["abc", "-1", "3601", "nan"])
def test_a_bad_value_is_an_error_at_its_line(tmp_path: Path, value: str) -> None:
    cf = tmp_path / "ldirectord.cf"
    cf.write_text(CONFIG.replace("cpubudget=0.8", f"cpubudget={value}"))
    with pytest.raises(ConfigError) as caught:
        read(str(cf))
    text = "\n".join(str(p) for p in caught.value.problems)
    assert f"{cf}:2:" in text, text
    assert "cpubudget" in text, text
    assert "expected seconds of CPU" in text, text
