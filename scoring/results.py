"""Result objects returned by the public API; all JSON-serialisable via `to_dict`."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scoring.shared_types import Usage

if TYPE_CHECKING:
    import pandas as pd


def _json_float(value: float | None) -> float | None:
    """NaN/inf are not JSON; they become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """A copy of `value` with every NaN/inf float (at any depth) replaced by None."""
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


@dataclass
class SequenceResult:
    """One scored sequence: real and simulated activations side by side."""

    tokens: list[str]
    """Tokens as given."""
    raw: list[float]
    """Real activations as given (before normalisation)."""
    real: list[float]
    """Real activations normalised to 0..10 (floats; what the metrics compare against)."""
    simulated: list[float] | None
    """Simulated activations on 0..10, None when the simulation failed."""
    correlation: float = math.nan
    """Pearson correlation of real vs simulated in this sequence (NaN when undefined)."""
    error: str | None = None
    """Why this sequence could not be simulated or scored."""
    cached: bool = False
    """True when the simulation came from the cache."""
    index: int = 0
    """Position of this sequence in the loaded records."""
    applies: float | None = None
    """The simulator's chance (0..1) that the explanation applies to this text at all (None: it gave none;
    `SequenceSimulation.applies`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tokens": self.tokens,
            "raw": self.raw,
            "real": self.real,
            "simulated": self.simulated,
            "correlation": _json_float(self.correlation),
            "error": self.error,
            "cached": self.cached,
            "applies": self.applies,
        }


@dataclass
class JudgmentResult:
    """One yes/no question a judge scorer asked, and the answer."""

    index: int
    """Position of the record the question is about in the loaded records."""
    content: str
    """The text the judge was shown (marked tokens in << >>)."""
    target: float
    """What a perfect judge's P(yes) follows: 1 for a correct example and 0 for a wrong one, or
    (binary-condition) the window's highest real activation on the 0..10 scale."""
    p_yes: float | None
    """The judge's probability of "yes"; None when it could not answer."""
    error: str | None = None
    """Why there is no answer."""
    cached: bool = False
    """True when the answer came from the cache."""
    position: dict[str, int] = field(default_factory=dict)
    """Where in the record: marked token indices count ("marked"), a window ("start", "end"), or the
    attention pair ("from", "to")."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "content": self.content,
            "target": self.target,
            "p_yes": self.p_yes,
            "error": self.error,
            "cached": self.cached,
            "position": self.position,
        }


@dataclass
class ScoreResult:
    """The score of one explanation on a set of records."""

    explanation: str
    score: float
    """Headline score (correlation over all tokens for the simulation scorer), NaN when undefined."""
    sequences: list[SequenceResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    """Every metric by name (floats may be NaN; `metric_errors` says why)."""
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    """None, or why the score is NaN."""
    scorer: str = "simulation"
    simulator: str = ""
    """Spec-like id of the simulator (name:model)."""
    normalization: str = "global"
    sampling: dict[str, Any] = field(default_factory=dict)
    """How the sequences were chosen (strategy, n, seed, chosen indices)."""
    seconds: float = 0.0
    judgments: list[JudgmentResult] = field(default_factory=list)
    """The questions a judge scorer asked and their answers (empty for simulation-based scorers)."""

    @property
    def cached(self) -> bool:
        """True when every simulation (or, for a judge scorer, every answer) came from the cache."""
        if self.judgments:
            return all(judgment.cached for judgment in self.judgments)
        return bool(self.sequences) and all(seq.cached for seq in self.sequences)

    @property
    def failed(self) -> bool:
        """True when a simulation or a judge's answer failed (a server down, a bad reply: trying again may help),
        as opposed to a score that is undefined for these data (a constant simulation), which is a result."""
        return any(seq.error is not None for seq in self.sequences) or any(
            judgment.error is not None for judgment in self.judgments
        )

    @property
    def interval(self) -> tuple[float, float]:
        """Bootstrap 95% interval of the headline score (NaN, NaN when unavailable)."""
        return (
            float(self.metrics.get("ci_low", math.nan)),
            float(self.metrics.get("ci_high", math.nan)),
        )

    def to_dict(self, include_sequences: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "explanation": self.explanation,
            "score": _json_float(self.score),
            "error": self.error,
            "scorer": self.scorer,
            "simulator": self.simulator,
            "normalization": self.normalization,
            "sampling": self.sampling,
            "metrics": jsonable(self.metrics),
            "usage": self.usage.to_dict(),
            "cached": self.cached,
            "seconds": round(self.seconds, 4),
        }
        if include_sequences:
            data["sequences"] = [seq.to_dict() for seq in self.sequences]
            if self.judgments:
                data["judgments"] = [jsonable(judgment.to_dict()) for judgment in self.judgments]
        return data


@dataclass
class GeneratedExplanation:
    """One candidate explanation written by a simulator's explainer, or the reason there is none."""

    text: str | None
    """The explanation (one cleaned line); None when generation failed, never an empty string."""
    usage: Usage = field(default_factory=Usage)
    """What writing it cost (a cached candidate: one cache hit, no requests)."""
    error: str | None = None
    """None, or why no explanation was written."""
    simulator: str = ""
    """Spec-like id of the simulator that wrote it (name:model)."""
    attempt: int = 0
    """0 for the model's first choice, then 1, 2, ... for sampled ones."""
    cached: bool = False
    """True when it came from the cache."""

    @property
    def ok(self) -> bool:
        return self.text is not None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "error": self.error,
            "simulator": self.simulator,
            "attempt": self.attempt,
            "cached": self.cached,
            "usage": self.usage.to_dict(),
        }


# Exports: the ranking and every token as CSV, everything as JSON, usage totals.


def explanation_source(explanation: str, generated: Collection[str]) -> str:
    """'generated' for a candidate a simulator wrote, 'given' for one the user gave."""
    return "generated" if explanation in generated else "given"


def _metric(result: ScoreResult, name: str) -> float:
    value = result.metrics.get(name, math.nan)
    return float(value) if isinstance(value, (int, float)) else math.nan


def ranking_frame(results: Sequence[ScoreResult], generated: Collection[str] = ()) -> pd.DataFrame:
    """One row per explanation, in the given (ranked) order, with every headline number.

    `generated` names the explanations a simulator wrote; the ``source`` column says which.
    """
    rows = []
    for rank, result in enumerate(results, start=1):
        low, high = result.interval
        rows.append(
            {
                "rank": rank,
                "explanation": result.explanation,
                "source": explanation_source(result.explanation, generated),
                "score": result.score,
                "interval": interval_text(low, high),
                "ci_low": low,
                "ci_high": high,
                "r_squared": _metric(result, "r_squared"),
                "roc_auc": _metric(result, "roc_auc"),
                "spearman": _metric(result, "spearman"),
                "mean_seq_corr": _metric(result, "mean_sequence_correlation"),
                "chance_percentile": _metric(result, "null_percentile"),
                "over_chance_p95": _metric(result, "over_null_p95"),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "cost_usd": result.usage.cost_usd if result.usage.cost_usd is not None else math.nan,
                "cached": result.cached,
                "seconds": result.seconds,
                "error": result.error or "",
            }
        )
    import pandas as pd

    return pd.DataFrame(rows)


def interval_text(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{low:.2f}, {high:.2f}]"


def results_csv(results: Sequence[ScoreResult]) -> str:
    """The ranking table as CSV."""
    return ranking_frame(results).to_csv(index=False)


def tokens_csv(results: Sequence[ScoreResult]) -> str:
    """Every token of every explanation: explanation, sequence, position, token, raw, real, simulated."""
    rows = []
    for result in results:
        for sequence in result.sequences:
            simulated = sequence.simulated or [math.nan] * len(sequence.tokens)
            for position, token in enumerate(sequence.tokens):
                rows.append(
                    {
                        "explanation": result.explanation,
                        "sequence": sequence.index,
                        "position": position,
                        "token": token,
                        "raw": sequence.raw[position],
                        "real": sequence.real[position],
                        "simulated": simulated[position],
                        "error": sequence.error or "",
                    }
                )
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


def results_json(results: Sequence[ScoreResult], extra: Mapping[str, Any] | None = None) -> str:
    """Every result (with sequences) as a JSON document; NaN becomes null."""
    document: dict[str, Any] = dict(extra or {})
    document["results"] = [result.to_dict() for result in results]
    return json.dumps(jsonable(document), indent=2, allow_nan=False, default=str)


def usage_summary(results: Sequence[ScoreResult]) -> dict[str, Any]:
    """Totals over all results: requests, tokens, cost (None when unknown), cache hits/misses, seconds."""
    total = Usage()
    for result in results:
        total.add(result.usage)
    summary = total.to_dict()
    summary["seconds"] = sum(result.seconds for result in results)
    return summary

