"""pyproject.toml declares what the requirement files (the README's install commands) install, and the
installed project has a working `scoring` command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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
        if not line or line.startswith(("-r", "-e")):
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


def test_the_readme_install_installs_the_project_itself() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    first = next(line for line in lines if line and not line.startswith("#"))
    assert first == "-e ."
    assert "pip install -r requirements.txt" in (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]


def test_pyproject_declares_the_command_and_reads_the_version_from_the_package(project: dict) -> None:
    import scoring

    assert project["scripts"] == {"scoring": "scoring.cli:main"}
    assert project["dynamic"] == ["version"]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["dynamic"]["version"] == {"attr": "scoring.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", scoring.__version__)


def test_an_installed_project_runs_as_scoring_from_another_folder(tmp_path: Path) -> None:
    """Build the wheel, install it into a fresh virtualenv (its dependencies come from this environment,
    offline), and run the `scoring` command where the repository is not."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("scoring", "dashboard"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def scoring(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "scoring"), *args], cwd=elsewhere, capture_output=True, text=True, timeout=300
        )

    import scoring as here

    version = scoring("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"scoring {here.__version__}"
    shown = scoring("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: scoring ")
    scored = scoring("score", str(ROOT / "examples" / "fast_animals.json"), "-e", "x", "--simulator", "lexical")
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.splitlines()[0].split()[:3] == ["rank", "explanation", "score"]
    # the installed package is the one that ran, not the checkout
    where = subprocess.run(
        [str(python), "-c", "import scoring; print(scoring.__file__)"], cwd=elsewhere, capture_output=True, text=True
    )
    assert str(venv) in where.stdout
    # its simulation cache is the user's cache folder, never inside the installed package (site-packages)
    user_environment = {key: value for key, value in os.environ.items() if not key.startswith("SCORING_")}
    user_environment["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    cache = subprocess.run(
        [str(python), "-c", "from scoring import default_cache_directory; print(default_cache_directory())"],
        cwd=elsewhere, env=user_environment, capture_output=True, text=True,
    )
    assert cache.stdout.strip() == str(tmp_path / "xdg" / "scoring" / "simulations"), cache.stderr


def test_the_readme_first_command_gives_a_scoring_command_that_runs_from_another_folder(tmp_path: Path) -> None:
    """`pip install -r requirements.txt` (the README's first command, offline: the requirements are found in this
    environment) installs the project in place, and `scoring` then runs where the repository is not."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python), "install", "-q",
         "--no-index", "--no-build-isolation", "-r", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = str(venv / "bin" / "scoring")
    version = subprocess.run([command, "--version"], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("scoring "), version.stderr
    scored = subprocess.run(
        [command, "score", str(ROOT / "examples" / "fast_animals.json"), "-e", "fast animals", "--simulator",
         "lexical", "--json"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300,
    )
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["results"][0]["simulator"] == "lexical:stem-match"
    module = subprocess.run(
        [str(python), "-m", "scoring", "--help"], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert module.returncode == 0 and module.stdout.startswith("usage: python -m scoring ")
