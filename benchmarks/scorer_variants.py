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
token), ``spread``, the standard deviation (shipped between the two changes of issue 28),
``highest x applies`` (the highest value times the simulator's chance that the explanation applies
to the text, `SequenceSimulation.applies`, when it gives one); and, not ROC-AUCs, the point-biserial
correlations of "fires" with ``highest``, ``spread``, ``applies`` (alone; 1 where the simulator
gives none) and ``highest x applies (shipped)``: `scoring.simulated.detection_scorer`.

Every reading treats a flat simulation (one value on every token) as no evidence (NaN), as the
shipped scorers do; the report counts them (``flat_simulations``: none on the dev sets with `local`
or `embedding`, so there it changes nothing). `--json` prints the figures as one object.

    python benchmarks/scorer_variants.py --simulator embedding --cache
    python benchmarks/scorer_variants.py --simulator local --cache --sets dev,dev2,dev3
    python benchmarks/scorer_variants.py --simulator "local:gate=on" --cache
    python benchmarks/scorer_variants.py --simulator local --cache --ask   # + the judge's yes/no per text
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

from scoring.api import rank_explanations, rank_with_scorers  # noqa: E402
from scoring.bench import load_puzzles  # noqa: E402
from scoring.metrics import roc_auc  # noqa: E402
from scoring.process_settings import configure_process  # noqa: E402
from scoring.simulated import (  # noqa: E402
    ACTIVE_THRESHOLD,
    MARKED_SHARE,
    OTHER_TEXT,
    SAME_TEXT,
    detection_correlation,
    fuzzing_markings,
    sequence_prediction,
    span_markings,
)

SETS = {
    "dev": ROOT / "benchmarks" / "dev_puzzles.json",
    "dev2": ROOT / "benchmarks" / "dev_puzzles_2.json",
    "dev3": ROOT / "benchmarks" / "dev_puzzles_3.json",
    "openai": ROOT / "benchmarks" / "openai-puzzles" / "puzzles.json",
}

Values = Sequence[Sequence[float]]
Chances = Sequence[float | None]
Reading = Callable[[Values, Values], float]
DetectionReading = Callable[[Values, Values, Chances], float]
Simulated = tuple[Values, Chances]
"""One explanation's simulation of a puzzle: per sequence its values and the simulator's chance that it applies."""


def sequence_spread(simulated: Sequence[float]) -> float:
    """The standard deviation of a sequence's simulated values (detection's ranking between the two changes)."""
    return float(np.std(simulated)) if len(simulated) else math.nan


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


def fires(real: Values) -> list[bool]:
    return [max(values, default=0.0) >= ACTIVE_THRESHOLD for values in real]


def per_sequence(prediction: Callable[[Sequence[float]], float]) -> DetectionReading:
    def reading(real: Values, simulated: Values, chances: Chances) -> float:
        return roc_auc(fires(real), [prediction(guess) for guess in simulated])

    return reading


def correlated(prediction: Callable[[Sequence[float], float | None], float]) -> DetectionReading:
    """The point-biserial correlation of "the sequence fires" with a prediction from its values and chance."""

    def reading(real: Values, simulated: Values, chances: Chances) -> float:
        predictions = [prediction(guess, chance) for guess, chance in zip(simulated, chances, strict=True)]
        return detection_correlation(fires(real), predictions)

    return reading


def highest_times_applies(real: Values, simulated: Values, chances: Chances) -> float:
    return roc_auc(fires(real), [sequence_prediction(guess, chance) for guess, chance in zip(simulated, chances,
                                                                                            strict=True)])


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
DETECTION: dict[str, DetectionReading] = {
    "highest value": per_sequence(lambda guess: max(guess)),
    "mean": per_sequence(lambda guess: float(np.mean(guess))),
    "mean of top 3": per_sequence(lambda guess: float(np.mean(sorted(guess)[-3:]))),
    "share >= 5": per_sequence(lambda guess: float(np.mean(np.asarray(guess) >= 5.0))),
    "highest - median": per_sequence(lambda guess: max(guess) - float(np.median(guess))),
    "gini": per_sequence(lambda guess: gini(guess)),
    "spread": per_sequence(sequence_spread),
    "highest x applies": highest_times_applies,
    "correlation: highest": correlated(lambda guess, chance: max(guess)),
    "correlation: spread": correlated(lambda guess, chance: sequence_spread(guess)),
    "correlation: applies": correlated(lambda guess, chance: 1.0 if chance is None else chance),
    "correlation: highest x applies (shipped)": correlated(sequence_prediction),
}


def pearson_score(real: Values, simulated: Values) -> float:
    flat_real, flat_simulated = np.concatenate(real), np.concatenate(simulated)
    if flat_real.std() == 0 or flat_simulated.std() == 0:
        return math.nan
    return float(np.corrcoef(flat_real, flat_simulated)[0, 1])


def beats(true_score: float, false_score: float) -> bool:
    return not math.isnan(true_score) and (math.isnan(false_score) or true_score > false_score)


Puzzle = tuple[Values, list[Simulated]]


def simulate(path: Path, simulator: str, cache: bool) -> list[Puzzle]:
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
        simulations: list[Simulated] = [
            ([s.simulated or [] for s in results[text].sequences], [s.applies for s in results[text].sequences])
            for text in explanations
        ]
        puzzles.append((real, simulations))
    return puzzles


def is_flat(simulated: Values) -> bool:
    values = [value for guess in simulated for value in guess]
    return bool(values) and max(values) == min(values)


def values_only(reading: Reading) -> DetectionReading:
    """`reading` (simulation, fuzzing: the values only) in the shape `pairs_won` calls."""
    return lambda real, values, chances: reading(real, values)


def pairs_won(puzzles: list[Puzzle], reading: DetectionReading) -> tuple[int, int]:
    """Pairs the true explanation wins under `reading` (wrap a reading of the values only in `values_only`)."""
    won = total = 0
    for real, simulations in puzzles:
        scores = [math.nan if is_flat(values) else reading(real, values, chances) for values, chances in simulations]
        won += sum(beats(scores[0], score) for score in scores[1:])
        total += len(scores) - 1
    return won, total


ASKED = "correlation: the judge's P(yes), asked per text"
"""With --ask: each text's P(yes) that the explanation's condition holds in it (the `binary-condition` question,
asked of the simulator as judge: a second pass over every text), correlated with "fires" as the shipped reading."""


def asked_pairs(path: Path, simulator: str, cache: bool) -> tuple[int, int]:
    """Pairs won by `ASKED` on one set (the answers come through the judgment cache with `cache`)."""
    won = total = 0
    for puzzle in load_puzzles(path):
        explanations = [puzzle.explanation, *puzzle.false_explanations]
        results = rank_with_scorers(explanations, puzzle.records, ["binary-condition"], simulator=simulator,
                                    cache=cache)["binary-condition"]
        by_text = {result.explanation: result for result in results}
        scores = []
        for text in explanations:
            judgments = by_text[text].judgments
            labels = [judgment.target >= ACTIVE_THRESHOLD for judgment in judgments]
            answers = [math.nan if judgment.p_yes is None else judgment.p_yes for judgment in judgments]
            scores.append(detection_correlation(labels, answers))  # the same answer for every text: chance, 0
        won += sum(beats(scores[0], score) for score in scores[1:])
        total += len(scores) - 1
    return won, total


def shares_won(counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Per set and pooled, the share of pairs won (pairs won, pairs per set in `counts`)."""
    pooled = (sum(won for won, _ in counts.values()), sum(total for _, total in counts.values()))
    shares = {name: round(won / total, 3) for name, (won, total) in {**counts, "pooled": pooled}.items()}
    return {**shares, "pooled_pairs": list(pooled)}


def main(argv: Sequence[str] | None = None) -> int:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="embedding")
    parser.add_argument("--sets", default="dev,dev2,dev3", help=f"comma list of {', '.join(SETS)}")
    parser.add_argument("--cache", action="store_true", help="read and fill the simulation cache")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ask", action="store_true", help=f"also the detection reading {ASKED!r} (judging simulators)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in names if name not in SETS]
    if unknown or not names:
        parser.error(f"--sets takes a comma list of {', '.join(SETS)}; got {args.sets!r}")
    data = {name: simulate(SETS[name], args.simulator, args.cache) for name in names}
    readings: dict[str, dict[str, DetectionReading]] = {
        "simulation": {"correlation": values_only(pearson_score)},
        "fuzzing": {name: values_only(reading) for name, reading in FUZZING.items()},
        "detection": DETECTION,
    }
    flat = {name: sum(is_flat(values) for _, simulations in data[name] for values, _ in simulations) for name in names}
    report: dict[str, Any] = {"simulator": args.simulator, "sets": names, "flat_simulations": flat, "scorers": {}}
    for scorer, variants in readings.items():
        report["scorers"][scorer] = {}
        for variant, reading in variants.items():
            report["scorers"][scorer][variant] = shares_won({name: pairs_won(data[name], reading) for name in names})
    if args.ask:
        asked = {name: asked_pairs(SETS[name], args.simulator, args.cache) for name in names}
        report["scorers"]["detection"][ASKED] = shares_won(asked)
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
