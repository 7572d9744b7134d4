"""Shared fixtures: every test gets its own cache directory and settings file, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.process_settings import configure_process
from scoring.records import ActivationRecord

DATA = Path(__file__).parent / "data"

# The test session is an entry point too: the model tests run as the command line runs them.
configure_process()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SCORING_CACHE_DIR", str(directory))
    # The user's own default simulator and judge must not change what a test runs.
    monkeypatch.setenv("SCORING_CONFIG", str(tmp_path / "config" / "config.toml"))
    monkeypatch.delenv("SCORING_SIMULATOR", raising=False)
    monkeypatch.delenv("SCORING_JUDGE", raising=False)
    return directory


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def seed_records() -> list[ActivationRecord]:
    """The seed example: 'fast animals' on two short sequences."""
    return [
        ActivationRecord(["the", " quick", " brown", " fox"], [0, 0, 0, 8]),
        ActivationRecord(["spotted", " leopard", " sprints", " at"], [0, 9, 4, 0]),
    ]
