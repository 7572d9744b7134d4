"""`fake`: a deterministic simulator (and judge) for tests and demos of the plumbing.

A token scores 10 when its lowercased, stripped text is a word of the
explanation, else 0. As a judge it answers P(yes) = 1 - 0.5**k, where k counts
the words inside the question's << >> marks (or of its whole content when
nothing is marked) that are words of the explanation: 0 when none is, 0.5 for
one, 0.75 for two. To a protocol's chat request (`fake_chat_reply`) it answers in the
request's reply shape by the same rule; as an embedding model (`FakeSimulator.embed`) it hashes
words into a bag-of-words vector. ``fake:fail`` fails every sequence and question with a
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

import json
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from scoring.errors import ScoringInputError
from scoring.shared_types import PreparationProgress
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    Usage,
)
from scoring.simulators.chat import ChatBatch, ChatReply, ChatRequest
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch

MODES = ("match", "fail", "garbage", "prepare")

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")

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


def _recall_alt_match(request: ChatRequest) -> bool:
    """match-json: does a token with an activation above 0 in the final message's JSON name a word of the
    explanation? (Falls back to the request's explanation and items when the message is not that JSON.)"""
    try:
        shown = json.loads(request.messages[-1][1])
        explanation = str(shown["explanation"])
        firing = " ".join(
            str(item["token"])
            for item in shown["activations"]
            if isinstance(item.get("activation"), (int, float)) and item["activation"] > 0
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        explanation, firing = request.explanation, " ".join(request.items)
    wanted = set(words(explanation))
    return any(word in wanted for word in words(firing))


def fake_chat_reply(request: ChatRequest) -> str:
    """The fake judge's reply text to a protocol request, in its reply shape.

    match-json: ``{"match": ...}`` by `_recall_alt_match`; binary-list: 1 for each of `request.items`
    whose `fake_p_yes` is at least 0.5, one entry per item; index-list: the numbers (from 1) of
    those items, or "None"; text: "fake".
    """
    if request.reply_shape == "match-json":
        match = _recall_alt_match(request)
        reason = "a firing token names it" if match else "no firing token names it"
        return json.dumps({"match": match, "reason": f"fake: {reason}"})
    answers = [fake_p_yes(request.explanation, item) >= 0.5 for item in request.items]
    if request.reply_shape == "binary-list":
        return "[" + ", ".join("1" if answer else "0" for answer in answers) + "]"
    if request.reply_shape == "index-list":
        return ", ".join(str(number) for number, answer in enumerate(answers, start=1) if answer) or "None"
    return "fake"


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
        self.chat_requests = 0
        self.prepared = mode != "prepare"

    def preparation_needed(self) -> str | None:
        """``fake:prepare`` before its preparation: what it pretends to do first; None otherwise."""
        if self.prepared:
            return None
        return f"prepares a pretend model, about {PREPARATION_STEPS * PREPARATION_STEP_SECONDS:g} s"

    def prepare(self, progress: PreparationProgress | None = None) -> None:
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

    def _by_mode(
        self,
        items: Sequence[_Item],
        failed: Callable[[None, str], _Answer],  # the answer's class: failed(None, reason)
        *,
        garbage: Callable[[_Item], _Answer],
        good: Callable[[_Item], _Answer],
    ) -> list[_Answer]:
        """One answer per item, as the mode says: every one failed (`fail`), `garbage`, or `good` (`match`)."""
        if self.mode == "fail":
            return [failed(None, "fake:fail always fails") for _ in items]
        answer = garbage if self.mode == "garbage" else good
        return [answer(item) for item in items]

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        self.calls += 1
        self.sequences_simulated += len(sequences)
        wanted = set(words(explanation))
        results = self._by_mode(
            sequences,
            SequenceSimulation,
            garbage=lambda tokens: SequenceSimulation([5.0] * (len(tokens) + 1)),
            good=lambda tokens: SequenceSimulation(
                [10.0 if token.strip().lower() in wanted else 0.0 for token in tokens]
            ),
        )
        # A failed request read nothing: it costs no tokens (a real backend's failures are counted by the runner).
        prompt_tokens = 0 if self.mode == "fail" else sum(len(tokens) for tokens in sequences)
        return SimulationBatch(results, Usage(requests=1, prompt_tokens=prompt_tokens))

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        self.calls += 1
        self.questions_judged += len(questions)
        judgments = self._by_mode(
            questions,
            Judgment,
            garbage=lambda _question: Judgment(1.5),
            good=lambda question: Judgment(fake_p_yes(question.explanation, question.content)),
        )
        usage = Usage(requests=1, prompt_tokens=sum(len(question.prompt.split()) for question in questions))
        return JudgmentBatch(judgments, usage)

    async def chat(self, requests: Sequence[ChatRequest]) -> ChatBatch:
        self.calls += 1
        self.chat_requests += len(requests)
        replies = self._by_mode(
            requests,
            ChatReply,
            garbage=lambda _request: ChatReply("not an answer"),
            good=lambda request: ChatReply(fake_chat_reply(request)),
        )
        prompt_tokens = sum(len(request.messages[-1][1].split()) for request in requests)
        usage = Usage(requests=len(requests), prompt_tokens=prompt_tokens)
        return ChatBatch(replies, usage)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Bag-of-words vectors (each word hashed to one of 64 dimensions), unit length: texts that share words
        are similar."""
        vectors = np.zeros((len(texts), 64), dtype=np.float64)
        for row, text in enumerate(texts):
            for word in words(text):
                vectors[row, zlib.crc32(word.encode("utf-8")) % 64] += 1.0
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        return vectors / norms[:, None]

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
