"""Ways of reading one simulation for `detection` and `fuzzing`: which ranks true explanations first?

`simulation`, `detection` and `fuzzing` read the same simulations; they differ only in how they
compare them with the real activations. This script simulates every explanation of every puzzle
once (through the cache: with `--cache` it reuses what `bench --cache` stored), then scores each
reading below on those same simulations and prints, per dev set and pooled, the share of
true-vs-false pairs the true explanation wins (a tie or a NaN true score loses, as in `bench`).

Readings of fuzzing (correct markings against wrong ones, ROC-AUC):
- ``tokens, one random draw``: the method before issue 28: per activating sequence, its active
  tokens (>= 1) against as many of its inactive tokens drawn at random (seed 0); means over the
  marked tokens;
- ``tokens, mean of 20 draws``: the same, averaged over seeds 0-19 (how much is draw noise);
- ``all tokens, same text``: every active token against every inactive token of the activating
  sequences (no draw);
- ``delphi tokens, other text``: tokens at >= 0.3 x the sequence's max against as many tokens
  drawn from a non-activating sequence (delphi's protocol read from the simulation);
- ``spans, same text`` / ``spans, other text`` / ``spans, per sequence``: `span_markings` against
  the wrong spans of one kind only, or scored per activating sequence and averaged;
- ``spans, both (shipped)``: `scoring.simulated.fuzzing_scorer`.

Readings of detection (activating against non-activating sequences, ROC-AUC of a per-sequence
prediction): ``highest value`` (before issue 28), ``mean``, ``mean of top 3``, ``share >= 5``,
``highest - median``, ``gini`` (how concentrated the simulated values are: 0 flat, near 1 on one
token) and ``spread (shipped)``, the standard deviation (`sequence_spread`); and, not an ROC-AUC,
``correlation with highest``: the point-biserial correlation of "fires" with the highest value.

Every reading treats a flat simulation (one value on every token) as no evidence (NaN), as the
shipped scorers do; the report counts them (``flat_simulations``: none on the dev sets with `local`
or `embedding`, so there it changes nothing). `--json` prints the figures as one object.

    python benchmarks/scorer_variants.py --simulator embedding --cache
    python benchmarks/scorer_variants.py --simulator local --cache --sets dev,dev2,dev3
    python benchmarks/scorer_variants.py --simulator "local:gate=on" --cache
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.api import rank_explanations  # noqa: E402
from scoring.bench import load_puzzles  # noqa: E402
from scoring.metrics import pearson, roc_auc  # noqa: E402
from scoring.process_settings import configure_process  # noqa: E402
from scoring.simulated import (  # noqa: E402
    ACTIVE_THRESHOLD,
    MARKED_SHARE,
    OTHER_TEXT,
    SAME_TEXT,
    fuzzing_markings,
    sequence_spread,
    span_markings,
)

SETS = {
    "dev": ROOT / "benchmarks" / "dev_puzzles.json",
    "dev2": ROOT / "benchmarks" / "dev_puzzles_2.json",
    "dev3": ROOT / "benchmarks" / "dev_puzzles_3.json",
    "openai": ROOT / "benchmarks" / "openai-puzzles" / "puzzles.json",
}

Values = Sequence[Sequence[float]]
Reading = Callable[[Values, Values], float]


def random_tokens(real: Values, simulated: Values, seed: int = 0) -> float:
    labels: list[bool] = []
    predicted: list[float] = []
    for position, active, wrong in fuzzing_markings(real, seed):
        labels += [True, False]
        predicted += [float(np.mean([simulated[position][i] for i in active])),
                      float(np.mean([simulated[position][i] for i in wrong]))]
    return roc_auc(labels, predicted)


def random_tokens_averaged(real: Values, simulated: Values) -> float:
    return float(np.mean([random_tokens(real, simulated, seed) for seed in range(20)]))


def all_tokens_same_text(real: Values, simulated: Values) -> float:
    labels: list[bool] = []
    predicted: list[float] = []
    for values, guess in zip(real, simulated, strict=True):
        if max(values, default=0.0) >= ACTIVE_THRESHOLD:
            labels += [value >= ACTIVE_THRESHOLD for value in values]
            predicted += list(guess)
    return roc_auc(labels, predicted)


def delphi_tokens_other_text(real: Values, simulated: Values, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    silent = [i for i, values in enumerate(real) if max(values, default=0.0) < ACTIVE_THRESHOLD]
    if not silent:
        return math.nan
    labels: list[bool] = []
    predicted: list[float] = []
    for values, guess in zip(real, simulated, strict=True):
        peak = max(values, default=0.0)
        if peak < ACTIVE_THRESHOLD:
            continue
        marked = [i for i, value in enumerate(values) if value >= max(MARKED_SHARE * peak, ACTIVE_THRESHOLD)]
        other = silent[int(rng.integers(len(silent)))]
        drawn = rng.choice(len(simulated[other]), size=min(len(marked), len(simulated[other])), replace=False)
        labels += [True, False]
        predicted += [float(np.mean([guess[i] for i in marked])), float(np.mean([simulated[other][i] for i in drawn]))]
    return roc_auc(labels, predicted)


def spans(kinds: Sequence[str]) -> Reading:
    codes = [1 + [SAME_TEXT, OTHER_TEXT].index(kind) for kind in kinds]

    def reading(real: Values, simulated: Values) -> float:
        markings = span_markings(real)
        predicted = markings.means(simulated)
        parts = []
        for code in codes:
            chosen = (markings.kind == 0) | (markings.kind == code)
            parts.append(roc_auc(markings.kind[chosen] == 0, predicted[chosen]))
        defined = [part for part in parts if not math.isnan(part)]
        return float(np.mean(defined)) if defined else math.nan

    return reading


def spans_per_sequence(real: Values, simulated: Values) -> float:
    scores = [spans([SAME_TEXT])([values], [guess]) for values, guess in zip(real, simulated, strict=True)]
    defined = [score for score in scores if not math.isnan(score)]
    return float(np.mean(defined)) if defined else math.nan


def gini(values: Sequence[float]) -> float:
    ordered = np.sort(np.asarray(values, dtype=float))
    total = ordered.sum()
    if total <= 0:
        return 0.0
    n = len(ordered)
    return float((2 * np.arange(1, n + 1) - n - 1) @ ordered / (n * total))


def per_sequence(prediction: Callable[[Sequence[float]], float]) -> Reading:
    def reading(real: Values, simulated: Values) -> float:
        labels = [max(values, default=0.0) >= ACTIVE_THRESHOLD for values in real]
        return roc_auc(labels, [prediction(guess) for guess in simulated])

    return reading


def highest_correlation(real: Values, simulated: Values) -> float:
    """Point-biserial correlation of "the sequence fires" with its highest simulated value."""
    labels = [float(max(values, default=0.0) >= ACTIVE_THRESHOLD) for values in real]
    return pearson(labels, [max(guess) for guess in simulated])


FUZZING: dict[str, Reading] = {
    "tokens, one random draw": random_tokens,
    "tokens, mean of 20 draws": random_tokens_averaged,
    "all tokens, same text": all_tokens_same_text,
    "delphi tokens, other text": delphi_tokens_other_text,
    "spans, same text": spans([SAME_TEXT]),
    "spans, other text": spans([OTHER_TEXT]),
    "spans, per sequence": spans_per_sequence,
    "spans, both (shipped)": spans([SAME_TEXT, OTHER_TEXT]),
}
DETECTION: dict[str, Reading] = {
    "highest value": per_sequence(lambda guess: max(guess)),
    "mean": per_sequence(lambda guess: float(np.mean(guess))),
    "mean of top 3": per_sequence(lambda guess: float(np.mean(sorted(guess)[-3:]))),
    "share >= 5": per_sequence(lambda guess: float(np.mean(np.asarray(guess) >= 5.0))),
    "highest - median": per_sequence(lambda guess: max(guess) - float(np.median(guess))),
    "gini": per_sequence(lambda guess: gini(guess)),
    "spread (shipped)": per_sequence(sequence_spread),
    "correlation with highest": highest_correlation,
}


def pearson_score(real: Values, simulated: Values) -> float:
    flat_real, flat_simulated = np.concatenate(real), np.concatenate(simulated)
    if flat_real.std() == 0 or flat_simulated.std() == 0:
        return math.nan
    return float(np.corrcoef(flat_real, flat_simulated)[0, 1])


def beats(true_score: float, false_score: float) -> bool:
    return not math.isnan(true_score) and (math.isnan(false_score) or true_score > false_score)


def simulate(path: Path, simulator: str, cache: bool) -> list[tuple[Values, list[Values]]]:
    """Per puzzle: the real values and each explanation's simulation (the true one first)."""
    puzzles = []
    for puzzle in load_puzzles(path):
        explanations = [puzzle.explanation, *puzzle.false_explanations]
        results = {r.explanation: r for r in rank_explanations(explanations, puzzle.records, simulator=simulator,
                                                               cache=cache)}
        failed = [text for text, result in results.items() if result.error and "could not be simulated" in result.error]
        if failed:
            raise SystemExit(f"{path.name}, puzzle {puzzle.key}: {results[failed[0]].error}")
        real = [sequence.real for sequence in results[puzzle.explanation].sequences]
        puzzles.append((real, [[s.simulated or [] for s in results[text].sequences] for text in explanations]))
    return puzzles


def is_flat(simulated: Values) -> bool:
    values = [value for guess in simulated for value in guess]
    return bool(values) and max(values) == min(values)


def pairs_won(puzzles: list[tuple[Values, list[Values]]], reading: Reading) -> tuple[int, int]:
    won = total = 0
    for real, simulations in puzzles:
        scores = [math.nan if is_flat(simulated) else reading(real, simulated) for simulated in simulations]
        won += sum(beats(scores[0], score) for score in scores[1:])
        total += len(scores) - 1
    return won, total


def main(argv: Sequence[str] | None = None) -> int:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="embedding")
    parser.add_argument("--sets", default="dev,dev2,dev3", help=f"comma list of {', '.join(SETS)}")
    parser.add_argument("--cache", action="store_true", help="read and fill the simulation cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in names if name not in SETS]
    if unknown or not names:
        parser.error(f"--sets takes a comma list of {', '.join(SETS)}; got {args.sets!r}")
    data = {name: simulate(SETS[name], args.simulator, args.cache) for name in names}
    readings = {"simulation": {"correlation": pearson_score}, "fuzzing": FUZZING, "detection": DETECTION}
    flat = {name: sum(is_flat(guess) for _, simulations in data[name] for guess in simulations) for name in names}
    report: dict[str, Any] = {"simulator": args.simulator, "sets": names, "flat_simulations": flat, "scorers": {}}
    for scorer, variants in readings.items():
        report["scorers"][scorer] = {}
        for variant, reading in variants.items():
            counts = {name: pairs_won(data[name], reading) for name in names}
            counts["pooled"] = (sum(w for w, _ in counts.values()), sum(t for _, t in counts.values()))
            report["scorers"][scorer][variant] = {name: round(w / t, 3) for name, (w, t) in counts.items()}
            report["scorers"][scorer][variant]["pooled_pairs"] = list(counts["pooled"])
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"pairwise accuracy, simulator {args.simulator}; flat simulations: {flat}")
    print(f"{'scorer':10} {'reading':40} " + " ".join(f"{name:>6}" for name in [*names, "pooled"]))
    for scorer, variants in report["scorers"].items():
        for variant, figures in variants.items():
            print(f"{scorer:10} {variant:40} " + " ".join(f"{figures[name]:6.3f}" for name in [*names, "pooled"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
