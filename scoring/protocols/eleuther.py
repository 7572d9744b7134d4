"""Neuronpedia's ``eleuther_fuzz``, ``eleuther_recall`` and ``eleuther_embedding``: EleutherAI's scorers as its
autointerp service runs them (range 0-1).

Facts of the protocols (Neuronpedia's autointerp service on EleutherAI's library):

- Examples: the feature's top rows then zero rows (`neuronpedia.select_rows`); an
  example is activating when the sum of its values is above 0. The service refuses a
  feature without both kinds.
- Fuzz highlighting: in an activating example every token at or above 0.3 x that
  example's max is marked, runs merged into one ``<<...>>``. In each non-activating
  example, n of the tokens at or below 0.3 x its max are marked, n = ceil(mean count
  of nonzero tokens over the activating examples), drawn by Python's ``random`` seeded
  with 22 for each example. Comparisons run in float32, as torch makes them. An example
  with exactly one such token gets a fixed placeholder sentence instead (ours differs).
- Order: non-activating examples, then activating ones, shuffled by Python's
  ``random``; for fuzz its state is the one the last seeded highlighting left, so the
  order follows from the examples; detection (``eleuther_recall``) never seeds it.
- Batches of 5 in that order, ``Example 0: text`` lines; one chat request per batch,
  temperature 1.0, max_tokens 500; the judge answers a list of 1/0.
- Parsing: the first ``[...]`` on one line, read as JSON, with exactly 5 entries, or the
  whole batch is dropped (so a last batch of fewer than 5 examples almost always is).
  An entry is right when it equals the example's truth (1 for activating).
- Score: balanced accuracy over the rows kept: (TP / (TP + FN) + TN / (TN + FP)) / 2,
  the first term 0 without positives, the whole 0 without negatives.
- Stored details: a list in the order sent, each with ``text`` (the joined tokens,
  unhighlighted), ``distance`` (1 activating, -1 not), ``ground_truth``, ``prediction``,
  ``highlighted``, ``correct``, ``probability``, ``activations`` and ``str_tokens``. A
  dropped batch's rows are stored with ``prediction`` and ``correct`` false.
- ``eleuther_embedding``: the query is an instruction to retrieve related text followed
  by the explanation; the texts are the joined examples; score = ROC-AUC of the cosine
  similarity, activating against not; model stella_en_400M_v5. Stored details: ``text``,
  ``distance``, ``similarity``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scoring.cache import SimulationCache
from scoring.metrics import roc_auc
from scoring.protocols.common import Derivation, DetailsError, Example, Judged, ProtocolOutcome, ProtocolRun, number
from scoring.protocols.prompts import Template
from scoring.shared_types import Progress
from scoring.simulators.chat import ChatJudge, ChatReply, ChatRequest
from scoring.simulators.runner import run_chats

FUZZ = "eleuther_fuzz"
RECALL = "eleuther_recall"
EMBEDDING = "eleuther_embedding"
KINDS = (FUZZ, RECALL)

HIGHLIGHT_THRESHOLD = 0.3
"""Fraction of an example's max at or above which its tokens are marked (at or below: eligible decoys)."""
SEED = 22
"""Seed of Python's ``random`` before each non-activating example's marks are drawn."""
BATCH_SIZE = 5
TEMPERATURE = 1.0
MAX_TOKENS = 500
PARAMETERS = {"temperature": TEMPERATURE, "max_tokens": MAX_TOKENS, "batch_size": BATCH_SIZE}

EMBEDDING_MODEL = "stella_en_400m_v5"
"""The model name Neuronpedia stores with an eleuther_embedding score."""

PLACEHOLDER_TEXT = "(delphi shows a fixed placeholder sentence here: only one token of this example could be marked)"
"""What we show for an example delphi replaces by its fixed sentence (its text is not copied)."""

_FIRST_LIST = re.compile(r"\[.*?\]")


def is_activating(values: Sequence[float]) -> bool:
    """The service's rule: the sum of the example's values is above 0."""
    return sum(values) > 0


def delphi_text(tokens: Sequence[str], marked: Sequence[int] = ()) -> str:
    """The joined tokens, each run of marked tokens wrapped in << >> (the token's own spaces inside)."""
    chosen = set(marked)
    parts: list[str] = []
    for position, token in enumerate(tokens):
        if position in chosen and position - 1 not in chosen:
            parts.append("<<")
        parts.append(token)
        if position in chosen and position + 1 not in chosen:
            parts.append(">>")
    return "".join(parts)


def activating_marks(values: Sequence[float]) -> list[int]:
    """Tokens at or above 0.3 x the example's max (float32)."""
    array = np.asarray(values, dtype=np.float32)
    if array.size == 0:
        return []
    threshold = np.float32(HIGHLIGHT_THRESHOLD) * array.max()
    return [int(i) for i in np.flatnonzero(array >= threshold)]


def decoy_count(activating_values: Sequence[Sequence[float]]) -> int:
    """n: the mean count of nonzero tokens over the activating examples, rounded up (float32 zeros)."""
    if not activating_values:
        return 0
    total = sum(int(np.count_nonzero(np.asarray(values, dtype=np.float32))) for values in activating_values)
    return math.ceil(total / len(activating_values))


def non_activating_marks(values: Sequence[float], count: int) -> tuple[list[int] | None, random.Random | None]:
    """The tokens marked in a non-activating example, and the generator that drew them.

    (None, None) when exactly one token is eligible: delphi then shows its fixed placeholder and
    draws nothing.
    """
    array = np.asarray(values, dtype=np.float32)
    threshold = np.float32(HIGHLIGHT_THRESHOLD) * array.max() if array.size else np.float32(0)
    eligible = [int(i) for i in np.flatnonzero(array <= threshold)]
    if len(eligible) == 1:
        return None, None
    generator = random.Random(SEED)
    picks = generator.sample(eligible, min(count, len(eligible)))
    return sorted(picks), generator


@dataclass
class Prepared:
    """The examples of a fuzz or detection score in the order they are sent, and how that order came about."""

    examples: list[Example]
    notes: list[str] = field(default_factory=list)


def mark(example: Example, kind: str, count: int) -> random.Random | None:
    """Set `example`'s marks and text for `kind`; returns the generator a non-activating example used."""
    if kind != FUZZ:
        example.marked, example.text = [], delphi_text(example.tokens)
        return None
    if example.expected:
        example.marked = activating_marks(example.values)
        example.text = delphi_text(example.tokens, example.marked)
        return None
    marks, generator = non_activating_marks(example.values, count)
    if marks is None:
        example.marked, example.text, example.note = [], PLACEHOLDER_TEXT, "one eligible token: placeholder"
        return None
    example.marked = marks
    example.text = delphi_text(example.tokens, marks)
    return generator


def prepare(rows: Sequence[tuple[list[str], list[float], int | None]], kind: str, seed: int = 0) -> Prepared:
    """Examples from (tokens, values, source) rows as the service receives them (top rows, then zero rows)."""
    activating = [row for row in rows if is_activating(row[1])]
    silent = [row for row in rows if not is_activating(row[1])]
    count = decoy_count([values for _, values, _ in activating])
    examples: list[Example] = []
    last: random.Random | None = None
    for tokens, values, source in silent:
        example = Example("non-activating", list(tokens), list(values), False, source=source)
        last = mark(example, kind, count) or last
        examples.append(example)
    for tokens, values, source in activating:
        example = Example("activating", list(tokens), list(values), True, source=source)
        mark(example, kind, count)
        examples.append(example)
    prepared = Prepared(examples)
    if kind == FUZZ and last is not None:
        last.shuffle(examples)
        prepared.notes.append("shuffled as the service does: random's state left by the last seeded highlighting")
    else:
        random.Random(seed).shuffle(examples)
        prepared.notes.append(
            f"the service shuffles with an unseeded random; this order is seeded with {seed}, so its batches "
            "differ from any the service sent"
        )
    return prepared


def batch_ranges(count: int) -> list[range]:
    return [range(start, min(start + BATCH_SIZE, count)) for start in range(0, count, BATCH_SIZE)]


def parse_reply(text: str | None) -> list[Any] | None:
    """The entries of the first ``[...]`` on one line, when it is JSON with exactly BATCH_SIZE entries."""
    found = _FIRST_LIST.search(text or "")
    if found is None:
        return None
    try:
        entries = json.loads(found.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(entries, list) or len(entries) != BATCH_SIZE:
        return None
    return entries


def balanced_accuracy(rows: Sequence[tuple[bool, bool]]) -> float:
    """(ground truth, correct) rows -> the service's balanced accuracy (see the module docstring)."""
    tp = sum(truth and right for truth, right in rows)
    tn = sum(not truth and right for truth, right in rows)
    fp = sum(not truth and not right for truth, right in rows)
    fn = sum(truth and not right for truth, right in rows)
    recall = 0 if tp + fn == 0 else tp / (tp + fn)
    return 0.0 if tn + fp == 0 else (recall + tn / (tn + fp)) / 2


def value_of(judged: Sequence[Judged]) -> tuple[float, str | None]:
    kept = [(item.example.expected, bool(item.correct)) for item in judged if item.counted]
    if not kept:
        return float("nan"), "every batch was dropped (no reply held a list of 5 entries), so no score is saved"
    return balanced_accuracy(kept), None


# ----------------------------------------------------------------------------- judging


def requests_for(
    examples: Sequence[Example], explanation: str, template: Template, kind: str, run: int
) -> list[ChatRequest]:
    """One request per batch of the examples, in order."""
    requests = []
    for batch in batch_ranges(len(examples)):
        shown = [examples[i].text for i in batch]
        listing = "\n".join(f"Example {number}: {text}" for number, text in enumerate(shown))
        requests.append(
            ChatRequest(
                messages=template.fill(explanation, listing, len(shown)),
                temperature=TEMPERATURE,
                max_tokens=MAX_TOKENS,
                reply_shape="binary-list",
                answers=len(shown),
                run=run,
                protocol=kind,
                explanation=explanation,
                items=tuple(shown),
            )
        )
    return requests


def read_batch(
    examples: Sequence[Example], batch: range, reply: ChatReply, number_of_batch: int, run: int
) -> list[Judged]:
    """The judgments of one batch from its reply; every row dropped when the reply holds no usable list."""
    entries = parse_reply(reply.text) if reply.ok else None
    if entries is None:
        shown = (reply.text or "")[:80]
        why = reply.error if not reply.ok else f"no list of {BATCH_SIZE} entries on one line in {shown!r}"
        reason = f"batch dropped: {why}"
        return [
            Judged(examples[i], None, reason, failed=True, counted=False, batch=number_of_batch, run=run)
            for i in batch
        ]
    judged = []
    for i, entry in zip(batch, entries, strict=False):
        example = examples[i]
        if entry == 1 or entry == 0:
            judged.append(Judged(example, bool(entry == 1), batch=number_of_batch, run=run))
        else:
            reason = f"entry {entry!r} is neither 1 nor 0: counted wrong"
            judged.append(Judged(example, not example.expected, reason, batch=number_of_batch, run=run))
    return judged


async def score(
    explanation: str,
    examples: Sequence[Example],
    judge: ChatJudge,
    template: Template,
    kind: str,
    *,
    runs: int = 5,
    judge_id: str = "",
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> tuple[ProtocolOutcome, list[list[ChatRequest]]]:
    """Judge the examples (in the order given) in batches, `runs` times: the outcome and each run's requests."""
    per_run = [requests_for(examples, explanation, template, kind, run) for run in range(runs)]
    flat = [request for requests in per_run for request in requests]
    replies, usage, from_cache = await run_chats(judge, flat, cache=cache, progress=progress)
    outcome = ProtocolOutcome(kind, [], judge_id, dict(PARAMETERS, runs=runs), template.source)
    batches = batch_ranges(len(examples))
    for run in range(runs):
        start = run * len(batches)
        judged: list[Judged] = []
        for number_of_batch, batch in enumerate(batches):
            judged += read_batch(examples, batch, replies[start + number_of_batch], number_of_batch, run)
        value, error = value_of(judged)
        cached = all(from_cache[start : start + len(batches)]) if batches else False
        outcome.runs.append(ProtocolRun(value, error, judged, cached=cached))
    if outcome.runs:
        outcome.runs[0].usage = usage
    dropped = [sum(not item.counted for item in run.judged) for run in outcome.runs]
    if any(dropped):
        counts = ", ".join(str(count) for count in dropped)
        outcome.notes.append(f"rows of dropped batches per run: {counts} (left out of the score, as in the protocol)")
    if len(examples) % BATCH_SIZE:
        outcome.notes.append(
            f"the last batch holds {len(examples) % BATCH_SIZE} examples; the protocol wants {BATCH_SIZE} entries "
            "in every reply, so a judge that answers one per example has that batch dropped"
        )
    return outcome, per_run


def details_of(judged: Sequence[Judged], kind: str) -> list[dict[str, Any]]:
    """One run's judgments in the schema Neuronpedia stores (dropped rows: prediction and correct false)."""
    rows = []
    for item in judged:
        example = item.example
        rows.append(
            {
                "text": "".join(example.tokens),
                "distance": 1 if example.expected else -1,
                "ground_truth": example.expected,
                "prediction": bool(item.answer) if item.counted else False,
                "highlighted": kind == FUZZ,
                "correct": bool(item.correct) if item.counted else False,
                "probability": 0.0,
                "conditional_probability": 0.0,
                "activations": example.values,
                "str_tokens": example.tokens,
            }
        )
    return rows


# ----------------------------------------------------------------------------- stored details


@dataclass
class _StoredRow:
    example: Example
    prediction: Any
    correct: Any


def _stored_rows(data: Any, kind: str, notes: list[str]) -> list[_StoredRow]:
    """The stored rows as examples with their stored prediction and correctness; raises DetailsError."""
    if not isinstance(data, list):
        raise DetailsError(f"{kind} details must be a list of examples")
    if not data:
        raise DetailsError(f"{kind} details hold no examples")
    rows: list[_StoredRow] = []
    for position, item in enumerate(data):
        where = f"example {position}"
        if not isinstance(item, dict):
            raise DetailsError(f"{where} of the {kind} details is not an object")
        truth = item.get("ground_truth")
        if not isinstance(truth, bool):
            distance = number(item.get("distance"))
            if distance is None:
                raise DetailsError(f"{where} has neither ground_truth (true/false) nor a distance")
            truth = distance > 0
        tokens, values = item.get("str_tokens"), item.get("activations")
        if (
            isinstance(tokens, list)
            and all(isinstance(token, str) for token in tokens)
            and isinstance(values, list)
            and len(values) == len(tokens)
            and all(number(value) is not None for value in values)
        ):
            token_list, value_list = list(tokens), [float(value) for value in values]
        else:
            text = item.get("text")
            if not isinstance(text, str):
                raise DetailsError(f"{where} has neither text nor str_tokens with activations")
            token_list, value_list = [text], [0.0]
            missing = "some examples carry no str_tokens with activations, so their highlighting cannot be redrawn"
            if kind == FUZZ and missing not in notes:
                notes.append(missing)
        rows.append(
            _StoredRow(
                Example("activating" if truth else "non-activating", token_list, value_list, truth),
                item.get("prediction"),
                item.get("correct"),
            )
        )
    return rows


def _row_failed_for_sure(row: _StoredRow) -> bool:
    """A row only a dropped batch can have stored: no prediction, or -1, or a non-activating row counted wrong
    though its prediction is false (a real 0 on it is right)."""
    if row.prediction is None or (not isinstance(row.prediction, bool) and row.prediction == -1):
        return True
    return row.prediction is False and row.correct is False and not row.example.expected


def _row_reads_as_dropped(row: _StoredRow) -> bool:
    return row.prediction is False and row.correct is False


def _stored_correct(row: _StoredRow) -> bool:
    if isinstance(row.correct, bool):
        return row.correct
    return bool(row.prediction) == row.example.expected


def derive(data: Any, kind: str) -> Derivation:
    """The fuzz or detection value its stored judgments give (dropped batches read from the stored rows)."""
    notes: list[str] = []
    try:
        rows = _stored_rows(data, kind, notes)
    except DetailsError as exc:
        return Derivation(kind, float("nan"), problem=str(exc))
    count = decoy_count([row.example.values for row in rows if row.example.expected])
    for row in rows:
        mark(row.example, kind, count)
    batches = batch_ranges(len(rows))
    dropped: list[int] = []
    ambiguous: list[int] = []
    for number_of_batch, batch in enumerate(batches):
        members = [rows[i] for i in batch]
        if any(_row_failed_for_sure(row) for row in members):
            dropped.append(number_of_batch)
        elif all(_row_reads_as_dropped(row) for row in members):
            ambiguous.append(number_of_batch)
    inconsistent = [
        i
        for i, row in enumerate(rows)
        if isinstance(row.correct, bool)
        and isinstance(row.prediction, bool)
        and row.correct != (row.prediction == row.example.expected)
        and not _row_failed_for_sure(row)
    ]
    if inconsistent:
        notes.append(
            f"{len(inconsistent)} stored rows have a 'correct' that does not follow from their prediction and "
            f"ground truth (examples {', '.join(map(str, inconsistent[:8]))})"
        )
    judged: list[Judged] = []
    for number_of_batch, batch in enumerate(batches):
        for i in batch:
            row = rows[i]
            if number_of_batch in dropped:
                judged.append(Judged(row.example, None, "batch dropped (as stored)", True, False, number_of_batch))
            else:
                answer = bool(row.prediction) if not isinstance(row.prediction, bool) else row.prediction
                item = Judged(row.example, answer, batch=number_of_batch)
                if _stored_correct(row) != (answer == row.example.expected):
                    item.reason = "the stored 'correct' disagrees with the prediction"
                judged.append(item)
    if dropped:
        notes.append(f"batches dropped by the protocol (their rows are stored as failures): {_numbers(dropped)}")

    def value_without(extra: Sequence[int]) -> float:
        kept = [
            (rows[i].example.expected, _stored_correct(rows[i]))
            for number_of_batch, batch in enumerate(batches)
            if number_of_batch not in dropped and number_of_batch not in extra
            for i in batch
        ]
        return balanced_accuracy(kept) if kept else float("nan")

    value = value_without(())
    derivation = Derivation(kind, value, judged, None, notes)
    if not math.isfinite(value):
        derivation.problem = "every batch was dropped, so the protocol saves no score from these details"
    if ambiguous:
        notes.append(
            f"batches {_numbers(ambiguous)} hold only activating examples answered 0 and counted wrong: a judge that "
            "said 0 to all of them, or a dropped batch, which is stored the same way"
        )
        subsets = [
            subset
            for size in range(1, len(ambiguous) + 1)
            for subset in itertools.combinations(ambiguous, size)
        ][:63]
        for subset in subsets:
            alternative = value_without(subset)
            if math.isfinite(alternative):
                derivation.alternatives.append((f"batches {_numbers(subset)} were dropped", alternative))
    return derivation


def _numbers(values: Sequence[int]) -> str:
    return ", ".join(str(value) for value in values)


# ----------------------------------------------------------------------------- embedding


class Embedder(Protocol):
    """Something that embeds texts as unit vectors (rows of a float array)."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def embedding_value(
    explanation: str, texts: Sequence[str], labels: Sequence[bool], embedder: Embedder, instruction: str
) -> tuple[float, list[float], str | None]:
    """ROC-AUC of cos(query, text) for activating against not: (value, similarities, error)."""
    if len(set(labels)) < 2:
        return float("nan"), [], "eleuther_embedding needs both activating and non-activating examples"
    vectors = np.asarray(embedder.embed([instruction + explanation, *texts]), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    unit = vectors / norms[:, None]
    similarities = [float(value) for value in unit[1:] @ unit[0]]
    return roc_auc(list(labels), similarities), similarities, None


def derive_embedding(data: Any) -> Derivation:
    """The AUC the stored similarities give."""
    if not isinstance(data, list) or not data:
        return Derivation(EMBEDDING, float("nan"), problem="eleuther_embedding details must be a non-empty list")
    labels: list[bool] = []
    similarities: list[float] = []
    judged: list[Judged] = []
    for position, item in enumerate(data):
        distance = number(item.get("distance")) if isinstance(item, dict) else None
        similarity = number(item.get("similarity")) if isinstance(item, dict) else None
        if distance is None or similarity is None:
            return Derivation(
                EMBEDDING, float("nan"), problem=f"example {position} needs a numeric distance and similarity"
            )
        text = item.get("text") if isinstance(item.get("text"), str) else ""
        labels.append(distance > 0)
        similarities.append(similarity)
        example = Example("activating" if distance > 0 else "non-activating", [text], [0.0], distance > 0, text)
        judged.append(Judged(example, None, f"similarity {similarity:.4f}"))
    if len(set(labels)) < 2:
        problem = "the details hold only one kind of example, so the AUC is undefined and the protocol saves no score"
        return Derivation(EMBEDDING, float("nan"), judged, problem)
    value = roc_auc(labels, similarities)
    _mark_ranking(judged, labels, similarities)
    return Derivation(EMBEDDING, value, judged)


def _mark_ranking(judged: list[Judged], labels: Sequence[bool], similarities: Sequence[float]) -> None:
    """Per example, how many of the other kind it is ranked wrongly against (what lowers the AUC).

    An example counts as right (`Judged.correct`) when it is ranked right against at least half of
    the other kind: an activating one above them, a non-activating one below them (ties count half).
    """
    for item, label, similarity in zip(judged, labels, similarities, strict=True):
        others = [other for other, other_label in zip(similarities, labels, strict=True) if other_label != label]
        above = sum(other > similarity for other in others) + 0.5 * sum(other == similarity for other in others)
        wrong = above if label else len(others) - above
        kind = "non-activating" if label else "activating"
        item.reason = f"similarity {similarity:.4f}; ranked wrongly against {wrong:g} of {len(others)} {kind} examples"
        item.answer = label if wrong <= len(others) / 2 else not label


def embedding_details(examples: Sequence[Example], similarities: Sequence[float]) -> list[dict[str, Any]]:
    """Similarities in the schema Neuronpedia stores."""
    return [
        {
            "text": "".join(example.tokens),
            "distance": 1 if example.expected else -1,
            "similarity": similarity,
            "activations": example.values,
            "str_tokens": example.tokens,
        }
        for example, similarity in zip(examples, similarities, strict=True)
    ]


async def embedding_score(
    explanation: str, examples: Sequence[Example], embedder: Embedder, instruction: str, prompt: str = "ours"
) -> tuple[ProtocolOutcome, list[float]]:
    """The embedding AUC of `examples` (one run; no judge)."""
    texts = ["".join(example.tokens) for example in examples]
    labels = [example.expected for example in examples]
    value, similarities, error = await asyncio.to_thread(
        embedding_value, explanation, texts, labels, embedder, instruction
    )
    judged = [Judged(example, None) for example in examples] if similarities else []
    if similarities:
        _mark_ranking(judged, labels, similarities)
    run = ProtocolRun(value, error, judged)
    return ProtocolOutcome(EMBEDDING, [run], embedder.name, {"model": embedder.name}, prompt), similarities
