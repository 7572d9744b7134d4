"""The chance level of a score: what unrelated explanations score on the same records.

A score of 0.4 means little alone: it depends on the simulator, the scorer and
the records. `scoring.null_scores` scores a bank of explanations of unrelated
features (shipped in ``scoring/data/null_explanations.txt``, each about a
different kind of feature) through the same simulator, scorer, sampling and
normalization; the `NullDistribution` it returns places any score among them
as a percentile and as a margin over their 95th percentile.

An unrelated explanation that predicts nothing (the same value on every token)
has no correlation to report: its score stays NaN in the null's record, and
it stands in the null for 0, the correlation of a prediction that carries no
information (the ROC-AUC scorers give such a prediction 0.5 themselves). An
explanation whose own score is NaN has no standing against the null (NaN). An
unrelated explanation whose simulation failed is left out and named.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoring.errors import ScoringInputError
from scoring.results import ScoreResult

NULL_BANK_FILE = Path(__file__).resolve().parent / "data" / "null_explanations.txt"
NULL_SIZE = 20
"""Unrelated explanations scored by default (of the 40 in the bank): the 95th percentile is then the second
highest of 20."""
NULL_QUANTILE = 0.95
NULL_METRICS = ("null_percentile", "null_p95", "over_null_p95", "null_n")
"""The numbers `attach_null` adds to each result's metrics (with the whole null under ``"null"``)."""


def null_bank() -> list[str]:
    """The shipped explanations of unrelated features, in file order."""
    lines = NULL_BANK_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def choose_null(
    n: int = NULL_SIZE, *, exclude: Sequence[str] = (), seed: int = 0, bank: Sequence[str] | None = None
) -> list[str]:
    """`n` explanations of the bank (seeded draw), leaving out any that is one of `exclude` (case-insensitive)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ScoringInputError(f"a null needs at least 2 unrelated explanations, got {n!r}")
    taken = {text.strip().casefold() for text in exclude}
    pool = [text for text in (null_bank() if bank is None else list(bank)) if text.strip().casefold() not in taken]
    if len(pool) < n:
        raise ScoringInputError(f"the null bank has {len(pool)} unrelated explanations left, fewer than {n}")
    return random.Random(seed).sample(pool, n)


NO_INFORMATION = 0.0
"""What an unrelated explanation that predicted nothing (NaN score) stands for in the null: no correlation."""


def _null_value(score: float) -> float:
    return score if math.isfinite(score) else NO_INFORMATION


@dataclass
class NullDistribution:
    """Scores of unrelated explanations on the same records, with the same simulator and scorer."""

    scorer: str
    """The scorer they were scored with."""
    simulator: str
    """The simulator, as `ScoreResult.simulator` names it."""
    explanations: list[str]
    """The unrelated explanations whose scores make the null (failed ones left out)."""
    scores: list[float]
    """Their scores; NaN where the explanation predicted nothing (it stands for `NO_INFORMATION`, 0)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Unrelated explanations whose scoring failed, with the reason (not part of the null)."""

    @classmethod
    def from_results(cls, results: Sequence[ScoreResult]) -> NullDistribution:
        """From the `ScoreResult`s of the unrelated explanations (one scorer)."""
        if not results:
            raise ScoringInputError("a null needs the results of at least one unrelated explanation")
        kept: list[ScoreResult] = []
        failed: dict[str, str] = {}
        for result in results:
            broken = next((sequence.error for sequence in result.sequences if sequence.error), None)
            if broken is not None or (not math.isfinite(result.score) and not result.sequences):
                failed[result.explanation] = broken or result.error or "not scored"
            else:
                kept.append(result)
        return cls(
            results[0].scorer,
            results[0].simulator,
            [result.explanation for result in kept],
            [float(result.score) for result in kept],
            failed,
        )

    @property
    def n(self) -> int:
        """How many unrelated explanations make the null."""
        return len(self.scores)

    @property
    def predicted_nothing(self) -> int:
        """How many of them have an undefined (NaN) score."""
        return sum(not math.isfinite(score) for score in self.scores)

    def percentile(self, score: float) -> float:
        """Share (0..100) of the null below `score`, ties counted half; NaN for a NaN score or an empty null."""
        if not math.isfinite(score) or not self.scores:
            return math.nan
        below = sum(_null_value(other) < score for other in self.scores)
        ties = sum(_null_value(other) == score for other in self.scores)
        return 100.0 * (below + 0.5 * ties) / len(self.scores)

    @property
    def values(self) -> list[float]:
        """The scores as the null counts them (NaN as `NO_INFORMATION`)."""
        return [_null_value(score) for score in self.scores]

    @property
    def threshold(self) -> float:
        """The null's 95th percentile (nearest rank; NaN for an empty null): a score above it beats at least
        95% of the unrelated explanations."""
        if not self.scores:
            return math.nan
        ranked = sorted(self.values)
        return ranked[max(0, math.ceil(NULL_QUANTILE * len(ranked)) - 1)]

    def margin(self, score: float) -> float:
        """`score` minus the null's 95th percentile (NaN when either is undefined)."""
        return score - self.threshold if math.isfinite(score) else math.nan

    def metrics(self, score: float) -> dict[str, float]:
        """The metrics `attach_null` adds for `score`."""
        return {
            "null_percentile": self.percentile(score),
            "null_p95": self.threshold,
            "over_null_p95": self.margin(score),
            "null_n": float(self.n),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: scorer, simulator, n, p95, and every unrelated explanation with its score (None for NaN)."""
        return {
            "scorer": self.scorer,
            "simulator": self.simulator,
            "n": self.n,
            "p95": None if math.isnan(self.threshold) else self.threshold,
            "predicted_nothing": self.predicted_nothing,
            "scores": [
                {"explanation": text, "score": score if math.isfinite(score) else None}
                for text, score in zip(self.explanations, self.scores, strict=True)
            ],
            "failed": dict(self.failed),
        }


def attach_null(results: Sequence[ScoreResult], null: NullDistribution) -> None:
    """Add each result's standing against `null` to its metrics (`NULL_METRICS`), and the null itself
    (`NullDistribution.to_dict`) under ``"null"``."""
    described = null.to_dict()
    for result in results:
        result.metrics.update(null.metrics(float(result.score)))
        result.metrics["null"] = described


def null_from_metrics(result: ScoreResult) -> NullDistribution | None:
    """The null `attach_null` stored in a result's metrics, or None when it has none."""
    described = result.metrics.get("null")
    if not isinstance(described, dict):
        return None
    entries = list(described.get("scores", []))
    return NullDistribution(
        str(described.get("scorer", result.scorer)),
        str(described.get("simulator", result.simulator)),
        [str(entry["explanation"]) for entry in entries],
        [math.nan if entry["score"] is None else float(entry["score"]) for entry in entries],
        dict(described.get("failed", {})),
    )
