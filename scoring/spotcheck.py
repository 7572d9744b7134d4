"""Spot-checking claimed scores: does a claim agree with a re-score, and was it made the same way?

A claim (e.g. a score shown on Neuronpedia) is only comparable with a re-score
made by the same method: the same kind of score and the same simulator model.
`compare_method` says whether that holds; `verdict` says whether the claimed
number lies inside the re-score's interval, and marks the verdict when the
methods differ, because a gap then measures the methods as much as the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scoring.results import ScoreResult

SCORE_TYPE_SCORERS = {
    "oai_token-act-pair": "simulation",
    "simulation": "simulation",
    "correlation": "simulation",
    "eleuther_fuzz": "fuzzing-judge",
    "eleuther_detection": "detection-judge",
}
"""Claimed score types (Neuronpedia's explanationScoreTypeName, or ours) and the scorer here that computes the same
kind of number. ``oai_token-act-pair`` is OpenAI's simulate-and-correlate method, the ``simulation`` scorer."""

VERDICTS = ("agrees", "disagrees", "agrees (methods differ)", "disagrees (methods differ)", "no claim", "not scored")


@dataclass(frozen=True)
class MethodComparison:
    """How a claim's method compares with the re-score's."""

    same: bool
    """True when the claim names the re-score's scorer and simulator model; False when either differs or is unknown."""
    note: str
    """One sentence for the table: what differs, or 'same scorer and model'."""


def simulator_model(simulator: str) -> str:
    """The model part of a result's simulator id (``openai:gpt-4o-mini`` -> ``gpt-4o-mini``; ``lexical`` -> '')."""
    name, _, model = simulator.partition(":")
    return model or ("" if name in ("lexical", "embedding") else name)


def compare_method(score_type: str, score_model: str, result: ScoreResult) -> MethodComparison:
    """Whether a claim of `score_type` made with `score_model` was computed as `result` was."""
    claimed_scorer = SCORE_TYPE_SCORERS.get(score_type.strip().lower()) if score_type else None
    rescored_by = f"{result.scorer} with {result.simulator or 'an unnamed simulator'}"
    if not score_type:
        return MethodComparison(False, f"the claim does not say how it was scored; re-scored by {rescored_by}")
    if claimed_scorer is None:
        return MethodComparison(False, f"{score_type} is not a method computed here; re-scored by {rescored_by}")
    if claimed_scorer != result.scorer:
        return MethodComparison(
            False, f"claim is {score_type} (the {claimed_scorer} scorer here), re-score by {rescored_by}"
        )
    model = simulator_model(result.simulator)
    if not score_model:
        return MethodComparison(
            False, f"same scorer; the claim does not name its model, re-scored with {result.simulator}"
        )
    if score_model.strip().lower() != model.lower():
        return MethodComparison(
            False, f"same scorer; claim scored with {score_model}, re-score with {result.simulator}"
        )
    return MethodComparison(True, "same scorer and model")


def verdict(claimed: float | None, result: ScoreResult, tolerance: float = 0.05, same_method: bool = True) -> str:
    """'agrees' or 'disagrees' (with '(methods differ)' when not `same_method`), 'no claim' or 'not scored'.

    A claim agrees when it lies inside the re-score's bootstrap interval widened
    by `tolerance` on each side (or within `tolerance` of the score when no
    interval is available).
    """
    if claimed is None or not math.isfinite(claimed):
        return "no claim"
    if not math.isfinite(result.score):
        return "not scored"
    low, high = result.interval
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = result.score
    agrees = low - tolerance <= claimed <= high + tolerance
    word = "agrees" if agrees else "disagrees"
    return word if same_method else f"{word} (methods differ)"
