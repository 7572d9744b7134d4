"""The optional second interface of a simulator: answering yes/no questions.

The judge scorers (detection-judge, fuzzing-judge, binary-condition,
attention-head) do not ask for activations; they ask a model whether a text,
or marked tokens in it, match an explanation, and read the answer as P(yes).
A simulator that can answer sets ``capabilities.can_judge`` and implements
`Judge.judge`. As for simulations, caching, chunking, concurrency, validation
and cost accounting live once in `scoring.simulators.runner`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from scoring.simulators.base import Capabilities, Usage


@dataclass(frozen=True)
class JudgeQuestion:
    """One yes/no question about an explanation and a piece of text (built by `scoring.prompts`)."""

    kind: str
    """Which scorer asks it: ``detection``, ``fuzzing``, ``binary-condition`` or ``attention-head``."""
    explanation: str
    """The explanation being judged."""
    content: str
    """What the question shows besides the explanation: the text, with marked tokens where the kind marks some."""
    prompt: str
    """The whole question as a judge reads it, without the answer cue (the backends add their own framing)."""
    prompt_version: str
    """Version of the judge prompts; enters the cache key."""


@dataclass
class Judgment:
    """A judge's answer to one question, or the reason there is none."""

    p_yes: float | None
    """Probability of "yes", 0..1; None when the question could not be answered."""
    error: str | None = None
    """Why there is no answer (None on success). A failure is never read as "no"."""

    @property
    def ok(self) -> bool:
        return self.p_yes is not None and self.error is None


@dataclass
class JudgmentBatch:
    """What one `judge` call returns: one judgment per question, in order."""

    judgments: list[Judgment]
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class Judge(Protocol):
    """Answers yes/no questions. `name`, `model` and `options()` enter the cache key with the question."""

    name: str
    model: str
    capabilities: Capabilities

    def options(self) -> dict[str, Any]: ...

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch: ...


def can_judge(simulator: object) -> bool:
    """True when `simulator` says it judges and has the method to do it."""
    capabilities = getattr(simulator, "capabilities", None)
    return bool(getattr(capabilities, "can_judge", False)) and callable(getattr(simulator, "judge", None))


def check_judgment(judgment: Judgment) -> Judgment:
    """Validate a judge's answer: a probability outside 0..1, NaN or a non-number fails with the reason."""
    if judgment.error is not None or judgment.p_yes is None:
        return Judgment(None, judgment.error or "the judge returned no answer")
    value = judgment.p_yes
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Judgment(None, f"the judge returned a non-number: {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return Judgment(None, f"the judge returned {value!r}, not a probability in 0..1")
    return Judgment(float(value))
