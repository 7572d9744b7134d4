"""Result objects returned by the public API; all JSON-serialisable via `to_dict`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scoring.simulators.base import Usage


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
