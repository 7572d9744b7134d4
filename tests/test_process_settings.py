"""Importing the library changes nothing global; the entry points set their process's settings.

`scoring.process_settings.configure_process` is called by the command line, the
server and every dashboard page, and by nothing on import (issue 27, item 5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from scoring import cli
from scoring.errors import ScoringInputError
from scoring.process_settings import PROCESS_ENVIRONMENT, configure_process

ROOT = Path(__file__).resolve().parent.parent

IMPORT_EVERYTHING = """
import importlib, json, os, pkgutil
before = dict(os.environ)
import scoring, scoring.models
names = sorted(info.name for info in pkgutil.walk_packages(scoring.__path__, "scoring."))
skipped = {}
for name in names:
    if name == "scoring.__main__":
        continue  # running it is the command line, the entry point
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional dependency that is not installed here
        skipped[name] = str(exc)
after = dict(os.environ)
changed = {key: [before.get(key), after.get(key)] for key in {*before, *after} if before.get(key) != after.get(key)}
print(json.dumps({"modules": len(names), "skipped": skipped, "changed": changed}))
"""


def _clean_environment() -> dict[str, str]:
    """This process's environment without the variables an entry point sets (the test session set them)."""
    return {key: value for key, value in os.environ.items() if key not in PROCESS_ENVIRONMENT}


def test_importing_every_module_of_the_library_leaves_the_environment_unchanged() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=ROOT, env=_clean_environment(), capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.splitlines()[-1])
    assert report["modules"] > 30
    assert report["skipped"] == {}
    assert report["changed"] == {}


def test_configure_process_sets_defaults_and_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {"OMP_WAIT_POLICY": "ACTIVE"}
    monkeypatch.setattr(os, "environ", environment)
    configure_process()
    assert environment == {**PROCESS_ENVIRONMENT, "OMP_WAIT_POLICY": "ACTIVE"}
    assert environment["HF_HUB_OFFLINE"] == "1" and environment["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_the_command_line_sets_its_process_settings_first(monkeypatch: pytest.MonkeyPatch) -> None:
    environment: dict[str, str] = {}
    monkeypatch.setattr(os, "environ", environment)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert environment == PROCESS_ENVIRONMENT


def test_the_server_sets_its_process_settings_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from scoring.server import serve

    environment: dict[str, str] = {}
    monkeypatch.setattr(os, "environ", environment)
    with pytest.raises(ScoringInputError, match="port"):
        serve(port=0)  # set before the arguments are checked
    assert environment == PROCESS_ENVIRONMENT


@pytest.mark.parametrize("page", ["app.py", "pages/2_Spot_check.py"])
def test_every_dashboard_page_sets_its_process_settings(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    """A browser may open any page first: each one is the dashboard process's entry point."""
    environment = {key: value for key, value in os.environ.items() if key not in PROCESS_ENVIRONMENT}
    monkeypatch.setattr(os, "environ", environment)
    AppTest.from_file(str(ROOT / page), default_timeout=60).run()
    assert {key: environment.get(key) for key in PROCESS_ENVIRONMENT} == PROCESS_ENVIRONMENT


LOAD_WITHOUT_NETWORK = """
import json, os, socket

def refuse(*args, **kwargs):
    raise OSError("the test forbids network access")

socket.socket.connect = refuse
socket.create_connection = refuse
from transformers.utils import logging as transformers_logging
from scoring.simulators.embedding import load_model
bars_before = transformers_logging.is_progress_bar_enabled()
model = load_model()
shape = list(model.encode(["a test"], normalize_embeddings=True).shape)
print(json.dumps({"shape": shape, "bars": [bars_before, transformers_logging.is_progress_bar_enabled()],
                  "offline": os.environ.get("HF_HUB_OFFLINE")}))
"""


@pytest.mark.model
def test_a_packaged_model_loads_from_local_files_only_without_the_hub_variables() -> None:
    """A program that imports the library and never calls configure_process still loads offline, and the
    library leaves transformers' progress bars as they were."""
    ran = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_NETWORK],
        cwd=ROOT, env=_clean_environment(), capture_output=True, text=True, timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.splitlines()[-1])
    assert report == {"shape": [1, 384], "bars": [True, True], "offline": None}
