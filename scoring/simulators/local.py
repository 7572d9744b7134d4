"""`local`: the embedded offline simulator, a packaged language model run in-process by torch.

Two roles, each with its own model (`LocalSimulator.simulator_model`, `.text_model`):

* **simulate.** *Pointer* prompt: worked examples of "Rule: ... / Text: ... / Words
  that fit: a, b", then the explanation as the rule, the whole sequence, and "Words
  that fit:". A word's *pointer value* is the log-probability that the model names
  it first there (its model tokens teacher-forced in turn), mapped linearly from
  ``floor`` nats (0) to 0 nats (10). The *list* methods also decode the model's whole
  answer greedily, each step restricted to the words of the text not listed yet
  (`ListDecoder`): a listed word gets 10, any other keeps `LIST_UNLISTED_SHARE` of its
  pointer value. The first slot alone splits its probability between all the words
  that fit a broad rule; the full list names each of them. The ``-chat`` methods
  write the same prompt as ChatML turns, for instruction models.
* **judge and explain.** P(yes) for the judge scorers' questions; few-shot
  explanations of top-activating records (greedy first, then seeded sampling).

All sequences of one call run as one batch over the shared opening (worked
examples and rule): `scoring.simulators.forward`. The models, their conversion
and the dtype live in `scoring.models`. Spec: ``local`` or
``local:model=...&method=...&floor=-N&text_model=...``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from scoring import models, prompts
from scoring.errors import ScoringInputError
from scoring.shared_types import PreparationProgress
from scoring.simulators import forward
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    SyncSimulator,
    Usage,
    check_simulation,
)
from scoring.simulators.chat import ChatBatch, ChatRequest
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch
from scoring.words import word_groups

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""The model that simulates when the spec names none."""

DEFAULT_METHOD = "text-first-chat"
"""The default method (chosen on the dev sets: docs/local-simulator.md)."""

DEFAULT_TEXT_MODEL = "qwen2.5-coder-1.5b"
"""The model that judges and explains when the spec names none."""

METHODS = ("pointer", "pointer-chat", "list", "list-chat", "text-first-chat")
LIST_METHODS = ("list", "list-chat", "text-first-chat")
CHAT_METHODS = ("pointer-chat", "list-chat", "text-first-chat")
TEXT_FIRST_METHODS = ("text-first-chat",)
"""Methods that write each text before the rule: its cells are computed once and serve every explanation."""

_PROMPT_VERSIONS = {
    "pointer": prompts.LOCAL_POINTER_PROMPT_VERSION,
    "pointer-chat": prompts.LOCAL_POINTER_CHAT_PROMPT_VERSION,
    "list": f"{prompts.LOCAL_POINTER_PROMPT_VERSION}+{prompts.LOCAL_LIST_DECODE_VERSION}",
    "list-chat": f"{prompts.LOCAL_POINTER_CHAT_PROMPT_VERSION}+{prompts.LOCAL_LIST_DECODE_VERSION}",
    "text-first-chat": f"{prompts.LOCAL_TEXT_FIRST_CHAT_PROMPT_VERSION}+{prompts.LOCAL_LIST_DECODE_VERSION}",
}
"""Prompt version of each method (in the cache key)."""

POINTER_FLOOR = -15.0
"""Log-probability (nats) at which a word's pointer value is 0; 0 nats maps to 10 (``floor=-N`` sets another)."""

LIST_MAX_WORDS = 16
"""Most words one answer list may name."""

LIST_MAX_STEPS = 64
"""Most model tokens one answer list may take."""

LIST_UNLISTED_SHARE = 0.5
"""List methods: a word the answer list leaves out keeps this share of its pointer value (listed: 10)."""

EXPLAIN_MAX_TOKENS = 24
"""Model tokens one explanation may take before it is cut."""

EXPLAIN_TEMPERATURE = 0.8
"""Sampling temperature of explain attempts after the first (which is greedy)."""

EXPLAIN_TOP_K = 40
"""Sampled attempts draw from this many most likely tokens only."""

JUDGE_QUESTIONS_PER_PASS = 16
"""Judge questions run as one batch."""


def _model_key(value: str | None, option: str, default: str) -> str:
    key = value or default
    if key not in models.MODELS:
        raise ScoringInputError(f"unknown local {option} {key!r}; choose one of: {', '.join(models.MODELS)}")
    return key


class LocalSimulator(SyncSimulator):
    """Predicts activations, judges and explains with packaged language models, in-process."""

    name = "local"
    explain_prompt_version = prompts.LOCAL_EXPLAIN_PROMPT_VERSION

    def __init__(
        self,
        model: str | None = None,
        method: str = DEFAULT_METHOD,
        floor: float | None = None,
        text_model: str | None = None,
        gate: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ScoringInputError(f"unknown local method {method!r}; choose one of: {', '.join(METHODS)}")
        self.simulator_model = _model_key(model, "model", DEFAULT_MODEL)
        """Key of the model that simulates."""
        self.text_model_key = _model_key(text_model or model, "text_model", DEFAULT_TEXT_MODEL)
        """Key of the model that judges and explains (the spec's model unless text_model names another)."""
        if method in CHAT_METHODS and not models.MODELS[self.simulator_model].chatml:
            chat_models = " or ".join(key for key, spec in models.MODELS.items() if spec.chatml)
            raise ScoringInputError(
                f"method {method} writes ChatML turns, which {self.simulator_model} was not trained on; "
                f"use it with model={chat_models}"
            )
        if floor is not None and not -100.0 <= floor < 0.0:
            raise ScoringInputError(
                f"local simulator floor={floor!r}: a floor is a log-probability in nats between -100 and 0, e.g. -5"
            )
        self.floor = POINTER_FLOOR if floor is None else float(floor)
        self.method = method
        self.model = models.MODELS[self.simulator_model].model_id
        self.text_model = models.MODELS[self.text_model_key].model_id
        if gate and method not in LIST_METHODS:
            raise ScoringInputError(
                f"gate=on weighs a text by the chance that its answer list names a word; method {method} writes no "
                f"list: use it with method={' or '.join(LIST_METHODS)}"
            )
        self.gate = gate
        """Weigh each text's values by the chance that its answer names a word of it rather than "none"
        (`ListDecoder.word_shares`; spec option ``gate=on``, off by default: docs/scorers.md, "detection")."""
        self.prompt_version = _PROMPT_VERSIONS[method] + (f"+{prompts.LOCAL_ANSWER_GATE_VERSION}" if gate else "")
        self.capabilities = Capabilities(
            max_sequences_per_call=32, max_concurrency=1, deterministic=True, can_judge=True, max_questions_per_call=32
        )

    @classmethod
    def from_argument(cls, argument: str | None) -> LocalSimulator:
        """Build from the part of a spec after ``local:`` (``model=...&method=...&floor=-5&text_model=...&gate=on``)."""
        if not argument:
            return cls()
        options = dict(parse_qsl(argument, keep_blank_values=True))
        unknown = set(options) - {"model", "method", "floor", "text_model", "gate"}
        if unknown:
            raise ScoringInputError(
                f"unknown local simulator option(s) {sorted(unknown)}; "
                "use model=..., method=..., floor=-N, text_model=..., gate=on"
            )
        gate = options.get("gate", "off")
        if gate not in ("on", "off"):
            raise ScoringInputError(f"local simulator gate must be on or off, got {gate!r}")
        floor = options.get("floor")
        try:
            floor_value = float(floor) if floor is not None else None
        except ValueError:
            raise ScoringInputError(
                f"local simulator floor must be a negative number of nats (e.g. floor=-5), got {floor!r}"
            ) from None
        return cls(
            model=options.get("model"),
            method=options.get("method", DEFAULT_METHOD),
            floor=floor_value,
            text_model=options.get("text_model"),
            gate=gate == "on",
        )

    def options(self) -> dict[str, Any]:
        # The weights' arithmetic (int8, bfloat16, float32) changes the numbers a little: part of the cache key.
        _, dtype = models.device_dtype_for(self.simulator_model)
        return {"method": self.method, "text_model": self.text_model, "floor": self.floor, "dtype": dtype}

    # ------------------------------------------------------------------ first use

    def preparation_needed(self) -> str | None:
        """What the first score will do before it starts (convert a model once per machine), or None."""
        keys = dict.fromkeys((self.simulator_model, self.text_model_key))
        missing = [key for key in keys if models.conversion_needed(key)]
        if not missing:
            return None
        if all(models.device_dtype_for(key)[1] == models.GGUF_DTYPE for key in missing):
            return (
                f"First use on this machine: joins {' and '.join(missing)} from the installed packages "
                "(about 10 seconds, 1.1 GB on disk), then loads it."
            )
        return (
            f"First use on this machine: converts {' and '.join(missing)} from the installed package "
            "(about 2 minutes, 3.6 GB on disk for the Qwen model), then loads it."
        )

    def prepare(self, progress: PreparationProgress | None = None) -> None:
        """Convert (if this machine never did) and load the simulating model, reporting `progress`."""
        models.load(self.simulator_model, progress=progress)

    def explain_options(self) -> dict[str, Any]:
        return {"max_tokens": EXPLAIN_MAX_TOKENS, "temperature": EXPLAIN_TEMPERATURE, "top_k": EXPLAIN_TOP_K}

    # ------------------------------------------------------------------ simulate

    def simulate_sync(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        lm = models.load(self.simulator_model)
        usage = Usage(requests=1)
        with lm.lock:
            before = lm.tokens_read
            outcomes = simulate_pointer(
                lm, explanation, [list(t) for t in sequences], self.method, self.floor, gate=self.gate
            )
            usage.prompt_tokens = lm.tokens_read - before
        results = [
            SequenceSimulation(None, outcome)
            if isinstance(outcome, str)
            else check_simulation(outcome, len(tokens), applies)
            for (outcome, applies), tokens in zip(outcomes, sequences, strict=True)
        ]
        return SimulationBatch(results, usage)

    # ------------------------------------------------------------------ judge

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        return await asyncio.to_thread(self.judge_sync, questions)

    def judge_sync(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        """P(yes) of each question: the softmax of the "Yes" and "No" logits after the answer cue."""
        lm = models.load(self.text_model_key)
        usage = Usage(requests=1)
        chat = lm.spec.chatml
        # After a chat model's "assistant" line the answer starts without a space.
        yes, no = (prompts.JUDGE_YES, prompts.JUDGE_NO)
        if chat:
            yes, no = yes.strip(), no.strip()
        yes_id, no_id = lm.encode(yes)[0], lm.encode(no)[0]
        prompts_ids = [lm.bos + lm.encode(judge_prompt(question, chat)) for question in questions]
        judgments: list[Judgment] = []
        with lm.lock:
            before = lm.tokens_read
            for start in range(0, len(prompts_ids), JUDGE_QUESTIONS_PER_PASS):
                chunk = prompts_ids[start : start + JUDGE_QUESTIONS_PER_PASS]
                shared = _common_prefix(chunk)
                try:
                    rows = forward.run_rows(lm, [shared], [ids[len(shared) :] for ids in chunk])
                except ValueError as exc:
                    judgments.extend(Judgment(None, str(exc)) for _ in chunk)
                    continue
                for row in range(len(chunk)):
                    margin = float(rows.last_logits[row, yes_id] - rows.last_logits[row, no_id])
                    judgments.append(Judgment(1.0 / (1.0 + math.exp(-margin))))
            usage.prompt_tokens = lm.tokens_read - before
        return JudgmentBatch(judgments, usage)

    async def chat(self, requests: Sequence[ChatRequest]) -> ChatBatch:
        """Protocol chat requests, answered by the text model (`scoring.simulators.local_chat`)."""
        from scoring.simulators import local_chat

        return await asyncio.to_thread(local_chat.answer, self.text_model_key, requests)

    # ------------------------------------------------------------------ explain

    async def explain(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        return await asyncio.to_thread(self.explain_sync, examples, attempt, seed)

    def explain_sync(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        """Continue the few-shot prompt up to a line break: greedy for attempt 0, seeded sampling after."""
        lm = models.load(self.text_model_key)
        ids = lm.bos + lm.encode(prompts.local_explain_prompt([example.as_lists() for example in examples]))
        if len(ids) + EXPLAIN_MAX_TOKENS > forward.MAX_PROMPT_TOKENS:
            return ExplanationAttempt(
                None,
                f"the prompt needs {len(ids)} model tokens but at most {forward.MAX_PROMPT_TOKENS} are allowed; "
                "show fewer records",
            )
        rng = np.random.default_rng([seed, attempt])
        stops = {token for token in (lm.tokenizer.eos_token_id, *lm.encode("<|im_end|>")) if token is not None}
        generated: list[int] = []
        text = ""
        usage = Usage(requests=1)
        with lm.lock:
            before = lm.tokens_read
            rows = forward.run_rows(lm, [ids[:-1]], [ids[-1:]])
            for _ in range(EXPLAIN_MAX_TOKENS):
                logits = forward.log_softmax(rows.last_logits[0])
                token = int(np.argmax(logits)) if attempt == 0 else _sample(logits, rng)
                if token in stops:
                    break
                generated.append(token)
                text = lm.decode(generated)
                if "\n" in text:
                    break
                forward.step(rows, [token])
            usage.prompt_tokens = lm.tokens_read - before
        usage.completion_tokens = len(generated)
        return ExplanationAttempt(text.split("\n", 1)[0], usage=usage)


def judge_prompt(question: JudgeQuestion, chat: bool) -> str:
    """The judge prompt: ChatML turns for instruction models, worked examples for base models."""
    if chat:
        return (
            prompts.chatml("system", prompts.JUDGE_CHAT_SYSTEM)
            + prompts.chatml("user", question.prompt)
            + "<|im_start|>assistant\n"
        )
    return prompts.judge_completion_prompt(question)


def _common_prefix(id_lists: Sequence[Sequence[int]]) -> list[int]:
    """The longest opening all lists share, leaving each at least one token of its own."""
    if not id_lists:
        return []
    shortest = min(len(ids) for ids in id_lists)
    length = 0
    first = id_lists[0]
    while length < shortest - 1 and all(ids[length] == first[length] for ids in id_lists):
        length += 1
    return list(first[:length])


def _sample(logprobs: np.ndarray, rng: np.random.Generator) -> int:
    """A token drawn from the `EXPLAIN_TOP_K` most likely at `EXPLAIN_TEMPERATURE`."""
    candidates = np.argsort(-logprobs, kind="stable")[:EXPLAIN_TOP_K]
    scaled = logprobs[candidates] / EXPLAIN_TEMPERATURE
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    return int(candidates[rng.choice(len(candidates), p=probabilities)])


# ---------------------------------------------------------------------- the pointer prompt


def pointer_prompt(lm: models.LoadedModel, explanation: str, chat: bool) -> list[list[int]]:
    """Model token ids of the pointer prompt's opening in two segments: worked examples, then the rule."""
    if chat:
        return [
            lm.bos + lm.encode(prompts.local_pointer_chat_examples()),
            lm.encode(prompts.local_pointer_chat_rule(explanation)),
        ]
    return [lm.bos + lm.encode(prompts.local_pointer_examples()), lm.encode(prompts.local_pointer_rule(explanation))]


def pointer_tail(lm: models.LoadedModel, tokens: Sequence[str], chat: bool) -> list[int]:
    """Model token ids of one sequence's text and the answer cue."""
    cue = prompts.LOCAL_POINTER_CHAT_ANSWER if chat else prompts.LOCAL_POINTER_ANSWER
    return lm.encode(prompts.local_pointer_text(tokens) + cue)


def simulate_pointer(
    lm: models.LoadedModel,
    explanation: str,
    sequences: list[list[str]],
    method: str,
    floor: float,
    gate: bool = False,
) -> list[tuple[list[float] | str, float | None]]:
    """Per sequence: the values (0..10) of its tokens, or the reason it failed; and, with the list methods, the
    chance that the rule applies to its text at all (`ListDecoder.word_shares`; else None). `gate`: see
    `LocalSimulator.gate`. A text without words gets 0 everywhere and no chance.

    Call with `lm.lock` held.
    """
    chat = method in CHAT_METHODS
    outcomes: list[list[float] | str] = [[0.0] * len(tokens) for tokens in sequences]
    chances: list[float | None] = [None] * len(sequences)
    groups = [[(word, indices) for word, indices in word_groups(tokens) if word] for tokens in sequences]
    live = [index for index, words in enumerate(groups) if words]
    if not live:
        return list(zip(outcomes, chances, strict=True))
    if method in TEXT_FIRST_METHODS:
        shared = [lm.bos + lm.encode(prompts.local_text_first_chat_examples())]
        rule = lm.encode(prompts.local_text_first_chat_rule(explanation))
        stems = {index: lm.encode(prompts.local_pointer_text(sequences[index])) for index in live}
        tails = {index: stems[index] + rule for index in live}
    else:
        shared = pointer_prompt(lm, explanation, chat)
        stems = {}
        tails = {index: pointer_tail(lm, sequences[index], chat) for index in live}
    opening = sum(len(segment) for segment in shared)
    too_long = [index for index in live if opening + len(tails[index]) > forward.MAX_PROMPT_TOKENS]
    for index in too_long:
        outcomes[index] = (
            f"the prompt needs {opening + len(tails[index])} model tokens but at most "
            f"{forward.MAX_PROMPT_TOKENS} are allowed; use shorter sequences"
        )
    live = [index for index in live if index not in too_long]
    if not live:
        return list(zip(outcomes, chances, strict=True))
    word_values: list[dict[str, float]] = []
    shares: list[float | None] = []
    for group in forward.row_groups(lm, opening, [len(tails[index]) for index in live]):
        chosen = [live[position] for position in group]
        row_stems = [stems[index] for index in chosen] if stems else None
        values, group_shares = _word_values(
            lm,
            shared,
            [tails[index] for index in chosen],
            [groups[index] for index in chosen],
            method,
            floor,
            row_stems,
            gate,
        )
        word_values += values
        shares += group_shares
    for row, index in enumerate(live):
        result = [0.0] * len(sequences[index])
        for word, indices in groups[index]:
            for token_index in indices:
                result[token_index] = word_values[row].get(word, 0.0)
        outcomes[index] = result
        chances[index] = shares[row]
    return list(zip(outcomes, chances, strict=True))


def _word_values(
    lm: models.LoadedModel,
    shared: list[list[int]],
    tails: list[list[int]],
    groups: list[list[tuple[str, list[int]]]],
    method: str,
    floor: float,
    stems: list[list[int]] | None = None,
    gate: bool = False,
) -> tuple[list[dict[str, float]], list[float | None]]:
    """Each row's value (0..10) per word of its text, and (list methods; else None) the chance that its answer
    names a word rather than "none": the rows run as one batch over the shared opening.

    With `stems` (text-first methods), each tail begins with its row's stem (the text), which
    `forward.run_rows` may keep between calls.
    """
    chat = method in CHAT_METHODS
    rows = forward.run_rows(lm, shared, tails, stems=stems)
    words_by_row = [dict.fromkeys(word for word, _ in words) for words in groups]
    all_words = list(dict.fromkeys(word for words in words_by_row for word in words))
    pieces = dict(zip(all_words, lm.encode_many([" " + word for word in all_words]), strict=True))
    continuations = [(row, pieces[word]) for row, words in enumerate(words_by_row) for word in words if pieces[word]]
    # a word whose first piece is already below the floor is worth 0 whatever follows: not forced further
    logprobs = iter(forward.forced_logprobs(rows, continuations, stop_below=floor))
    word_values: list[dict[str, float]] = []
    for words in words_by_row:
        values: dict[str, float] = {}
        for word in words:
            if pieces[word]:
                total = sum(next(logprobs))
                values[word] = min(10.0, max(0.0, 10.0 * (1.0 - total / floor)))
        word_values.append(values)
    if method not in LIST_METHODS:
        return word_values, [None] * len(word_values)
    candidates = [{word: pieces[word] for word in words if pieces[word]} for words in words_by_row]
    decoder = ListDecoder(lm, chat)
    shares = decoder.word_shares(rows.last_logits, candidates)
    listed = decoder.decode(rows, candidates)
    for values, names, share in zip(word_values, listed, shares, strict=True):
        weight = share if gate else 1.0
        for word in values:
            values[word] = weight * (10.0 if word in names else values[word] * LIST_UNLISTED_SHARE)
    return word_values, list(shares)


@dataclass
class _ListState:
    """One row's answer list while it is decoded."""

    pieces: dict[str, list[int]]
    """Words of the text not listed yet, with their model tokens."""
    listed: list[str] = field(default_factory=list)
    current: list[int] = field(default_factory=list)
    """Model tokens of the item being written."""
    steps: int = 0


class ListDecoder:
    """Greedy decoding of the pointer prompt's whole answer, each step restricted to the text's words.

    Each step may only write the next model token of a word of the text that is not
    listed yet and agrees with what the current item has written so far; once the
    item spells a whole word, also the list separator (another item follows) or the
    end of the answer (a line break, end of turn or end of text). " none" is allowed
    as the first item only, and ends the answer empty. At most `LIST_MAX_WORDS` words
    and `LIST_MAX_STEPS` model tokens. All rows decode together, one token per step.
    """

    def __init__(self, lm: models.LoadedModel, chat: bool) -> None:
        self.separator = lm.encode(prompts.LOCAL_LIST_SEPARATOR)[0]
        ends = {lm.encode("\n")[-1], lm.encode("\n\n")[-1]}
        if lm.tokenizer.eos_token_id is not None:
            ends.add(int(lm.tokenizer.eos_token_id))
        end_of_turn = lm.encode("<|im_end|>")
        if chat and len(end_of_turn) == 1:
            ends.add(end_of_turn[0])
        self.ends = ends
        self.none = lm.encode(" none")[0]

    def choose(self, state: _ListState, logits: Any) -> int | None:
        """The token this row writes next, or None when its answer is complete."""
        options: dict[int, str] = {}
        for ids in state.pieces.values():
            if len(ids) > len(state.current) and ids[: len(state.current)] == state.current:
                options.setdefault(ids[len(state.current)], "piece")
        whole = None
        if state.current:
            whole = next((word for word, ids in state.pieces.items() if ids == state.current), None)
        if whole is not None:
            options[self.separator] = "next"
            options.update({end: "end" for end in self.ends})
        if not state.current and not state.listed:
            options.setdefault(self.none, "none")
        if not options or state.steps >= LIST_MAX_STEPS:
            return None
        best = max(options, key=lambda token: (float(logits[token]), -token))
        kind = options[best]
        if kind == "none":
            return None
        if whole is not None and kind in ("next", "end"):
            state.listed.append(whole)
            del state.pieces[whole]
            state.current = []
            if kind == "end" or len(state.listed) >= LIST_MAX_WORDS or not state.pieces:
                return None
            state.steps += 1
            return best
        state.current.append(best)
        state.steps += 1
        return best

    def word_shares(self, logits: Any, pieces: list[dict[str, list[int]]]) -> list[float]:
        """Per row, the probability that its answer opens with a word of its text rather than " none": a softmax
        of the first answer token's logits (`logits`, [rows, vocab]) over the tokens allowed there.

        A rule that does not apply to a text gets a high chance of "none" even where greedy decoding still
        lists a word, so this is the row's evidence that the text fires at all. A word whose first token is
        the token of " none" counts as "none".
        """
        shares: list[float] = []
        for row, row_pieces in enumerate(pieces):
            firsts = sorted({ids[0] for ids in row_pieces.values() if ids} - {self.none})
            if not firsts:  # nothing to weigh against "none"
                shares.append(1.0)
                continue
            scores = np.array([float(logits[row][token]) for token in [*firsts, self.none]], dtype=np.float64)
            weights = np.exp(scores - scores.max())
            shares.append(float(weights[:-1].sum() / weights.sum()))
        return shares

    def decode(self, rows: forward.Rows, pieces: list[dict[str, list[int]]]) -> list[set[str]]:
        """The listed words of every row (call after any use of the rows' first-slot logits).

        Rows whose answer is complete leave the batch, so a long list costs only its own steps.
        """
        states = [_ListState(dict(row_pieces)) for row_pieces in pieces]
        active = list(range(len(states)))
        logits = rows.last_logits
        while active:
            chosen: list[tuple[int, int]] = []
            for position, index in enumerate(active):
                token = self.choose(states[index], logits[position])
                if token is not None:
                    chosen.append((position, token))
            if not chosen:
                break
            if len(chosen) < len(active):
                forward.keep_rows(rows, [position for position, _ in chosen])
                active = [active[position] for position, _ in chosen]
            logits = forward.step(rows, [token for _, token in chosen])
        return [set(state.listed) for state in states]
