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

from scoring.shared_types import Judge, JudgeQuestion, Judgment, JudgmentBatch

__all__ = ["Judge", "JudgeQuestion", "Judgment", "JudgmentBatch", "can_judge", "check_judgment"]


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
