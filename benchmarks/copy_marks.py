"""An experiment for the local simulator (see LOCAL_NOTES.md, session 5): marks in a copy.

Worked examples (ChatML turns, invented) show a rule and a text, and the answer is the text
copied with [square brackets] around each word that fits. For the query the model reads the
rule and the whole text, then its copy is teacher-forced word by word; a word's value is how
likely the model is to open a bracket right before it, i.e. log p(" [") at the word's start,
against log p of the word's own first token there. One decoding pass of about twice the text per
(explanation, sequence), no per-word decoding: the cost of the pointer method's main pass, twice.
Unlike the session-2 "marks" method, the model has read the whole text before it marks anything.

    python benchmarks/copy_marks.py --model qwen2.5-coder-1.5b --sets dev,dev2
    python benchmarks/copy_marks.py --model smollm2 --sets dev,dev2

Raw numbers are cached under cache/copy_marks/. Choose on dev and dev2 only.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from local_experiments import SETS, load_puzzles  # noqa: E402
from pointer_calibration import _linear, cached, cases, pairwise_wins, report  # noqa: E402

from scoring import prompts  # noqa: E402
from scoring.simulators import local  # noqa: E402

CACHE = ROOT / "cache" / "copy_marks"

SYSTEM = (
    "You copy a text exactly, putting [square brackets] around each word that fits the rule. "
    "Words that do not fit are copied unchanged; if no word fits, the copy has no brackets."
)
EXAMPLES = (
    ("names of vegetables", "We bought carrots and a cabbage at the market, then a lamp.",
     "We bought [carrots] and a [cabbage] at the market, then a lamp."),
    ("the word \"light\" when it means not heavy", "Turn on the light, please; this box is light enough to carry.",
     "Turn on the light, please; this box is [light] enough to carry."),
    ("numbers larger than one hundred", "She paid 40 dollars for 250 stickers and gave 3 of them away.",
     "She paid 40 dollars for [250] stickers and gave 3 of them away."),
    ("names of vegetables", "The train left the station at noon and nobody waved.",
     "The train left the station at noon and nobody waved."),
    ("the word right after \"the\"", "Then the cat sat on a mat while a dog watched.",
     "Then the [cat] sat on a mat while a dog watched."),
    ("instances of the words \"blue\" and \"cold\"", "The blue car was cold inside, and the red one was warm.",
     "The [blue] car was [cold] inside, and the red one was warm."),
)


def header() -> str:
    parts = [prompts._chatml("system", SYSTEM)]
    for rule, text, answer in EXAMPLES:
        parts.append(prompts._chatml("user", f"Rule: {rule}\nText: {text}"))
        parts.append(prompts._chatml("assistant", answer))
    return "".join(parts)


def collect(model_key: str, puzzles: dict) -> dict:
    """Per (puzzle, explanation, sequence): [(token indices of a word, log p(bracket), log p(word))]."""
    model = local.load_model(model_key)
    prefix = model.bos + model.tokenize(header(), special=True)
    brackets = {True: model.tokenize(" ["), False: model.tokenize("[")}
    assert all(len(ids) == 1 for ids in brackets.values()), brackets
    raw: dict = {"seconds": []}
    with model.lock:
        for index, explanation, tokens in cases(puzzles):
            started = time.perf_counter()
            head = prefix + model.tokenize(prompts.local_pointer_chat_rule(explanation), special=True)
            turn = model.tokenize("<|im_end|>\n<|im_start|>assistant\n", special=True)
            ids = head + model.tokenize(prompts.local_pointer_text(tokens)) + turn
            body = len(ids)
            starts: list[tuple[list[int], int, bool]] = []
            for word, indices in local.word_groups(tokens):
                pieces = [p for i in indices for p in model.tokenize(tokens[i].replace("\n", " "))]
                if not pieces:
                    continue
                spaced = tokens[indices[0]][:1].isspace()
                if len(ids) == body:  # the copy's first word: no leading space
                    first = tokens[indices[0]].lstrip() + "".join(tokens[i] for i in indices[1:])
                    pieces = model.tokenize(first.replace("\n", " "))
                    spaced = False
                    if not pieces:
                        continue
                if any(c.isalnum() for c in word):
                    starts.append((indices, len(ids), spaced))
                ids.extend(pieces)
            logits = model.logits_at(ids, [at - 1 for _, at, _ in starts], (len(prefix), len(head)))
            raw[index] = [
                (indices, local._log_softmax_at(logits[at - 1], brackets[spaced][0]),
                 local._log_softmax_at(logits[at - 1], ids[at]))
                for indices, at, spaced in starts
            ]
            raw["seconds"].append(time.perf_counter() - started)
    return raw


MAPPINGS = {
    **{f"log-floor-{f:g}": (lambda b, w, f=f: _linear(b, -f)) for f in (5, 10, 15)},
    "prob": lambda b, w: 10.0 * math.exp(b),
    "vs-word": lambda b, w: 10.0 / (1.0 + math.exp(w - b)),
    **{f"margin-{f:g}": (lambda b, w, f=f: _linear(min(0.0, b - w), -f)) for f in (5, 10)},
}


def score(puzzles: dict, raw: dict, mapping) -> tuple[int, int]:
    def values_of(index: tuple[str, int, int], tokens: list[str]) -> np.ndarray:
        values = np.zeros(len(tokens))
        for indices, bracket, word in raw[index]:
            values[indices] = mapping(bracket, word)
        return values

    return pairwise_wins(puzzles, values_of)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", choices=sorted(local.MODELS))
    parser.add_argument("--sets", default="dev,dev2")
    parser.add_argument("--only", default="", help="comma-separated mappings to score (default: all)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(MAPPINGS)

    def results_of(name: str) -> dict[str, tuple[int, int]]:
        puzzles = load_puzzles(SETS[name])
        path = CACHE / f"{args.model}-{name}.pkl"
        raw = cached(path, f"{name} with {args.model}", lambda: collect(args.model, puzzles))
        print(f"{name}: {np.mean(raw['seconds']):.2f} s per sequence")
        return {mapping_name: score(puzzles, raw, MAPPINGS[mapping_name]) for mapping_name in names}

    report(args.sets.split(","), results_of)


if __name__ == "__main__":
    main()
