"""`fake`: a deterministic simulator (and judge) for tests and demos of the plumbing.

A token scores 10 when its lowercased, stripped text is a word of the
explanation, else 0. As a judge it answers P(yes) = 1 - 0.5**k, where k counts
the words inside the question's << >> marks (or of its whole content when
nothing is marked) that are words of the explanation: 0 when none is, 0.5 for
one, 0.75 for two. ``fake:fail`` fails every sequence and question with a
reason and ``fake:garbage`` returns the wrong number of values (and a P(yes) of
1.5), to exercise error paths. It counts its calls so tests can prove the cache
works.

As an explainer it names the strongest token of each record shown: attempt
``i`` is "the token X" for the i-th most frequent one (ties: the higher summed
activation, then alphabetical), and an error once the distinct tokens run out.
``fake:fail`` fails and ``fake:garbage`` writes an empty reply.

``fake:prepare`` simulates as the default mode does, but like a model that must be
converted on first use it first needs preparing (`preparation_needed`, `prepare`:
a few short steps with progress), so the first-use path of a UI can be tested.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from scoring.errors import ScoringInputError
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Usage,
)
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch

MODES = ("match", "fail", "garbage", "prepare")

PREPARATION_STEPS = 4
PREPARATION_STEP_SECONDS = 0.75
"""``fake:prepare``'s pretend first-use preparation: this many steps of this many seconds."""

_MARKED = re.compile(r"<<(.*?)>>", re.DOTALL)


def words(text: str) -> list[str]:
    """Lowercased runs of letters and digits: what the fake rules compare."""
    return re.findall(r"[a-z0-9]+", text.lower())


def fake_p_yes(explanation: str, content: str) -> float:
    """The fake judge's answer (see the module docstring)."""
    wanted = set(words(explanation))
    marked = _MARKED.findall(content)
    focus = " ".join(marked) if marked else content
    matches = sum(word in wanted for word in words(focus))
    return 1.0 - 0.5**matches


class FakeSimulator:
    name = "fake"
    prompt_version = "fake-1"
    explain_prompt_version = "fake-explain-1"
    capabilities = Capabilities(
        max_sequences_per_call=4, max_concurrency=4, can_judge=True, max_questions_per_call=4, cheap=True
    )

    def __init__(self, mode: str = "match") -> None:
        if mode not in MODES:
            raise ScoringInputError(f"unknown fake mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.mode = mode
        self.model = f"fake-{mode}"
        self.calls = 0
        self.sequences_simulated = 0
        self.questions_judged = 0
        self.explain_calls = 0
        self.prepared = mode != "prepare"

    def preparation_needed(self) -> str | None:
        """``fake:prepare`` before its preparation: what it pretends to do first; None otherwise."""
        if self.prepared:
            return None
        return f"prepares a pretend model, about {PREPARATION_STEPS * PREPARATION_STEP_SECONDS:g} s"

    def prepare(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """The pretend preparation: `PREPARATION_STEPS` steps reported as progress(stage, done, total)."""
        if self.prepared:
            return
        for done in range(1, PREPARATION_STEPS + 1):
            time.sleep(PREPARATION_STEP_SECONDS)
            if progress is not None:
                progress("preparing the pretend model", done, PREPARATION_STEPS)
        self.prepared = True

    @classmethod
    def from_argument(cls, argument: str | None) -> FakeSimulator:
        return cls(argument or "match")

    def options(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def explain_options(self) -> dict[str, Any]:
        return {"mode": self.mode}

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        self.calls += 1
        self.sequences_simulated += len(sequences)
        wanted = set(words(explanation))
        results = []
        for tokens in sequences:
            if self.mode == "fail":
                results.append(SequenceSimulation(None, "fake:fail always fails"))
            elif self.mode == "garbage":
                results.append(SequenceSimulation([5.0] * (len(tokens) + 1)))
            else:
                results.append(
                    SequenceSimulation([10.0 if token.strip().lower() in wanted else 0.0 for token in tokens])
                )
        # A failed request read nothing: it costs no tokens (a real backend's failures are counted by the runner).
        prompt_tokens = 0 if self.mode == "fail" else sum(len(tokens) for tokens in sequences)
        return SimulationBatch(results, Usage(requests=1, prompt_tokens=prompt_tokens))

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        self.calls += 1
        self.questions_judged += len(questions)
        if self.mode == "fail":
            judgments = [Judgment(None, "fake:fail always fails") for _ in questions]
        elif self.mode == "garbage":
            judgments = [Judgment(1.5) for _ in questions]
        else:
            judgments = [Judgment(fake_p_yes(question.explanation, question.content)) for question in questions]
        usage = Usage(requests=1, prompt_tokens=sum(len(question.prompt.split()) for question in questions))
        return JudgmentBatch(judgments, usage)

    async def explain(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        self.explain_calls += 1
        usage = Usage(requests=1, prompt_tokens=sum(len(example.tokens) for example in examples))
        if self.mode == "fail":
            return ExplanationAttempt(None, "fake:fail always fails", usage)
        if self.mode == "garbage":
            return ExplanationAttempt("  ", usage=usage)
        counts: Counter[str] = Counter()
        strength: dict[str, float] = {}
        for example in examples:
            if not example.tokens:
                continue
            peak = max(range(len(example.tokens)), key=lambda index: example.activations[index])
            token = example.tokens[peak].strip() or repr(example.tokens[peak])
            counts[token] += 1
            strength[token] = strength.get(token, 0.0) + example.activations[peak]
        ranked = sorted(counts, key=lambda token: (-counts[token], -strength[token], token))
        if attempt >= len(ranked):
            return ExplanationAttempt(None, f"fake: only {len(ranked)} distinct top-activating tokens", usage)
        return ExplanationAttempt(f"the token {ranked[attempt]}", usage=usage)
