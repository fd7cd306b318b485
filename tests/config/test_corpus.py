"""The parser on a corpus of configs: exact models, exact errors and warnings.

Each ``corpus/NAME.cf`` starts with ``# expect: valid|invalid|invalid-lvscheck-only``;
``corpus/NAME.expected.json`` holds what lvscheck must make of it.  Regenerate
the golden files with ``LVSCHECK_REGEN=1 pytest tests/config`` and review the diff.

The same corpus is run through Debian's real ldirectord (``ldirectord FILE status``
parses the whole file: exit 2 on a config error, 3 when it is valid and stopped),
so every "valid" file is one ldirectord accepts and every "invalid" one it rejects,
at a line where lvscheck reports an error too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from tests.config._dump import dump
from tests.peers import require_binary

from lvscheck.config import parse_text
from lvscheck.errors import ConfigError

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.cf"))
REGEN = os.environ.get("LVSCHECK_REGEN") == "1"


def _expect(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode().strip()
    m = re.fullmatch(r"# expect: (valid|invalid|invalid-lvscheck-only)", first)
    assert m, f"{path.name}: first line must be '# expect: valid|invalid|invalid-lvscheck-only'"
    return m[1]


def _outcome(path: Path) -> dict[str, object]:
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    try:
        config = parse_text(text, path.name)
    except ConfigError as exc:
        return {"errors": list(exc.problems)}
    return {"warnings": [str(w) for w in config.warnings], "config": dump(config)}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus(path: Path) -> None:
    outcome = _outcome(path)
    golden = path.with_suffix(".expected.json")
    if REGEN:
        golden.write_text(json.dumps(outcome, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    expected = json.loads(golden.read_text())
    assert outcome == expected
    assert ("errors" in outcome) == (_expect(path) != "valid")


@pytest.mark.peer
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_against_ldirectord(path: Path) -> None:
    """Debian's ldirectord takes the same accept/reject decision (name lookups aside)."""
    ldirectord = require_binary("ldirectord", "/usr/sbin/ldirectord")
    expect = _expect(path)
    if expect == "invalid-lvscheck-only":
        pytest.skip("lvscheck-only errors: host names lvscheck does not resolve, #lvscheck: lines")
    proc = subprocess.run(
        [ldirectord, str(path), "status"], capture_output=True, text=True, timeout=60, check=False
    )
    if expect == "valid":
        assert proc.returncode == 3, proc.stderr  # "stopped": the file parsed
        return
    assert proc.returncode == 2, proc.stdout + proc.stderr
    m = re.search(r"at line (\d+): (.*)", proc.stderr)
    assert m, proc.stderr
    ours = {int(p.split(":")[1]) for p in _outcome(path)["errors"]}  # type: ignore[union-attr]
    if "duplicate virtual server" in m[2]:
        return  # ldirectord names the line that ended the second block; we name its virtual= line
    assert int(m[1]) in ours, f"ldirectord: line {m[1]}: {m[2]}; lvscheck: lines {sorted(ours)}"
