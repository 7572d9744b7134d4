"""The embedded `local` model answering protocol chat requests (`ChatJudge.chat`) by constrained decoding.

A protocol parses a fixed layout from the reply (`ChatRequest.reply_shape`). A model of
1.5B parameters asked for that layout free-form often breaks it, which the protocol then
counts as a failure of the explanation; so the layout is written for the model and only
the choices are the model's:

- ``match-json`` (recall_alt): the reply opens with ``{"match":`` and the model's
  probabilities of `` true`` and `` false`` at that point decide; the reason given is
  that probability.
- ``binary-list`` (delphi's fuzz and detection): ``[`` then, entry by entry, ``1`` or
  ``0`` by the model's probabilities of the two digits, each choice written into the
  reply before the next is made; as many entries as the request expects.
- ``index-list`` and ``text`` (SAEBench): free generation of at most
  `LOCAL_MAX_NEW_TOKENS`, ending at the end of the turn or of the line.

At temperature 0 the more likely choice (or token) is taken; otherwise one is drawn at the
request's temperature, seeded by the request's run number and its final message, so the k
runs of a sampled judge differ and a rerun repeats them. The messages are written as ChatML
turns, so the model must be an instruction model (``qwen2.5-coder-1.5b``).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from scoring import models, prompts
from scoring.simulators import forward
from scoring.simulators.base import Usage
from scoring.simulators.chat import ChatBatch, ChatReply, ChatRequest

LOCAL_MAX_NEW_TOKENS = 40
"""Most tokens a free-form (``text``, ``index-list``) reply may take; SAEBench asks for at most 2 x 14 + 5."""

ROWS_PER_PASS = 8
"""Requests run as one batch over their shared opening."""

MATCH_OPENING = '{"match":'
"""What a ``match-json`` reply starts with before the model's choice."""


def chatml_prompt(request: ChatRequest) -> str:
    """The request's messages as ChatML turns, up to the opening of the assistant's reply."""
    turns = "".join(prompts.chatml(role, content) for role, content in request.messages)
    return turns + "<|im_start|>assistant\n"


def _rng(request: ChatRequest) -> np.random.Generator:
    return np.random.default_rng([request.run, zlib.crc32(request.messages[-1][1].encode("utf-8"))])


def _pick_two(first: float, second: float, temperature: float, rng: np.random.Generator) -> tuple[bool, float]:
    """Whether the first of two choices (log-probabilities) is taken, and its probability between the two."""
    p_first = 1.0 / (1.0 + math.exp(second - first))
    if temperature <= 0:
        return first >= second, p_first
    scaled = 1.0 / (1.0 + math.exp((second - first) / temperature))
    return bool(rng.random() < scaled), p_first


def _common_prefix(id_lists: Sequence[Sequence[int]]) -> list[int]:
    """The longest opening all lists share, leaving each at least one token of its own."""
    shortest = min(len(ids) for ids in id_lists)
    first = id_lists[0]
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in id_lists):
        length += 1
    return list(first[:length])


def answer(model_key: str, requests: Sequence[ChatRequest]) -> ChatBatch:
    """Replies of model `model_key` to `requests`, in order (see the module docstring)."""
    lm = models.load(model_key)
    usage = Usage(requests=len(requests))
    replies: list[ChatReply | None] = [None] * len(requests)
    if not lm.spec.chatml:
        reason = f"the local model {model_key} is not an instruction model and cannot read chat messages"
        return ChatBatch([ChatReply(None, reason) for _ in requests], usage)
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for position, request in enumerate(requests):
        groups[(request.reply_shape, request.answers if request.reply_shape == "binary-list" else 0)].append(position)
    with lm.lock:
        before = lm.tokens_read
        for (shape, _), positions in groups.items():
            for start in range(0, len(positions), ROWS_PER_PASS):
                chunk = positions[start : start + ROWS_PER_PASS]
                texts = _answer_chunk(lm, shape, [requests[i] for i in chunk], usage)
                for position, reply in zip(chunk, texts, strict=True):
                    replies[position] = reply
        usage.prompt_tokens = lm.tokens_read - before - usage.completion_tokens
    return ChatBatch([reply or ChatReply(None, "not answered") for reply in replies], usage)


def _answer_chunk(lm: models.LoadedModel, shape: str, requests: list[ChatRequest], usage: Usage) -> list[ChatReply]:
    opening = {"match-json": MATCH_OPENING, "binary-list": "["}.get(shape, "")
    id_lists = [lm.encode(chatml_prompt(request) + opening) for request in requests]
    budget = forward.MAX_PROMPT_TOKENS - LOCAL_MAX_NEW_TOKENS
    too_long = [len(ids) > budget for ids in id_lists]
    runnable = [index for index, long in enumerate(too_long) if not long]
    replies = [
        ChatReply(None, f"the request needs {len(ids)} model tokens; the local judge reads at most {budget}")
        if long
        else None
        for ids, long in zip(id_lists, too_long, strict=True)
    ]
    if runnable:
        chosen = [id_lists[index] for index in runnable]
        shared = _common_prefix(chosen)
        rows = forward.run_rows(lm, [shared], [ids[len(shared) :] for ids in chosen])
        picked = [requests[index] for index in runnable]
        if shape == "match-json":
            texts = _match_replies(lm, rows, picked)
        elif shape == "binary-list":
            texts = _binary_replies(lm, rows, picked, usage)
        else:
            texts = _free_replies(lm, rows, picked, usage)
        for index, text in zip(runnable, texts, strict=True):
            replies[index] = ChatReply(text)
    return [reply if reply is not None else ChatReply(None, "not answered") for reply in replies]


def _match_replies(lm: models.LoadedModel, rows: forward.Rows, requests: list[ChatRequest]) -> list[str]:
    yes, no = lm.encode(" true"), lm.encode(" false")
    count = len(requests)
    scores = forward.forced_logprobs(rows, [(row, yes) for row in range(count)] + [(row, no) for row in range(count)])
    texts = []
    for row, request in enumerate(requests):
        match, p_true = _pick_two(sum(scores[row]), sum(scores[count + row]), request.temperature, _rng(request))
        reason = f"local judge: P(true) {p_true:.2f} between true and false"
        texts.append(f'{MATCH_OPENING} {"true" if match else "false"}, "reason": "{reason}"}}')
    return texts


def _binary_replies(
    lm: models.LoadedModel, rows: forward.Rows, requests: list[ChatRequest], usage: Usage
) -> list[str]:
    one, zero = lm.encode("1"), lm.encode("0")
    separator = lm.encode(", ")
    if len(one) != 1 or len(zero) != 1:
        raise ValueError("the local model does not write the digits 1 and 0 as one token each")
    rngs = [_rng(request) for request in requests]
    written: list[list[str]] = [[] for _ in requests]
    entries = requests[0].answers
    for entry in range(entries):
        logprobs = [forward.log_softmax(rows.last_logits[row]) for row in range(len(requests))]
        tokens = []
        for row, request in enumerate(requests):
            take_one, _ = _pick_two(logprobs[row][one[0]], logprobs[row][zero[0]], request.temperature, rngs[row])
            written[row].append("1" if take_one else "0")
            tokens.append(one[0] if take_one else zero[0])
        forward.step(rows, tokens)
        if entry < entries - 1:
            for token in separator:
                forward.step(rows, [token] * len(requests))
        usage.completion_tokens += len(requests) * (1 + (len(separator) if entry < entries - 1 else 0))
    return ["[" + ", ".join(answers) + "]" for answers in written]


def _free_replies(lm: models.LoadedModel, rows: forward.Rows, requests: list[ChatRequest], usage: Usage) -> list[str]:
    stops = {token for token in (lm.tokenizer.eos_token_id, *lm.encode("<|im_end|>")) if token is not None}
    rngs = [_rng(request) for request in requests]
    generated: list[list[int]] = [[] for _ in requests]
    active = list(range(len(requests)))
    limit = min(LOCAL_MAX_NEW_TOKENS, max(request.max_tokens for request in requests))
    for _ in range(limit):
        tokens = []
        still = []
        for row, position in enumerate(active):
            request = requests[position]
            logprobs = forward.log_softmax(rows.last_logits[row])
            if request.temperature <= 0:
                token = int(np.argmax(logprobs))
            else:
                scaled = logprobs / request.temperature
                probabilities = np.exp(scaled - scaled.max())
                token = int(rngs[position].choice(len(probabilities), p=probabilities / probabilities.sum()))
            if token in stops or len(generated[position]) >= request.max_tokens:
                continue
            generated[position].append(token)
            usage.completion_tokens += 1
            if "\n" in lm.decode(generated[position]):
                continue
            still.append(row)
            tokens.append(token)
        if not still:
            break
        if len(still) < len(active):
            forward.keep_rows(rows, still)
            active = [active[row] for row in still]
        forward.step(rows, tokens)
    return [lm.decode(ids).split("\n", 1)[0].strip() for ids in generated]
