"""What the protocols share: the examples a judge is shown, what it said, one run's value, and k runs' mean ± sd."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from scoring.errors import ScoringInputError
from scoring.shared_types import Usage

EXACT = 1e-9
"""A derived value equals a claimed one when they differ by at most this (both are ratios of small counts)."""


class DetailsError(ScoringInputError):
    """Stored details (a score's ``jsonDetails``) that cannot be read; the message says what is wrong where."""


@dataclass
class Example:
    """One text a protocol shows its judge."""

    group: str
    """Where it comes from: ``top``, ``zero``, ``decoy`` (recall_alt); ``activating``, ``non-activating``
    (delphi); ``top``, ``importance``, ``random`` (SAEBench)."""
    tokens: list[str]
    values: list[float]
    """Activations as the protocol sends or stores them (Neuronpedia's top rows rescaled to a max of 10)."""
    expected: bool
    """The right answer: the explanation matches (recall_alt), the example is activating (delphi, SAEBench)."""
    text: str = ""
    """The example as the judge reads it (highlighted tokens between << and >>)."""
    marked: list[int] = field(default_factory=list)
    """Positions of the highlighted tokens (delphi's fuzz); empty when nothing is highlighted."""
    source: int | None = None
    """Position of its row in the loaded records; None for decoys and examples read from stored details."""
    note: str = ""
    """Anything a reader should know about how it was built."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "tokens": self.tokens,
            "values": self.values,
            "expected": self.expected,
            "text": self.text,
            "marked": self.marked,
            "source": self.source,
            "note": self.note,
        }


@dataclass
class Judged:
    """What the judge said about one example in one run."""

    example: Example
    answer: bool | None
    """The judge's yes (True) or no (False); None when its batch was dropped (delphi) or the reply unusable."""
    reason: str = ""
    """The judge's reason, or why there is no usable answer."""
    failed: bool = False
    """The call failed or its reply could not be read (recall_alt counts such an example as "no match")."""
    counted: bool = True
    """Whether it enters the score (delphi drops the rows of a failed batch)."""
    batch: int | None = None
    """Batch number (delphi), in the order sent."""
    run: int = 0
    """Which of the k runs of a sampled judge."""

    @property
    def correct(self) -> bool | None:
        """Whether the answer is the right one (None when there is no answer)."""
        return None if self.answer is None else self.answer == self.example.expected

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.example.to_dict(),
            "answer": self.answer,
            "correct": self.correct,
            "reason": self.reason,
            "failed": self.failed,
            "counted": self.counted,
            "batch": self.batch,
            "run": self.run,
        }


@dataclass
class ProtocolRun:
    """One run of a protocol's judge over its examples: the value it gives, or why there is none."""

    value: float
    error: str | None
    judged: list[Judged]
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    """Every reply came from the cache."""


@dataclass
class ProtocolOutcome:
    """A protocol scored by a judge (or an embedding model): every run, and how it was made."""

    protocol: str
    """Neuronpedia's type name (``recall_alt``, ``eleuther_fuzz``, ...) or ``saebench``."""
    runs: list[ProtocolRun]
    judge: str
    """Who answered: a simulator id (``openai:gpt-4o-mini``) or an embedding model's name."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """The request parameters sent (temperature, max_tokens, response_format, ...)."""
    prompt: str = "ours"
    """Whose prompt: ``stored`` (the feature's own messages), ``file`` (supplied by the user) or ``ours``."""
    notes: list[str] = field(default_factory=list)
    """What differs from the original protocol, or was noticed on the way."""

    @property
    def values(self) -> list[float]:
        return [run.value for run in self.runs if run.error is None and math.isfinite(run.value)]

    @property
    def mean(self) -> float:
        values = self.values
        return statistics.fmean(values) if values else math.nan

    @property
    def sd(self) -> float:
        """Sample standard deviation over the runs that gave a value (NaN with fewer than two)."""
        values = self.values
        return statistics.stdev(values) if len(values) >= 2 else math.nan

    @property
    def error(self) -> str | None:
        """None when some run gave a value, else the first run's reason."""
        if self.values:
            return None
        return next((run.error for run in self.runs if run.error), "no run gave a value")

    @property
    def usage(self) -> Usage:
        total = Usage()
        for run in self.runs:
            total.add(run.usage)
        return total

    def to_dict(self, include_examples: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "judge": self.judge,
            "prompt": self.prompt,
            "parameters": self.parameters,
            "value": _finite(self.mean),
            "sd": _finite(self.sd),
            "runs": [_finite(run.value) for run in self.runs],
            "run_errors": [run.error for run in self.runs],
            "error": self.error,
            "notes": self.notes,
            "usage": self.usage.to_dict(),
        }
        if include_examples:
            data["judged"] = [item.to_dict() for run in self.runs for item in run.judged]
        return data


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def js_truthy(value: Any) -> bool:
    """JavaScript's truth of a parsed JSON value (Neuronpedia's TypeScript reads ``match`` this way)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def number(value: Any) -> float | None:
    """A JSON number as a float (None for anything else, booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def tokens_and_values(item: Any, where: str, tokens_key: str = "tokens", values_key: str = "values") -> tuple[
    list[str], list[float]
]:
    """A stored example's tokens and values, checked: lists of strings and numbers of the same length."""
    if not isinstance(item, dict):
        raise DetailsError(f"{where} is not an object")
    tokens, values = item.get(tokens_key), item.get(values_key)
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise DetailsError(f"{where}.{tokens_key} must be a list of strings")
    if not isinstance(values, list) or any(number(value) is None for value in values):
        raise DetailsError(f"{where}.{values_key} must be a list of numbers")
    if len(tokens) != len(values):
        raise DetailsError(f"{where} has {len(tokens)} {tokens_key} but {len(values)} {values_key}")
    return list(tokens), [float(value) for value in values]


@dataclass
class Derivation:
    """A stored score re-derived from the details stored with it."""

    protocol: str
    value: float
    """The value the stored judgments give by the protocol's own arithmetic (NaN when they cannot be read)."""
    judged: list[Judged] = field(default_factory=list)
    """The stored judgments, as evidence."""
    problem: str | None = None
    """Why the details cannot be read, or why the protocol would have saved no score from them."""
    notes: list[str] = field(default_factory=list)
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    """Other readings of details that the stored schema leaves ambiguous: (what is assumed, the value then)."""

    def follows(self, claimed: float) -> bool | None:
        """Whether `claimed` is the derived value (or one of the alternative readings); None when not derivable."""
        if not math.isfinite(self.value):
            return None
        candidates = [self.value, *(value for _, value in self.alternatives)]
        return any(abs(candidate - claimed) <= EXACT for candidate in candidates)

    def reading_for(self, claimed: float) -> str | None:
        """The alternative reading the claim follows from, when it follows from one but not the main reading."""
        if math.isfinite(self.value) and abs(self.value - claimed) <= EXACT:
            return None
        return next((label for label, value in self.alternatives if abs(value - claimed) <= EXACT), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "value": _finite(self.value),
            "problem": self.problem,
            "notes": self.notes,
            "alternatives": [{"assuming": label, "value": value} for label, value in self.alternatives],
            "judged": [item.to_dict() for item in self.judged],
        }
