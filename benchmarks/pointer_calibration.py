"""How the pointer method's word log-probabilities become activations (see LOCAL_NOTES.md, session 5).

The shipped mapping is linear in log p from a floor of -15 nats (0) to 0 nats (10). Under a broad
rule a small model spreads probability over many words, and words that do not fit still land
at -6..-10 nats, i.e. at values of 3..6: noise that a literal "instances of the words ..." decoy
does not have. This script collects the raw numbers once per model and set (cached under
cache/pointer_calibration/) and scores other mappings on them without the model:

  log-floor-F   linear in log p from F nats (0) to 0 (10): the shipped one is log-floor-15
  prob          10 * p (p = product of the word's model-token probabilities)
  power-A       10 * p**A, between the two
  none-ratio-F  log p(word) - log p("none") mapped from F (0) to 0 (10): relative to answering none
  seq-max-F     log p(word) - the sequence's best word, mapped from F (0) to 0 (10)
  gated-F       log-floor-F times 1 - p("none"): the text as a whole gates its words

--slot2 first replaces each word's log p by the better of the first answer slot and the second
(after the likeliest first answer and ","), so a text's later fitting words are not lost.

    python benchmarks/pointer_calibration.py --model smollm2 --sets dev,dev2
    python benchmarks/pointer_calibration.py --model qwen2.5-coder-1.5b --sets dev,dev2
    python benchmarks/pointer_calibration.py --model qwen2.5-coder-1.5b --sets openai --only prob
    python benchmarks/pointer_calibration.py --sets dev,dev2 --ensemble smollm2,qwen2.5-coder-1.5b,embedding

--ensemble adds the shipped mapping's values of several models' collections (and of the embedding
baseline, from benchmarks/local_experiments.py's cache), each on its own 0..10 scale.

Choose on dev and dev2 only; the OpenAI puzzles are the test set (--only restricts what is
scored there, so the choice is made before any test number is seen).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from local_experiments import SETS, load_puzzles, pearson  # noqa: E402

from scoring import prompts  # noqa: E402
from scoring.simulators import local  # noqa: E402

CACHE = ROOT / "cache" / "pointer_calibration"

Raw = dict[tuple[str, int, int], tuple[dict[str, tuple[list[int], list[float]]], float]]


def cases(puzzles: dict) -> Iterator[tuple[tuple[str, int, int], str, list[str]]]:
    """Every ((puzzle, explanation, sequence), explanation, tokens), with the seconds so far after each puzzle."""
    started = time.perf_counter()
    for key, puzzle in puzzles.items():
        for e, explanation in enumerate(puzzle["explanations"]):
            for s, (tokens, _) in enumerate(puzzle["sequences"]):
                yield (key, e, s), explanation, tokens
        print(f"  {key}: {time.perf_counter() - started:.0f} s", flush=True)


def collect(model_key: str, puzzles: dict, chat: bool) -> Raw:
    """Per (puzzle, explanation, sequence): each word's indices and piece log-probs, and log p(" none")."""
    model = local.load_model(model_key)
    none_id = model.tokenize(" none")[0]
    raw: Raw = {}
    with model.lock:
        for index, explanation, tokens in cases(puzzles):
            words = local.pointer_logprobs(model, explanation, tokens, chat=chat)
            ids, boundaries = local.pointer_prompt(model, explanation, tokens, chat=chat)
            answer = len(ids) - 1
            row = model.logits_at(ids, [answer], boundaries)[answer]
            raw[index] = (words, local._log_softmax_at(row, none_id))
    return raw


def collect_slot2(model_key: str, puzzles: dict, raw: Raw, chat: bool) -> dict:
    """Per (puzzle, explanation, sequence): log p of each word's first model token in the second answer slot.

    The second slot follows the most likely first answer and the list separator
    (" carrots," in the worked examples' style); one short decode per sequence.
    """
    model = local.load_model(model_key)
    separator = model.tokenize(prompts.LOCAL_LIST_SEPARATOR)
    second: dict = {}
    with model.lock:
        for index, explanation, tokens in cases(puzzles):
            words, _ = raw[index]
            if not words:
                second[index] = (None, {})
                continue
            best = max(words, key=lambda word: sum(words[word][1]))
            ids, boundaries = local.pointer_prompt(model, explanation, tokens, chat=chat)
            ids = ids + model.tokenize(" " + best) + separator
            row = model.logits_at(ids, [len(ids) - 1], boundaries)[len(ids) - 1]
            second[index] = (best, {word: local._log_softmax_at(row, model.tokenize(" " + word)[0]) for word in words})
    return second


def with_second_slot(raw: Raw, second: dict) -> Raw:
    """Each word's log p becomes the better of the first slot and the second (after the likeliest first answer).

    The second slot's value is its first-token log p plus the word's other
    pieces as continued in the first slot (an approximation that saves a decode
    per multi-token word); the first answer itself keeps its first-slot value.
    """
    merged: Raw = {}
    for index, (words, none) in raw.items():
        best, firsts = second[index]
        merged[index] = (
            {
                word: (
                    indices,
                    [sum(pieces) if word == best else max(sum(pieces), firsts[word] + sum(pieces[1:]))],
                )
                for word, (indices, pieces) in words.items()
            },
            none,
        )
    return merged


def _linear(gap: float, floor: float) -> float:
    return min(10.0, max(0.0, 10.0 * (1.0 - gap / floor)))


def mappings() -> dict[str, Callable[[float, float, float], float]]:
    """name -> f(log p of the word, log p of "none", best log p of a word in the sequence)."""
    table: dict[str, Callable[[float, float, float], float]] = {}
    for floor in (-5.0, -8.0, -10.0, -15.0, -20.0):
        table[f"log-floor-{-floor:g}"] = lambda lp, none, best, f=floor: _linear(lp, f)
        table[f"none-ratio-{-floor:g}"] = lambda lp, none, best, f=floor: _linear(min(0.0, lp - none), f)
        table[f"seq-max-{-floor:g}"] = lambda lp, none, best, f=floor: _linear(lp - best, f)
        table[f"gated-{-floor:g}"] = lambda lp, none, best, f=floor: _linear(lp, f) * (1.0 - math.exp(none))
    table["prob"] = lambda lp, none, best: 10.0 * math.exp(lp)
    for power in (0.25, 0.5):
        table[f"power-{power:g}"] = lambda lp, none, best, a=power: 10.0 * math.exp(a * lp)
    return table


def values_for(entry: tuple[dict, float], n_tokens: int, mapping: Callable) -> np.ndarray:
    words, none = entry
    values = np.zeros(n_tokens)
    totals = {word: sum(pieces) for word, (_, pieces) in words.items()}
    best = max(totals.values(), default=0.0)
    for word, (indices, _) in words.items():
        values[indices] = mapping(totals[word], none, best)
    return values


def pairwise_wins(puzzles: dict, values_of: Callable[[tuple[str, int, int], list[str]], np.ndarray]) -> tuple[int, int]:
    """(pairs won by the true explanation, pairs): Pearson over all of a puzzle's tokens, a NaN loses.

    `values_of((puzzle, explanation, sequence), tokens)` gives one simulated sequence.
    """
    wins = total = 0
    for key, puzzle in puzzles.items():
        real = [v for _, values in puzzle["sequences"] for v in values]
        correlations = []
        for e in range(len(puzzle["explanations"])):
            parts = [values_of((key, e, s), tokens) for s, (tokens, _) in enumerate(puzzle["sequences"])]
            correlations.append(pearson(real, np.concatenate(parts).tolist()))
        true = correlations[0]
        for false in correlations[1:]:
            total += 1
            wins += int(not math.isnan(true) and (math.isnan(false) or true > false))
    return wins, total


def score(puzzles: dict, raw: Raw, mapping: Callable) -> tuple[int, int]:
    return pairwise_wins(puzzles, lambda index, tokens: values_for(raw[index], len(tokens), mapping))


def ensemble_score(name: str, puzzles: dict, sources: list[str]) -> tuple[int, int]:
    """Pairwise wins when the sources' values are added (each a collection's log-floor-15, or embedding)."""
    shipped = mappings()["log-floor-15"]
    loaded = []
    for source in sources:
        if source == "embedding":
            path = ROOT / "cache" / "local_experiments" / f"{name}-embedding.pkl"
            loaded.append(("embedding", pickle.loads(path.read_bytes())))
        else:
            loaded.append(("pointer", pickle.loads((CACHE / f"{source}-{name}.pkl").read_bytes())))

    def added(index: tuple[str, int, int], tokens: list[str]) -> np.ndarray:
        key, e, s = index
        total = np.zeros(len(tokens))
        for kind, raw in loaded:
            if kind == "embedding":
                total += np.asarray(raw[key][e][s], float)
            else:
                total += values_for(raw[index], len(tokens), shipped)
        return total

    return pairwise_wins(puzzles, added)


def cached(path: Path, what: str, build: Callable[[], Any]) -> Any:
    """The pickled result at `path`, built (and saved) first if it is missing."""
    if path.exists():
        return pickle.loads(path.read_bytes())
    print(f"collecting {what}", flush=True)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def report(set_names: list[str], results_of: Callable[[str], dict[str, tuple[int, int]]]) -> None:
    """Print each set's (wins, pairs) per variant as they come, then the variants pooled over the sets, best first."""
    pooled: dict[str, tuple[int, int]] = {}
    for set_name in set_names:
        for variant, (wins, total) in results_of(set_name).items():
            print(f"{set_name:6s} {variant:15s} {wins:3d}/{total:3d} = {wins / total:.3f}", flush=True)
            before = pooled.get(variant, (0, 0))
            pooled[variant] = (before[0] + wins, before[1] + total)
    if len(set_names) > 1:
        for variant, (wins, total) in sorted(pooled.items(), key=lambda item: -item[1][0]):
            print(f"pooled {variant:15s} {wins:3d}/{total:3d} = {wins / total:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=local.DEFAULT_MODEL, choices=sorted(local.MODELS))
    parser.add_argument("--sets", default="dev,dev2")
    parser.add_argument("--chat", action="store_true", help="the pointer-chat prompt")
    parser.add_argument("--only", default="", help="comma-separated mappings to score (default: all)")
    parser.add_argument("--slot2", action="store_true", help="add the second answer slot (one more short decode)")
    parser.add_argument("--ensemble", default="", help="comma-separated collections (and 'embedding') to add")
    args = parser.parse_args()
    set_names = args.sets.split(",")
    if args.ensemble:
        sources = args.ensemble.split(",")
        report(set_names, lambda name: {"+".join(sources): ensemble_score(name, load_puzzles(SETS[name]), sources)})
        return
    table = mappings()
    names = [n for n in args.only.split(",") if n] or list(table)

    def results_of(name: str) -> dict[str, tuple[int, int]]:
        puzzles = load_puzzles(SETS[name])
        path = CACHE / f"{args.model}-{'chat-' if args.chat else ''}{name}.pkl"
        raw = cached(path, f"{name} with {args.model}", lambda: collect(args.model, puzzles, args.chat))
        if args.slot2:
            second = cached(
                path.with_name(path.stem + "-slot2.pkl"),
                f"the second slot of {name} with {args.model}",
                lambda: collect_slot2(args.model, puzzles, raw, args.chat),
            )
            raw = with_second_slot(raw, second)
        return {mapping_name: score(puzzles, raw, table[mapping_name]) for mapping_name in names}

    report(set_names, results_of)


if __name__ == "__main__":
    main()
