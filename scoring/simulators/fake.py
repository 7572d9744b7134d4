"""`fake`: a deterministic simulator for tests and demos of the plumbing.

A token scores 10 when its lowercased, stripped text is a word of the
explanation, else 0. ``fake:fail`` fails every sequence with a reason and
``fake:garbage`` returns the wrong number of values, to exercise error paths.
It counts its calls so tests can prove the cache works.

As an explainer it names the strongest token of each record shown: attempt
``i`` is "the token X" for the i-th most frequent one (ties: the higher summed
activation, then alphabetical), and an error once the distinct tokens run out.
``fake:fail`` fails and ``fake:garbage`` writes an empty reply.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
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

MODES = ("match", "fail", "garbage")


class FakeSimulator:
    name = "fake"
    prompt_version = "fake-1"
    explain_prompt_version = "fake-explain-1"
    capabilities = Capabilities(max_sequences_per_call=4, max_concurrency=4)

    def __init__(self, mode: str = "match") -> None:
        if mode not in MODES:
            raise ScoringInputError(f"unknown fake mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.mode = mode
        self.model = f"fake-{mode}"
        self.calls = 0
        self.sequences_simulated = 0
        self.explain_calls = 0

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
        words = set(re.findall(r"[a-z0-9]+", explanation.lower()))
        results = []
        for tokens in sequences:
            if self.mode == "fail":
                results.append(SequenceSimulation(None, "fake:fail always fails"))
            elif self.mode == "garbage":
                results.append(SequenceSimulation([5.0] * (len(tokens) + 1)))
            else:
                results.append(
                    SequenceSimulation([10.0 if token.strip().lower() in words else 0.0 for token in tokens])
                )
        usage = Usage(requests=1, prompt_tokens=sum(len(tokens) for tokens in sequences))
        return SimulationBatch(results, usage)

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
