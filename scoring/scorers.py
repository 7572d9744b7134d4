"""Scoring methods built on simulators.

A scorer takes the explanation, the chosen records and a simulator, and
returns a ScoreResult. ``simulation`` is the method of OpenAI's paper and the
Neuronpedia scorer: simulate every token, correlate with the real activations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from scoring.cache import SimulationCache
from scoring.metrics import compute_metrics, pearson
from scoring.records import ActivationRecord
from scoring.results import ScoreResult, SequenceResult
from scoring.simulators.base import Simulator
from scoring.simulators.runner import ProgressCallback, run_simulations


@dataclass
class ScoringJob:
    """Everything a scorer needs, prepared and validated by the API."""

    explanation: str
    records: Sequence[ActivationRecord]
    """The chosen records, in scoring order."""
    indices: Sequence[int]
    """Their positions in the loaded records."""
    real: Sequence[Sequence[float]]
    """Their normalised real activations (0..10)."""
    simulator: Simulator
    cache: SimulationCache | None
    normalization: str
    sampling: dict[str, object]
    seed: int = 0
    progress: ProgressCallback | None = None


Scorer = Callable[[ScoringJob], Awaitable[ScoreResult]]

SCORERS: dict[str, Scorer] = {}
"""Registered scorer names (`scoring.SCORERS`)."""


def register_scorer(name: str, scorer: Scorer) -> None:
    if name in SCORERS:
        raise ValueError(f"a scorer named {name!r} is already registered")
    SCORERS[name] = scorer


def simulator_id(simulator: Simulator) -> str:
    return f"{simulator.name}:{simulator.model}" if simulator.model else simulator.name


async def simulation_scorer(job: ScoringJob) -> ScoreResult:
    """Correlation between simulated and real activations over all tokens."""
    started = time.perf_counter()
    result = ScoreResult(
        explanation=job.explanation,
        score=math.nan,
        scorer="simulation",
        simulator=simulator_id(job.simulator),
        normalization=job.normalization,
        sampling=dict(job.sampling),
    )
    sequences = [
        SequenceResult(
            tokens=list(record.tokens),
            raw=list(record.activations),
            real=list(real),
            simulated=None,
            index=index,
        )
        for record, real, index in zip(job.records, job.real, job.indices, strict=True)
    ]
    result.sequences = sequences
    if all(value == 0 for real in job.real for value in real):
        result.error = (
            "every real activation is zero (after normalisation), so the score is undefined; "
            "give records where the neuron fires"
        )
        result.seconds = time.perf_counter() - started
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
    for sequence, simulation, cached in zip(sequences, simulations, from_cache, strict=True):
        sequence.cached = cached
        if simulation.ok and simulation.activations is not None:
            sequence.simulated = simulation.activations
            sequence.correlation = pearson(sequence.real, simulation.activations)
        else:
            sequence.error = simulation.error or "simulation failed"
            failures.append(sequence)
    if failures:
        result.error = (
            f"{len(failures)} of {len(sequences)} sequences could not be simulated, so the score is "
            f"undefined; first reason: {failures[0].error}"
        )
    else:
        metrics = compute_metrics(
            [seq.real for seq in sequences],
            [seq.simulated or [] for seq in sequences],
            seed=job.seed,
        )
        result.metrics = metrics
        result.score = float(metrics["correlation"])
        if math.isnan(result.score):
            result.error = metrics["metric_errors"].get("correlation", "the correlation is undefined")
    result.seconds = time.perf_counter() - started
    return result


register_scorer("simulation", simulation_scorer)
