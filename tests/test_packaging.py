"""pyproject.toml declares what the requirement files (the README's install commands) install."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _requirements(name: str) -> dict[str, str]:
    """Package name (lower case, extras dropped) -> its requirement line, from one requirements file."""
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        package = re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower()
        found[package] = re.sub(r"\[[^\]]*\]", "", line)
    return found


def _declared(lines: list[str]) -> dict[str, str]:
    return {re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower(): line for line in lines}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_runtime_dependencies_mirror_requirements_txt(project: dict) -> None:
    wanted = _requirements("requirements.txt")
    assert _declared(project["dependencies"]) == wanted


def test_extras_mirror_the_dev_requirements(project: dict) -> None:
    extras = project["optional-dependencies"]
    assert _declared(extras["dev"]) == _requirements("requirements-dev.txt")


def test_every_package_of_the_library_is_found() -> None:
    setuptools = pytest.importorskip("setuptools")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = set(setuptools.find_packages(str(ROOT), **config["packages"]["find"]))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("scoring", "dashboard")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert "scoring.simulators" in found and on_disk <= found
