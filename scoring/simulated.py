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

import numpy as np

from scoring.job import ScoringJob, new_result
from scoring.metrics import classification_metrics, compute_metrics, pearson
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


async def detection_scorer(job: ScoringJob) -> ScoreResult:
    """Does the simulation tell activating sequences from non-activating ones?

    Each sequence's prediction is its highest simulated activation; a sequence
    is activating when its real max is >= ACTIVE_THRESHOLD. The score is the
    ROC-AUC (0.5 is chance); balanced accuracy, precision, recall and F1 at
    DECISION_THRESHOLD come with it. An explanation naming a surface token
    that also occurs in non-activating text predicts activity there and loses.
    """
    started = time.perf_counter()
    result = await _simulate(job, "detection")
    if result.error is None:
        labels = [max(seq.real) >= ACTIVE_THRESHOLD for seq in result.sequences]
        predicted = [max(seq.simulated or [0.0]) for seq in result.sequences]
        result.metrics = classification_metrics(labels, predicted, DECISION_THRESHOLD)
        result.metrics["sequence_predictions"] = predicted
        result.score = float(result.metrics["roc_auc"])
        if math.isnan(result.score):
            result.error = (
                "detection needs both activating and non-activating sequences "
                f"(found {result.metrics['positives']} and {result.metrics['negatives']}); "
                "add random or low-activation records"
            )
    result.seconds = time.perf_counter() - started
    return result


def fuzzing_markings(real: Sequence[Sequence[float]], seed: int) -> list[tuple[int, list[int], list[int]]]:
    """The correct and wrong markings of fuzzing: per sequence with active and inactive tokens,
    (its position, its active token indices, as many of its inactive token indices drawn at random, seeded)."""
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


async def fuzzing_scorer(job: ScoringJob) -> ScoreResult:
    """Within activating sequences, are the right tokens the ones predicted?

    For every activating sequence two marked versions are judged: the real
    active tokens (a correct marking) and as many inactive tokens drawn at
    random, seeded (a wrong marking). Each marking's prediction is the mean
    simulated activation over its marked tokens. The score is the ROC-AUC of
    correct against wrong markings; explanations that fire on the wrong word
    of the right text are punished here.
    """
    started = time.perf_counter()
    result = await _simulate(job, "fuzzing")
    if result.error is None:
        labels: list[bool] = []
        predicted: list[float] = []
        for position, active, wrong in fuzzing_markings(job.real, job.seed):
            simulated = result.sequences[position].simulated or []
            labels += [True, False]
            predicted += [float(np.mean([simulated[i] for i in active])), float(np.mean([simulated[i] for i in wrong]))]
        result.metrics = classification_metrics(labels, predicted, DECISION_THRESHOLD)
        result.score = float(result.metrics["roc_auc"])
        if math.isnan(result.score):
            result.error = "fuzzing needs activating sequences that also have inactive tokens"
    result.seconds = time.perf_counter() - started
    return result
