"""Scorers that simulate every token and compare the simulation with the real activations.

``simulation`` is the method of OpenAI's paper and the Neuronpedia scorer:
correlate simulated with real activations over all tokens. ``detection`` and
``fuzzing`` reuse the same (cached) simulations and ask classification
questions of them: which sequences fire, which tokens fire.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.job import ScoringJob, new_result
from scoring.metrics import classification_metrics, compute_metrics, pearson, roc_auc
from scoring.prompts import token_runs
from scoring.results import ScoreResult
from scoring.shared_types import ACTIVE_THRESHOLD, DECISION_THRESHOLD
from scoring.simulators.runner import run_simulations


async def _simulate(job: ScoringJob, scorer: str) -> ScoreResult:
    """Simulate every chosen sequence; the result carries the error when any fails.

    Shared by every simulation-based scorer: they differ only in how they
    compare the simulated with the real activations afterwards.
    """
    result = new_result(job, scorer)
    if all(value == 0 for real in job.real for value in real):
        result.error = (
            "every real activation is zero (after normalisation), so the score is undefined; "
            "give records where the neuron fires"
        )
        return result
    simulations, usage, from_cache = await run_simulations(
        job.simulator,
        job.explanation,
        [record.tokens for record in job.records],
        cache=job.cache,
        progress=job.progress,
    )
    result.usage = usage
    failures = []
    for sequence, simulation, cached in zip(result.sequences, simulations, from_cache, strict=True):
        sequence.cached = cached
        if simulation.ok and simulation.activations is not None:
            sequence.simulated = simulation.activations
            sequence.applies = simulation.applies
            sequence.correlation = pearson(sequence.real, simulation.activations)
        else:
            sequence.error = simulation.error or "simulation failed"
            failures.append(sequence)
    if failures:
        result.error = (
            f"{len(failures)} of {len(result.sequences)} sequences could not be simulated, so the score is "
            f"undefined; first reason: {failures[0].error}"
        )
    return result


async def simulation_scorer(job: ScoringJob) -> ScoreResult:
    """Correlation between simulated and real activations over all tokens."""
    started = time.perf_counter()
    result = await _simulate(job, "simulation")
    if result.error is None:
        metrics = compute_metrics(
            [seq.real for seq in result.sequences],
            [seq.simulated or [] for seq in result.sequences],
            seed=job.seed,
        )
        result.metrics = metrics
        result.score = float(metrics["correlation"])
        if math.isnan(result.score):
            result.error = metrics["metric_errors"].get("correlation", "the correlation is undefined")
    result.seconds = time.perf_counter() - started
    return result


MARKED_SHARE = 0.3
"""Fuzzing marks the tokens at >= 0.3 x their sequence's highest real activation (delphi's threshold)."""


def flat_simulation_error(result: ScoreResult) -> str | None:
    """Why `result`'s simulation is no evidence at all, or None.

    A simulation with the same value on every token says nothing about which
    tokens or texts fire. It is not chance (an ROC-AUC of 0.5 would rank it
    above an explanation that tried and partly failed): like the correlation of
    `simulation`, the score is undefined, and a NaN score ranks last.
    """
    values = [value for sequence in result.sequences for value in sequence.simulated or []]
    if values and max(values) == min(values):
        return (
            f"the simulation is {values[0]:g} on every token, so it cannot tell which tokens or texts fire "
            "and the score is undefined; the explanation predicts nothing about these records"
        )
    return None


def _settle(result: ScoreResult, undefined: str) -> None:
    """Give `result` its error: `undefined` when its score could not be computed (NaN), else the reason a flat
    simulation is no evidence (`flat_simulation_error`, which also makes the score NaN), else none."""
    if math.isnan(result.score):
        result.error = undefined
        return
    result.error = flat_simulation_error(result)
    if result.error is not None:
        result.score = math.nan


def sequence_prediction(simulated: Sequence[float], applies: float | None = None) -> float:
    """How likely the simulation says a text is to fire (0..1): its highest value on the 0..10 scale, / 10,
    times the simulator's chance that the explanation applies to the text at all (`applies`) when it gives one.

    `detection` correlates this with whether each text fires. The chance matters with `local`: its answer list
    names some word in nearly every text, so its highest value is 10 in most texts, firing or not, while the
    chance it gives an answer of "none" rather than a word tells them apart (docs/scorers.md, "detection").
    """
    if not len(simulated):
        return math.nan
    return max(simulated) / 10.0 * (1.0 if applies is None else applies)


DETECTION_THRESHOLD = DECISION_THRESHOLD / 10.0
"""`detection` counts a text as "fires" at a prediction (`sequence_prediction`) of 0.5 or more: a highest
simulated value of DECISION_THRESHOLD when the simulator gives no chance of its own."""


def detection_correlation(labels: Sequence[bool], predictions: Sequence[float]) -> float:
    """`detection`'s score: the correlation of `predictions` with `labels` (fires or not). The same prediction for
    every text tells no text from another: 0 (chance), though the simulation may still single out tokens (a flat
    one, which says nothing at all, is made NaN apart). NaN when either kind of text is missing or a prediction is."""
    score = pearson([float(label) for label in labels], predictions)
    if math.isnan(score) and 0 < sum(labels) < len(labels) and not any(math.isnan(p) for p in predictions):
        return 0.0
    return score


async def detection_scorer(job: ScoringJob) -> ScoreResult:
    """Does the simulation tell activating sequences from non-activating ones?

    A sequence is activating when its real max is >= ACTIVE_THRESHOLD. Each gets a prediction
    (`sequence_prediction`: its highest simulated value / 10, times the simulator's chance that the
    explanation applies to it when it gives one), and the score is the correlation of the predictions
    with "fires" (1) or not (0), point-biserial, -1..1 like `simulation`'s; 0 is chance, and also the
    score of a simulation that predicts the same for every text. A correlation
    rather than an ROC-AUC: two explanations that both rank every firing text first tie at an ROC-AUC
    of 1, while the correlation prefers the one whose predictions stand further apart (on the dev sets it
    ranks more true explanations above their decoys with every simulator we measured; docs/scorers.md).
    ``metrics`` keeps ``roc_auc`` (of the predictions) and ``roc_auc_max`` (of the highest values, the
    ranking before issue 28), ``sequence_predictions`` and ``sequence_applies``, and balanced accuracy,
    precision, recall and F1 counting a prediction >= DETECTION_THRESHOLD as "fires". An explanation
    naming a surface token that also occurs in non-activating text predicts activity there and loses.
    A flat simulation is no evidence: NaN (`flat_simulation_error`).
    """
    started = time.perf_counter()
    result = await _simulate(job, "detection")
    if result.error is None:
        labels = [max(seq.real) >= ACTIVE_THRESHOLD for seq in result.sequences]
        predictions = [sequence_prediction(seq.simulated or [], seq.applies) for seq in result.sequences]
        result.metrics = classification_metrics(labels, predictions, DETECTION_THRESHOLD)
        result.metrics["roc_auc_max"] = roc_auc(labels, [max(seq.simulated or [0.0]) for seq in result.sequences])
        result.metrics["sequence_predictions"] = predictions
        result.metrics["sequence_applies"] = [seq.applies for seq in result.sequences]
        result.score = detection_correlation(labels, predictions)
        positives, negatives = result.metrics["positives"], result.metrics["negatives"]
        _settle(
            result,
            "detection needs both activating and non-activating sequences "
            f"(found {positives} and {negatives}); add random or low-activation records",
        )
    result.seconds = time.perf_counter() - started
    return result


def fuzzing_markings(real: Sequence[Sequence[float]], seed: int) -> list[tuple[int, list[int], list[int]]]:
    """The `fuzzing-judge` scorer's markings (a judge is asked about each, so they are few): per sequence
    with active and inactive tokens, (its position, its active token indices, as many of its inactive
    token indices drawn at random, seeded)."""
    rng = np.random.default_rng(seed)
    markings = []
    for position, values in enumerate(real):
        active = [i for i, value in enumerate(values) if value >= ACTIVE_THRESHOLD]
        inactive = [i for i, value in enumerate(values) if value < ACTIVE_THRESHOLD]
        if not active or not inactive:
            continue
        wrong = rng.choice(inactive, size=min(len(active), len(inactive)), replace=False)
        markings.append((position, active, sorted(int(i) for i in wrong)))
    return markings


CORRECT = "correct"
"""A marking of a run of active tokens (>= MARKED_SHARE x the sequence's max)."""
SAME_TEXT = "same text"
"""A wrong marking on inactive tokens of an activating sequence: the wrong words of the right text."""
OTHER_TEXT = "other text"
"""A wrong marking in a non-activating sequence: the right words, perhaps, in the wrong text."""
MARKING_KINDS = (CORRECT, SAME_TEXT, OTHER_TEXT)


@dataclass(frozen=True)
class SpanMarkings:
    """The markings of `fuzzing`: spans of consecutive tokens, as parallel arrays (there can be millions)."""

    sequence: np.ndarray
    """Position of each span's sequence among the chosen records."""
    start: np.ndarray
    stop: np.ndarray
    """Each span's tokens: ``start`` up to, not including, ``stop``."""
    kind: np.ndarray
    """Each span's index in MARKING_KINDS: 0 correct, 1 same text, 2 other text."""

    def __len__(self) -> int:
        return len(self.kind)

    def rows(self) -> list[tuple[int, int, int, str]]:
        """(sequence, start, stop, kind name) of every span, in order: for reading and tests."""
        return [
            (int(q), int(a), int(b), MARKING_KINDS[int(k)])
            for q, a, b, k in zip(self.sequence, self.start, self.stop, self.kind, strict=True)
        ]

    def means(self, simulated: Sequence[Sequence[float]]) -> np.ndarray:
        """The mean simulated value over each span's tokens (from prefix sums: no loop over spans).

        Rounded to 9 decimals, so that spans of equal values tie as they should
        despite the rounding errors of the running sums.
        """
        lengths = [len(values) for values in simulated]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate([np.asarray(values, dtype=float) for values in simulated]) if lengths else np.zeros(0)
        sums = np.concatenate([[0.0], np.cumsum(flat)])
        first = offsets[self.sequence] + self.start
        last = offsets[self.sequence] + self.stop
        return np.round((sums[last] - sums[first]) / (self.stop - self.start), 9)


def span_markings(real: Sequence[Sequence[float]]) -> SpanMarkings:
    """Every correct and every wrong marking of `fuzzing`, correct ones first; no sampling, so no seed.

    Correct: each run of consecutive tokens at >= MARKED_SHARE x its sequence's
    highest activation (and >= ACTIVE_THRESHOLD) in an activating sequence.
    Wrong: for each length of a correct marking, every run of that many
    consecutive inactive tokens (< ACTIVE_THRESHOLD), in activating sequences
    (`SAME_TEXT`) and in non-activating ones (`OTHER_TEXT`). Tokens between the
    two thresholds are in no marking.
    """
    correct: list[tuple[int, int, int]] = []
    for position, values in enumerate(real):
        peak = max(values, default=0.0)
        if peak >= ACTIVE_THRESHOLD:
            cut = max(MARKED_SHARE * peak, ACTIVE_THRESHOLD)
            correct += [(position, a, b) for a, b in token_runs([i for i, v in enumerate(values) if v >= cut])]
    parts = [np.array([[q, a, b, 0] for q, a, b in correct], dtype=np.int64).reshape(-1, 4)]
    lengths = [len(values) for values in real]
    if sum(lengths):
        # every token of every sequence in one array; a span may not cross from one sequence into the next
        owner = np.repeat(np.arange(len(real)), lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        inactive = np.concatenate([np.asarray(values, dtype=float) < ACTIVE_THRESHOLD for values in real])
        inactive_before = np.concatenate([[0], np.cumsum(inactive)])
        kind = np.where([max(values, default=0.0) >= ACTIVE_THRESHOLD for values in real], 1, 2)
        for length in sorted({b - a for _, a, b in correct}):
            first = np.arange(len(inactive) - length + 1)
            fits = (inactive_before[first + length] - inactive_before[first] == length) & (
                owner[first] == owner[first + length - 1]
            )
            first = first[fits]
            sequence = owner[first]
            start = first - offsets[sequence]
            parts.append(np.stack([sequence, start, start + length, kind[sequence]], axis=1))
    table = np.concatenate(parts)
    return SpanMarkings(table[:, 0], table[:, 1], table[:, 2], table[:, 3])


async def fuzzing_scorer(job: ScoringJob) -> ScoreResult:
    """Does the simulation put its activity on the marked active spans rather than on any other span?

    Every marking of `span_markings` is predicted by the mean simulated value
    over its tokens. Two ROC-AUCs of correct against wrong markings: against
    the wrong spans of the same (activating) texts, ``roc_auc_same_text``,
    which punishes activity on the wrong words of the right text; and against
    spans of non-activating texts, ``roc_auc_other_text``, which punishes
    surface matches out of context. The score is their mean (the one defined
    when the records give only one kind of wrong marking). A flat simulation is
    no evidence: NaN (`flat_simulation_error`).
    """
    started = time.perf_counter()
    result = await _simulate(job, "fuzzing")
    if result.error is None:
        markings = span_markings(job.real)
        predicted = markings.means([sequence.simulated or [] for sequence in result.sequences])
        labels = markings.kind == 0
        result.metrics = classification_metrics(labels.tolist(), predicted.tolist(), DECISION_THRESHOLD)
        parts = {}
        for code, kind in enumerate(MARKING_KINDS[1:], start=1):
            chosen = (markings.kind == 0) | (markings.kind == code)
            parts[kind] = roc_auc(labels[chosen], predicted[chosen])
        result.metrics["roc_auc_same_text"] = parts[SAME_TEXT]
        result.metrics["roc_auc_other_text"] = parts[OTHER_TEXT]
        defined = [value for value in parts.values() if not math.isnan(value)]
        result.score = float(np.mean(defined)) if defined else math.nan
        _settle(
            result,
            "fuzzing needs activating sequences and inactive tokens to mark wrongly "
            "(in those sequences or in non-activating ones); add random or low-activation records",
        )
    result.seconds = time.perf_counter() - started
    return result
