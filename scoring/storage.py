"""What the caches hold on disk, and clearing them: simulations, subject-model indexes, converted models.

Each kind lives in its own folder, set by an environment variable or else in the
platform's user cache folder (`scoring.userconfig`): the simulation cache
(`scoring.cache.default_cache_directory`), the subject models' activation indexes
(`scoring.subjects.model.subjects_directory`) and the converted packaged models
(`scoring.models.model_directory`, listed by `converted_models`).
Everything in them is made again when needed, at the cost of time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scoring import models
from scoring.cache import default_cache_directory, open_cache
from scoring.errors import ScoringInputError
from scoring.subjects.model import subjects_directory

KINDS = ("simulations", "subjects", "models")
"""The kinds of cached data, by the names ``scoring cache`` takes."""


@dataclass
class CacheFolder:
    """One kind of cached data: where it is and how much it holds."""

    kind: str
    """One of `KINDS`."""
    what: str
    """What it holds, for people."""
    path: Path
    variable: str
    """The environment variable that moves it."""
    bytes: int = 0
    """Its size on disk (files of the other kinds nested inside it are not counted)."""
    entries: int = 0
    """How many things it holds: cache entries, index folders or converted models."""
    parts: list[tuple[str, int]] = field(default_factory=list)
    """Its folders and their sizes: converted models, subject indexes (none for the simulation cache)."""


def converted_models(directory: Path | None = None) -> list[Path]:
    """The prepared model folders in `directory` (default `scoring.models.model_directory()`): torch
    conversions, and the joined GGUF files the llama.cpp path reads (``KEY-HASH-gguf``)."""
    home = directory or models.model_directory()
    if not home.is_dir():
        return []
    return sorted(
        folder
        for folder in home.iterdir()
        if (folder / "converted.json").is_file() or (folder.name.endswith("-gguf") and any(folder.glob("*.gguf")))
    )


def folder_size(path: Path, exclude: Sequence[Path] = ()) -> int:
    """Bytes of the files under `path` (0 when it does not exist), leaving out the folders in `exclude`."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    skipped = {folder.resolve() for folder in exclude}
    for root, folders, files in os.walk(path):
        folders[:] = [name for name in folders if (Path(root) / name).resolve() not in skipped]
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:  # removed while we walked
                continue
    return total


def _locations() -> dict[str, tuple[str, Path, str]]:
    return {
        "simulations": (
            "simulations, judgments and written explanations",
            default_cache_directory(),
            "SCORING_CACHE_DIR",
        ),
        "subjects": ("activation indexes of the subject models", subjects_directory(), "SCORING_SUBJECT_DIR"),
        "models": (
            "packaged models, joined (GGUF) or converted (safetensors)",
            models.model_directory(),
            "SCORING_MODEL_DIR",
        ),
    }


def cache_folders() -> list[CacheFolder]:
    """Every kind of cached data with its folder and size (nothing is created)."""
    locations = _locations()
    folders = []
    for kind, (what, path, variable) in locations.items():
        others = [other for name, (_, other, _) in locations.items() if name != kind]
        folder = CacheFolder(kind, what, path, variable, folder_size(path, others))
        if kind == "simulations":
            folder.entries = len(open_cache(path)) if (path / "cache.db").is_file() else 0
        elif kind == "models":
            folder.parts = [(item.name, folder_size(item)) for item in converted_models(path)]
        elif path.is_dir():
            folder.parts = [
                (item.name, folder_size(item, others)) for item in sorted(path.iterdir()) if item.is_dir()
            ]
        folder.entries = folder.entries or len(folder.parts)
        folders.append(folder)
    return folders


def clear(kind: str, names: Sequence[str] = ()) -> list[str]:
    """Remove the cached data of `kind` (with `names`, only the converted models or indexes whose folder name
    starts with one of them); returns what was removed. Raises ScoringInputError for an unknown kind or name."""
    if kind not in KINDS:
        raise ScoringInputError(f"unknown cache kind {kind!r}; choose from: {', '.join(KINDS)}, all")
    _, path, _ = _locations()[kind]
    if kind == "simulations":
        if names:
            raise ScoringInputError("simulations are cleared all at once; name no item")
        if not (path / "cache.db").is_file():
            return []
        cache = open_cache(path)
        count = len(cache)
        cache.clear()
        return [f"{count} simulation cache entries in {path}"]
    if kind == "models":
        items = converted_models(path)
    else:
        others = [other for name, (_, other, _) in _locations().items() if name != kind]
        items = sorted(item for item in path.iterdir() if item.is_dir() and item not in others) if path.is_dir() else []
    if names:
        unmatched = [name for name in names if not any(item.name.startswith(name) for item in items)]
        if unmatched:
            present = ", ".join(item.name for item in items) or "none"
            raise ScoringInputError(f"no cached {kind} named {', '.join(unmatched)}; there are: {present}")
        items = [item for item in items if any(item.name.startswith(name) for name in names)]
    for item in items:
        shutil.rmtree(item, ignore_errors=True)
    return [str(item) for item in items]
