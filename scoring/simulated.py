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
from scoring.results import ScoreResult
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


ACTIVE_THRESHOLD = 1.0
"""A token (or sequence, by its max) counts as active at >= 1 on the 0..10 scale, i.e. 10% of the max."""
DECISION_THRESHOLD = 5.0
"""A simulated value >= 5 of 10 counts as a "yes" for accuracy, precision, recall and F1."""
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


def sequence_spread(simulated: Sequence[float]) -> float:
    """How strongly a sequence's simulation singles out some of its tokens: the standard deviation of its values.

    `detection` ranks sequences by it. A simulation that rises on a few tokens
    over a low floor spreads widely; one that is flat, high or low, does not.
    """
    return float(np.std(simulated)) if len(simulated) else math.nan


async def detection_scorer(job: ScoringJob) -> ScoreResult:
    """Does the simulation tell activating sequences from non-activating ones?

    A sequence is activating when its real max is >= ACTIVE_THRESHOLD. Each
    sequence is ranked by `sequence_spread`, how strongly its simulation
    singles out some of its tokens, and the score is the ROC-AUC of that
    ranking (0.5 is chance). Not by its highest simulated value: a simulator
    that puts 10 on every occurrence of a word the explanation names reaches
    10 in the trap texts too (the `local` simulator does in 58% of the dev
    sets' non-activating sequences), so highest values tie and cannot tell the
    right explanation from a decoy. That ranking stays in ``roc_auc_max``;
    balanced accuracy, precision, recall and F1 count a sequence whose highest
    simulated value is >= DECISION_THRESHOLD as "fires" (``sequence_predictions``
    holds those values, ``sequence_spreads`` the spreads). An explanation
    naming a surface token that also occurs in non-activating text predicts
    activity there and loses. A flat simulation is no evidence: NaN
    (`flat_simulation_error`).
    """
    started = time.perf_counter()
    result = await _simulate(job, "detection")
    if result.error is None:
        labels = [max(seq.real) >= ACTIVE_THRESHOLD for seq in result.sequences]
        highest = [max(seq.simulated or [0.0]) for seq in result.sequences]
        spreads = [sequence_spread(seq.simulated or []) for seq in result.sequences]
        result.metrics = classification_metrics(labels, highest, DECISION_THRESHOLD)
        result.metrics["roc_auc_max"] = result.metrics["roc_auc"]
        result.metrics["roc_auc"] = roc_auc(labels, spreads)
        result.metrics["sequence_predictions"] = highest
        result.metrics["sequence_spreads"] = spreads
        result.score = float(result.metrics["roc_auc"])
        if math.isnan(result.score):
            result.error = (
                "detection needs both activating and non-activating sequences "
                f"(found {result.metrics['positives']} and {result.metrics['negatives']}); "
                "add random or low-activation records"
            )
        else:
            result.error = flat_simulation_error(result)
            if result.error is not None:
                result.score = math.nan
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


SAME_TEXT = "same text"
"""A wrong marking on inactive tokens of an activating sequence: the wrong words of the right text."""
OTHER_TEXT = "other text"
"""A wrong marking in a non-activating sequence: the right words, perhaps, in the wrong text."""


@dataclass(frozen=True)
class Marking:
    """A span of consecutive tokens marked as active, rightly or wrongly."""

    sequence: int
    """Position of its sequence among the chosen records."""
    start: int
    stop: int
    """Its tokens: ``start`` up to, not including, ``stop``."""
    wrong: str | None
    """None for a correct marking, else `SAME_TEXT` or `OTHER_TEXT`."""


def span_markings(real: Sequence[Sequence[float]]) -> list[Marking]:
    """Every correct and every wrong marking of `fuzzing`, in order; no sampling, so no seed.

    Correct: each run of consecutive tokens at >= MARKED_SHARE x its sequence's
    highest activation (and >= ACTIVE_THRESHOLD) in an activating sequence.
    Wrong: for each length of a correct marking, every run of that many
    consecutive inactive tokens (< ACTIVE_THRESHOLD), in activating sequences
    (`SAME_TEXT`) and in non-activating ones (`OTHER_TEXT`). Tokens between the
    two thresholds are in no marking.
    """
    correct: list[Marking] = []
    for position, values in enumerate(real):
        peak = max(values, default=0.0)
        if peak < ACTIVE_THRESHOLD:
            continue
        cut = max(MARKED_SHARE * peak, ACTIVE_THRESHOLD)
        correct += [Marking(position, start, stop, None) for start, stop in _runs([v >= cut for v in values])]
    wrong: list[Marking] = []
    for length in sorted({marking.stop - marking.start for marking in correct}):
        for position, values in enumerate(real):
            kind = SAME_TEXT if max(values, default=0.0) >= ACTIVE_THRESHOLD else OTHER_TEXT
            for start, stop in _runs([v < ACTIVE_THRESHOLD for v in values]):
                wrong += [Marking(position, first, first + length, kind) for first in range(start, stop - length + 1)]
    return correct + wrong


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, stop) of every maximal run of True in `flags`."""
    runs = []
    start = None
    for index, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index))
            start = None
    return runs


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
        predicted = [
            float(np.mean((result.sequences[m.sequence].simulated or [])[m.start : m.stop])) for m in markings
        ]
        labels = [marking.wrong is None for marking in markings]
        result.metrics = classification_metrics(labels, predicted, DECISION_THRESHOLD)
        parts = {}
        for kind in (SAME_TEXT, OTHER_TEXT):
            chosen = [i for i, marking in enumerate(markings) if marking.wrong in (None, kind)]
            parts[kind] = roc_auc([labels[i] for i in chosen], [predicted[i] for i in chosen])
        result.metrics["roc_auc_same_text"] = parts[SAME_TEXT]
        result.metrics["roc_auc_other_text"] = parts[OTHER_TEXT]
        defined = [value for value in parts.values() if not math.isnan(value)]
        result.score = float(np.mean(defined)) if defined else math.nan
        if not defined:
            result.error = (
                "fuzzing needs activating sequences and inactive tokens to mark wrongly "
                "(in those sequences or in non-activating ones); add random or low-activation records"
            )
        else:
            result.error = flat_simulation_error(result)
            if result.error is not None:
                result.score = math.nan
    result.seconds = time.perf_counter() - started
    return result
