"""The pointer prompt answered in full: a greedy answer list constrained to the text's words (session 6).

The shipped pointer method reads only the first answer slot: each word's value is the
log-probability that the model names it first. Under a broad rule ("words related to colors")
the probability of the first slot is spread over every fitting word, and words that do not fit
keep a few nats of it, so the true explanation's values are flat and noisy, while a literal
decoy ("instances of the words red, black and yellow") concentrates them. Here the model writes
its whole answer list, greedily, each step restricted to the pieces of a word of the text not
yet listed, the list separator or the end of the answer ("none" only in the first slot), so
every fitting word a text holds can be named (`local.answer_list`, which the shipped ``list``
and ``list-chat`` methods use, ``local-large`` being list-chat with the 0.5 share). Raw
outputs (listed words in order, each with its log-probability at its slot, plus the first
slot's log-probabilities of every word, i.e. the shipped pointer numbers) are cached under
cache/list_decode/ and scored with several value mappings without the model:

  binary            10 for a listed word, 0 otherwise
  binary+pointer-A  10 for a listed word, else A x the shipped pointer value (floor -15)
  slot-floor-F      a listed word's log p at its own slot, linear from F nats (0) to 0 (10)
  pointer           the shipped pointer values (first slot only), for comparison

    python benchmarks/list_decode.py --model smollm2 --sets dev,dev2
    python benchmarks/list_decode.py --model qwen2.5-coder-1.5b --sets dev,dev2 [--chat]
    python benchmarks/list_decode.py --model smollm2 --sets openai --only binary

Choose on dev and dev2 only; the OpenAI puzzles are the test set (--only restricts what is
scored there, so the choice is made before any test number is seen).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pointer_calibration import _linear  # noqa: E402
from raw_runs import Mapping, run  # noqa: E402

from scoring.simulators import local  # noqa: E402

CACHE = ROOT / "cache" / "list_decode"


def entry(model: local._LoadedModel, explanation: str, tokens: list[str], chat: bool) -> tuple[list, dict]:
    """The answer list, and per word its indices and first-slot log p (the shipped pointer numbers)."""
    listed = local.answer_list(model, explanation, tokens, chat)
    pointer = local.pointer_logprobs(model, explanation, tokens, chat=chat)
    return listed, {word: (indices, sum(p)) for word, (indices, p) in pointer.items()}


def mappings() -> dict[str, Mapping]:
    """Each raw entry is (the answer list [(word, log p at its slot)], {word: (indices, first-slot log p)})."""

    def binary(weight: float) -> Mapping:
        def values(entry: tuple[list, dict], n_tokens: int) -> np.ndarray:
            listed, pointer = entry
            out = np.zeros(n_tokens)
            for indices, lp in pointer.values():
                out[indices] = weight * _linear(lp, -15.0)
            names = {word for word, _ in listed}
            for word, (indices, _) in pointer.items():
                if word in names:
                    out[indices] = 10.0
            return out

        return values

    def slot(floor: float) -> Mapping:
        def values(entry: tuple[list, dict], n_tokens: int) -> np.ndarray:
            listed, pointer = entry
            out = np.zeros(n_tokens)
            for word, lp in listed:
                if word in pointer:
                    out[pointer[word][0]] = _linear(lp, floor)
            return out

        return values

    table: dict[str, Mapping] = {"binary": binary(0.0)}
    table["pointer"] = lambda entry, n: binary(1.0)(([], entry[1]), n)
    for weight in (0.1, 0.3, 0.5):
        table[f"binary+pointer-{weight:g}"] = binary(weight)
    for floor in (-5.0, -10.0, -15.0):
        table[f"slot-floor-{-floor:g}"] = slot(floor)
    return table


def main() -> None:
    run(__doc__, CACHE, entry, mappings(), lambda entry: [word for word, _ in entry[0]])


if __name__ == "__main__":
    main()
