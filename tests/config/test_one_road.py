"""One road: ``check-config``, ``daemon --check`` and ``run --config`` give the same verdict.

Every config of the corpus, plus generated variants (each directive, each
feature lvscheck does not support, each kind of error), goes through the three
commands as an operator runs them; each must accept or refuse the file alike
and name the same problems (errors and warnings, ``file:line``).

``run --config`` runs the checks of an accepted file, and the corpus names
10.x/192.168.x reals: it runs in a network namespace of its own with no
interface up (``unshare -n``), so every probe fails at once and no packet
leaves the machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
LVSCHECK = [sys.executable, "-m", "lvscheck"]

BASE = "checktimeout=1\n\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n"

#: name -> the text of a generated variant (BASE plus something)
VARIANTS: dict[str, str] = {
    # every directive an operator relies on, accepted
    **{
        f"global-{line.split('=')[0]}": line + "\n" + BASE
        for line in (
            "checkinterval=5",
            "autoreload=yes",
            'callback="/bin/true"',
            "fallback=127.0.0.1:80",
            'fallbackcommand="/bin/true"',
            'logfile="local0"',
            "quiescent=yes",
            "readdquiescent=yes",
            "cleanstop=no",
            'emailalert="root@localhost"',
            "emailalertfreq=60",
            "emailalertstatus=starting,running",
            "maintenancedir=/nonexistent/maint",
            "failurecount=3",
        )
    },
    **{
        f"block-{line.split('=')[0]}": BASE + "\t" + line + "\n"
        for line in (
            "scheduler=wlc",
            "persistent=300",
            "protocol=tcp",
            'request="/index.html"',
            'receive="ok"',
            "virtualhost=www.example.com",
            "httpmethod=HEAD",
            "checkport=8080",
            "monitorfile=/dev/null",
            "netmask=255.255.255.0",
        )
    },
    # what lvscheck does not do: one warning each, the file runs
    "unsupported-fork": "fork=yes\n" + BASE,
    "unsupported-supervised": "supervised=yes\n" + BASE,
    "unsupported-execute": 'execute="other.cf"\n' + BASE,
    "unsupported-external-perl": BASE.replace(
        "service=http", 'checktype=external-perl\n\tcheckcommand="/x.pl"'
    ),
    "duplicate-real": BASE + "\treal=10.0.0.2:80 gate\n",
    # #lvscheck: check=connect where the virtual has request=: the option is not for connect
    "lvscheck-connect-with-request": "#lvscheck: check=connect\n" + BASE + '\trequest="/x"\n\treceive="y"\n',
    # each kind of error
    "error-syntax": BASE + "\tthis is not a directive\n",
    "error-value": BASE + "\tpersistent=soon\n",
    "error-regex": BASE + '\trequest="/"\n\treceive="(unclosed"\n',
    "error-check-option": BASE + "\t#lvscheck: nosuchoption=1\n",
    "error-checktype": BASE + "\t#lvscheck: check=nosuchcheck\n",
    "error-duplicate-virtual": BASE + "\n" + BASE.split("\n", 2)[2],
}

FIVE_ERRORS = (
    "checktimeout=1\n"
    "\n"
    "virtual=10.0.0.1:80\n"
    "\treal=10.0.0.2:80 gate\n"
    "\tservice=http\n"
    "\tpersistent=soon\n"  # 6: a bad value
    "\tbogus directive\n"  # 7: syntax
    '\treceive="(unclosed"\n'  # 8: a regex that does not compile
    "\t#lvscheck: nosuchoption=1\n"  # 9: a check option http does not have
    "\treal=10.0.0.2:80 gate\n"  # 10: a duplicate real (a warning, shown beside the errors)
    "\n"
    "virtual=10.0.0.1:80\n"  # 12: a duplicate virtual
    "\treal=10.0.0.3:80 gate\n"
    "\tservice=http\n"
)


def _files(tmp: Path) -> list[Path]:
    files = sorted(CORPUS.glob("*.cf"))
    for name, text in VARIANTS.items():
        path = tmp / f"{name}.cf"
        path.write_text(text)
        files.append(path)
    return files


def _lines(text: str, marker: str) -> list[str]:
    return sorted({m[1] for m in re.finditer(rf"{re.escape(marker)} (.+)", text)})


def check_config(path: Path) -> tuple[bool, list[str], list[str]]:
    p = subprocess.run([*LVSCHECK, "check-config", "--json", str(path)], capture_output=True, text=True)
    doc = json.loads(p.stdout)
    assert p.returncode == (0 if doc["ok"] else 1)
    return doc["ok"], sorted(set(doc["errors"])), sorted(set(doc["warnings"]))


def daemon_check(path: Path) -> tuple[bool, list[str], list[str]]:
    p = subprocess.run(
        [*LVSCHECK, "daemon", "--check", "--config", str(path), "--control", ""],
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode in (0, 3), p.stderr
    ok = p.returncode == 0
    warnings = _lines(p.stderr, "lvscheck.daemon: config:") if ok else _lines(p.stderr, "[warn]")
    return ok, _lines(p.stderr, "[error]"), warnings


def run_config(path: Path) -> tuple[bool, list[str], list[str]]:
    p = subprocess.run(
        ["unshare", "-n", *LVSCHECK, "-v", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode != 3, _lines(p.stderr, "[error]"), _lines(p.stderr, "[warn]")


@pytest.fixture(scope="module")
def network_namespace() -> None:
    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n is not permitted here: run --config would send the corpus's traffic")


@pytest.mark.slow
@pytest.mark.usefixtures("network_namespace")
def test_three_commands_one_verdict(tmp_path: Path) -> None:
    files = _files(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        verdicts = {
            f: (pool.submit(check_config, f), pool.submit(daemon_check, f), pool.submit(run_config, f))
            for f in files
        }
    seen_ok = seen_refused = 0
    for path, (a, b, c) in verdicts.items():
        cc, dc, rc = a.result(), b.result(), c.result()
        assert cc == dc, f"{path.name}: check-config {cc} != daemon --check {dc}"
        assert cc == rc, f"{path.name}: check-config {cc} != run --config {rc}"
        seen_ok += cc[0]
        seen_refused += not cc[0]
        if path.stem.startswith("error-"):
            assert not cc[0], path.name
        if path.stem.startswith(("unsupported-", "duplicate-", "lvscheck-connect")):
            assert cc[0], f"{path.name} must run: {cc[1]}"
            assert cc[2], f"{path.name} must warn"
    assert seen_ok > 20
    assert seen_refused > 10


def test_five_errors_in_one_run(tmp_path: Path) -> None:
    cf = tmp_path / "five.cf"
    cf.write_text(FIVE_ERRORS)
    ok, errors, warnings = check_config(cf)
    assert not ok
    assert sorted(int(e.split(":")[1]) for e in errors) == [6, 7, 8, 9, 12], errors
    assert [int(w.split(":")[1]) for w in warnings if "duplicate real" in w] == [10]
    assert daemon_check(cf) == (ok, errors, warnings)
