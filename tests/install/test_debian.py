"""The Debian package's pins cover what lvscheck[all] needs, so a driver added to an extra
cannot silently go missing from the .deb (the build only fails for a missing hard dependency)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]  # type: ignore[no-any-return]


def needed() -> list[Requirement]:
    """lvscheck's dependencies and those of every extra that ``all`` names."""
    meta = project()
    extras: dict[str, list[str]] = meta["optional-dependencies"]  # type: ignore[assignment]
    out = [Requirement(r) for r in meta["dependencies"]]  # type: ignore[attr-defined]
    pending = ["all"]
    seen: set[str] = set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "lvscheck":
                pending += sorted(req.extras)
            else:
                out.append(req)
    return out


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "debian" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"debian/requirements.txt: {line!r} is not pinned with =="
            out[canonicalize_name(name)] = version
    return out


def test_every_dependency_of_lvscheck_all_is_pinned_and_satisfied() -> None:
    pinned = pins()
    for req in needed():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} (pyproject.toml) is not in debian/requirements.txt"
        assert req.specifier.contains(pinned[name]), f"{req.name}=={pinned[name]} does not satisfy {req}"


def test_the_package_runs_on_the_python_that_requires_python_allows() -> None:
    control = (ROOT / "debian" / "control").read_text()
    floor = re.search(r"python3 \(>= (\d+\.\d+)~\)", control)
    assert floor, "debian/control: no python3 (>= X.Y~)"
    assert project()["requires-python"] == f">={floor.group(1)}"


def test_every_ocf_agent_is_packaged() -> None:
    install = (ROOT / "debian" / "lvscheck.install").read_text()
    assert "contrib/ocf/* usr/lib/ocf/resource.d/lvscheck/" in install
