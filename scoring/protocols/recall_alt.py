"""Neuronpedia's ``recall_alt``: a yes/no judge over top, zero and decoy examples (range 0-1).

Facts of the protocol, as its score route and scorer implement them:

- Examples: the feature's top rows (`neuronpedia.select_rows`, rescaled to a max of
  10) should be judged "match"; its zero rows and five fixed decoy texts "no match".
- One chat request per example: a system message, two worked user/assistant turns, and
  the example as a user message holding the compact JSON
  ``{"activations": [{"token", "activation"}], "explanation"}`` (numbers as JavaScript
  writes them, "▁" in tokens written as a space).
- Parameters: temperature 0, ``response_format`` json_object, max_tokens 5000, and a
  low reasoning effort (``reasoning_effort``; servers that refuse it get the request
  without it).
- Reading a reply: its JSON's ``match`` as JavaScript reads truth; an empty reply,
  bad JSON or a failed call counts as no match.
- Score: (top rows matched + zero and decoy rows not matched) / all rows. No score is
  saved when there are no top rows or every call about a top row failed.
- Stored details (``jsonDetails``): ``{"top": [...], "zero": [...], "decoy": [...]}``,
  each example with ``tokens``, ``values``, ``match``, ``reason`` and ``messages`` (the
  exact messages sent, as a JSON string).

The decoy texts and the prompt here are our own (`scoring.protocols.prompts`); a
re-score of a stored score uses the decoys and messages stored with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scoring.cache import SimulationCache
from scoring.protocols.common import (
    Derivation,
    DetailsError,
    Example,
    Judged,
    ProtocolOutcome,
    ProtocolRun,
    js_truthy,
    tokens_and_values,
)
from scoring.protocols.neuronpedia import Selection
from scoring.protocols.prompts import recall_alt_message
from scoring.shared_types import Progress
from scoring.simulators.chat import ChatJudge, ChatReply, ChatRequest
from scoring.simulators.runner import run_chats

PROTOCOL = "recall_alt"
TEMPERATURE = 0.0
MAX_TOKENS = 5000
RESPONSE_FORMAT = "json_object"
EXTRA_PARAMETERS = (("reasoning_effort", "low"),)
GROUPS = ("top", "zero", "decoy")

API_ERROR_REASON = "Error"
"""The reason Neuronpedia stores for an example whose request failed (the only kind that counts toward
"every top call failed")."""

UNUSABLE_REASONS = ("Errored", "Invalid JSON response format", "Invalid JSON response")
"""The reasons Neuronpedia stores for an empty reply and for replies that are not the JSON asked for."""

DECOYS: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...] = (
    (("The", " bus", " to", " the", " airport", " leaves", " at", " seven", "."), (0, 0, 0, 0, 10, 0, 0, 6, 0)),
    (("Add", " two", " cups", " of", " flour", " and", " stir", " slowly", "."), (0, 0, 0, 0, 10, 0, 7, 0, 0)),
    (
        ("The", " committee", " approved", " the", " budget", " on", " Tuesday", "."),
        (0, 10, 0, 0, 0, 0, 5, 0),
    ),
    (("Her", " violin", " was", " made", " in", " 1920", " in", " Vienna", "."), (0, 0, 0, 0, 0, 10, 0, 8, 0)),
    (
        ("Water", " boils", " at", " a", " lower", " temperature", " on", " mountains", "."),
        (0, 10, 0, 0, 0, 0, 0, 4, 0),
    ),
)
"""Our five decoy texts: everyday sentences with a spike on an arbitrary word (Neuronpedia uses five
fixed texts of its own; a re-score of a stored score uses those, from its details)."""

PARAMETERS = {
    "temperature": TEMPERATURE,
    "max_tokens": MAX_TOKENS,
    "response_format": RESPONSE_FORMAT,
    **dict(EXTRA_PARAMETERS),
}


def display_text(tokens: Sequence[str], values: Sequence[float]) -> str:
    """The example's text with the tokens where the neuron fires between << and >>."""
    return "".join(f"<<{token}>>" if value > 0 else token for token, value in zip(tokens, values, strict=True))


def _example(group: str, tokens: list[str], values: list[float], source: int | None = None) -> Example:
    return Example(group, tokens, values, group == "top", display_text(tokens, values), source=source)


def examples_from_selection(selection: Selection) -> list[Example]:
    """The top rows, the zero rows and our decoys, in that order."""
    return [
        *(_example("top", row.tokens, row.values, row.source) for row in selection.top),
        *(_example("zero", row.tokens, row.values, row.source) for row in selection.zero),
        *(_example("decoy", list(tokens), [float(v) for v in values]) for tokens, values in DECOYS),
    ]


# ----------------------------------------------------------------------------- stored details


def _stored_messages(item: dict[str, Any], where: str, notes: list[str]) -> tuple[tuple[str, str], ...] | None:
    raw = item.get("messages")
    if raw is None:
        return None
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
        messages = tuple((str(message["role"]), str(message["content"])) for message in parsed)
    except (ValueError, TypeError, KeyError):
        notes.append(f"{where}.messages cannot be read as a list of chat messages; ignored")
        return None
    return messages or None


def read_details(data: Any) -> tuple[list[Judged], list[tuple[tuple[str, str], ...] | None], list[str]]:
    """The stored judgments, the messages stored with each, and notes; raises DetailsError when unreadable."""
    if not isinstance(data, dict):
        raise DetailsError("recall_alt details must be an object with top, zero and decoy lists")
    if not isinstance(data.get("top"), list):
        raise DetailsError("recall_alt details have no top list")
    judged: list[Judged] = []
    messages: list[tuple[tuple[str, str], ...] | None] = []
    notes: list[str] = []
    for group in GROUPS:
        items = data.get(group)
        if items is None:
            notes.append(f"the details have no {group} list; read as empty")
            continue
        if not isinstance(items, list):
            raise DetailsError(f"recall_alt details: {group} must be a list")
        for position, item in enumerate(items):
            where = f"{group}[{position}]"
            tokens, values = tokens_and_values(item, where)
            match = js_truthy(item.get("match"))
            reason = item.get("reason")
            reason_text = reason if isinstance(reason, str) else json.dumps(reason)
            failed = reason_text == API_ERROR_REASON or reason_text in UNUSABLE_REASONS
            judged.append(Judged(_example(group, tokens, values), match, reason_text, failed=failed))
            messages.append(_stored_messages(item, where, notes))
    return judged, messages, notes


def derive(data: Any) -> Derivation:
    """The recall_alt value its stored judgments give; the problem when they cannot give one."""
    try:
        judged, _, notes = read_details(data)
    except DetailsError as exc:
        return Derivation(PROTOCOL, float("nan"), problem=str(exc))
    value, problem = aggregate(judged)
    return Derivation(PROTOCOL, value, judged, problem, notes)


def details_of(judged: Sequence[Judged], requests: Sequence[ChatRequest]) -> dict[str, list[dict[str, Any]]]:
    """Judgments in the schema Neuronpedia stores (`read_details` reads it back)."""
    details: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
    for position, (item, request) in enumerate(zip(judged, requests, strict=True)):
        group = item.example.group
        details[group].append(
            {
                "id": item.example.source if item.example.source is not None else position,
                "tokens": item.example.tokens,
                "values": item.example.values,
                "match": bool(item.answer),
                "reason": item.reason,
                "messages": json.dumps(request.message_dicts(), ensure_ascii=False, separators=(",", ":")),
            }
        )
    return details


# ----------------------------------------------------------------------------- judging


def build_request(
    example: Example, explanation: str, prefix: Sequence[tuple[str, str]], final: str | None = None
) -> ChatRequest:
    """One example's request: `prefix` (system and worked turns), then the example's JSON (or `final`)."""
    message = final if final is not None else recall_alt_message(example.tokens, example.values, explanation)
    return ChatRequest(
        messages=(*prefix, ("user", message)),
        temperature=TEMPERATURE,
        max_tokens=MAX_TOKENS,
        response_format=RESPONSE_FORMAT,
        extra=EXTRA_PARAMETERS,
        reply_shape="match-json",
        protocol=PROTOCOL,
        explanation=explanation,
        items=(example.text,),
    )


def read_reply(example: Example, reply: ChatReply) -> Judged:
    """The judgment in a reply, read as the protocol reads it (anything unusable is "no match")."""
    if not reply.ok or reply.text is None:
        return Judged(example, False, f"{API_ERROR_REASON}: {reply.error}", failed=True)
    if not reply.text.strip():
        return Judged(example, False, "the reply is empty", failed=True)
    try:
        parsed = json.loads(reply.text)
    except json.JSONDecodeError:
        return Judged(example, False, f"the reply is not JSON: {reply.text[:80]!r}", failed=True)
    if not js_truthy(parsed):
        return Judged(example, False, f"the reply is not a JSON object: {reply.text[:80]!r}", failed=True)
    fields = parsed if isinstance(parsed, dict) else {}
    reason = fields.get("reason")
    return Judged(example, js_truthy(fields.get("match")), reason if isinstance(reason, str) else "")


def _call_failed(reason: str) -> bool:
    """Whether a reason says the request itself failed (as stored by Neuronpedia, or as `read_reply` writes it)."""
    return reason == API_ERROR_REASON or reason.startswith(f"{API_ERROR_REASON}: ")


def aggregate(judged: Sequence[Judged]) -> tuple[float, str | None]:
    """(value, None), or (NaN, why the protocol saves no score)."""
    top = [item for item in judged if item.example.group == "top"]
    if not top:
        return float("nan"), "recall_alt needs top rows (rows where the feature fires); there are none"
    if all(item.failed and _call_failed(item.reason) for item in top):
        first = top[0].reason
        return float("nan"), f"every request about a top row failed, so no score is saved; first: {first}"
    right = sum(bool(item.answer) == item.example.expected for item in judged)
    return right / len(judged), None


async def score(
    explanation: str,
    examples: Sequence[Example],
    judge: ChatJudge,
    prefixes: Sequence[Sequence[tuple[str, str]]],
    *,
    finals: Sequence[str | None] | None = None,
    judge_id: str = "",
    prompt: str = "ours",
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> tuple[ProtocolOutcome, list[ChatRequest]]:
    """Judge every example once (temperature 0): the outcome, and the requests sent (for `details_of`).

    `prefixes` holds one message prefix per example (the stored ones), or a single one for all.
    `finals` replaces an example's final message (a stored one, sent as stored).
    """
    shared = list(prefixes) if len(prefixes) == len(examples) else [prefixes[0]] * len(examples)
    finals = list(finals) if finals is not None else [None] * len(examples)
    requests = [
        build_request(example, explanation, prefix, final)
        for example, prefix, final in zip(examples, shared, finals, strict=True)
    ]
    replies, usage, from_cache = await run_chats(judge, requests, cache=cache, progress=progress)
    judged = [read_reply(example, reply) for example, reply in zip(examples, replies, strict=True)]
    value, error = aggregate(judged)
    run = ProtocolRun(value, error, judged, usage, bool(from_cache) and all(from_cache))
    outcome = ProtocolOutcome(PROTOCOL, [run], judge_id, dict(PARAMETERS), prompt)
    failures = sum(item.failed for item in judged)
    if failures:
        outcome.notes.append(
            f"{failures} of {len(judged)} requests failed or gave no usable reply; as in the protocol, each counts "
            "as no match"
        )
    return outcome, requests
