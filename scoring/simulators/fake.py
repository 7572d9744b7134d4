"""`fake`: a deterministic simulator for tests and demos of the plumbing.

A token scores 10 when its lowercased, stripped text is a word of the
explanation, else 0. ``fake:fail`` fails every sequence with a reason and
``fake:garbage`` returns the wrong number of values, to exercise error paths.
It counts its calls so tests can prove the cache works.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from scoring.errors import ScoringInputError
from scoring.simulators.base import Capabilities, SequenceSimulation, SimulationBatch, Usage

MODES = ("match", "fail", "garbage")


class FakeSimulator:
    name = "fake"
    prompt_version = "fake-1"
    capabilities = Capabilities(max_sequences_per_call=4, max_concurrency=4)

    def __init__(self, mode: str = "match") -> None:
        if mode not in MODES:
            raise ScoringInputError(f"unknown fake mode {mode!r}; choose one of: {', '.join(MODES)}")
        self.mode = mode
        self.model = f"fake-{mode}"
        self.calls = 0
        self.sequences_simulated = 0

    @classmethod
    def from_argument(cls, argument: str | None) -> FakeSimulator:
        return cls(argument or "match")

    def options(self) -> dict[str, Any]:
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
