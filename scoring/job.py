"""What every scorer receives and returns: the prepared job, and a result holding its sequences.

`scoring.api` builds the `ScoringJob`; the scorers (`scoring.simulated`,
`scoring.judged`, registered in `scoring.scorers`) turn it into a `ScoreResult`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.cache import SimulationCache
from scoring.records import ActivationRecord, AttentionRecord
from scoring.results import ScoreResult, SequenceResult
from scoring.shared_types import Progress
from scoring.simulators.base import Simulator


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
    progress: Progress | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Options of the chosen scorer (checked against the option names of its `scorers.SCORER_TABLE` row)."""
    attention_records: Sequence[AttentionRecord] = ()
    """The records of an attention-head score (its `records` are then empty)."""


Scorer = Callable[[ScoringJob], Awaitable[ScoreResult]]


def simulator_id(simulator: Simulator, writing: bool = False) -> str:
    """``name:model``; with `writing`, the model that judges and explains when it differs (``local``)."""
    model = (getattr(simulator, "text_model", None) if writing else None) or simulator.model
    return f"{simulator.name}:{model}" if model else simulator.name


def new_result(job: ScoringJob, scorer: str, positions: Sequence[int] | None = None) -> ScoreResult:
    """A NaN result of `scorer` holding the job's chosen sequences (or those at `positions` of them)."""
    result = ScoreResult(
        explanation=job.explanation,
        score=math.nan,
        scorer=scorer,
        simulator=simulator_id(job.simulator),
        normalization=job.normalization,
        sampling=dict(job.sampling),
    )
    chosen = range(len(job.records)) if positions is None else positions
    result.sequences = [
        SequenceResult(
            tokens=list(job.records[i].tokens),
            raw=list(job.records[i].activations),
            real=list(job.real[i]),
            simulated=None,
            index=job.indices[i],
        )
        for i in chosen
    ]
    return result
