"""SAEBench's autointerp scoring: 14 windows of 21 tokens, and a judge that lists the ones that fit (range 0-1).

Facts of the protocol (SAEBench's ``evals/autointerp``):

- Windows of 21 tokens: 10 either side of a chosen token, which is never within 10
  tokens of its sequence's ends.
- 2 top windows: drawn at random from the 12 strongest tokens, no two in the same
  sequence within 10 tokens of each other (the other 10 are for writing explanations).
- 2 importance-weighted windows: drawn at random from 7 tokens sampled without
  replacement with probability proportional to the squared activation, among
  tokens below the weakest of the 12 top tokens.
- 10 random windows, counted as windows where the latent does not fire.
- A window is active when any of its activations exceeds 0.01 x the top windows' max.
- The 14 are shuffled and shown numbered from 1 (``1. text``, line breaks as "↵");
  the judge (gpt-4o-mini, temperature left at the API's default of 1) lists the
  numbers of the windows where it expects the latent to fire, comma-separated, or
  "None"; max_tokens = 2 x 14 + 5.
- Reading the reply: "and" and "None" removed, split on commas; anything that is not a
  whole number makes the reply unusable (SAEBench then drops the latent).
- Score: the fraction of the 14 windows classified right.

What differs here, because a feature's records are not a 2-million-token corpus: the
random windows are drawn from windows of the given records in which nothing exceeds the
threshold (SAEBench draws random corpus positions and counts them inactive even if the
latent fires there); records shorter than 21 tokens are one window each; when a kind of
window runs short, fewer are used and the notes say so.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scoring.cache import SimulationCache
from scoring.protocols.common import Example, Judged, ProtocolOutcome, ProtocolRun
from scoring.protocols.prompts import Template
from scoring.shared_types import Progress
from scoring.simulators.chat import ChatJudge, ChatReply, ChatRequest
from scoring.simulators.runner import run_chats

PROTOCOL = "saebench"
BUFFER = 10
WINDOW = 2 * BUFFER + 1
N_TOP_POOL = 12
N_TOP = 2
N_IMPORTANCE_POOL = 7
N_IMPORTANCE = 2
N_RANDOM = 10
ACT_THRESHOLD_FRACTION = 0.01
TEMPERATURE = 1.0


def max_tokens(count: int) -> int:
    """SAEBench's completion budget for `count` windows."""
    return 2 * count + 5


@dataclass(frozen=True)
class _Window:
    record: int
    start: int
    end: int


def _centers(length: int) -> range:
    return range(BUFFER, length - BUFFER) if length >= WINDOW else range(length)


def _window(record: int, length: int, center: int) -> _Window:
    if length >= WINDOW:
        return _Window(record, center - BUFFER, center + BUFFER + 1)
    return _Window(record, 0, length)


def window_text(tokens: Sequence[str]) -> str:
    """A window as SAEBench shows it: tokens joined, the replacement character dropped, line breaks as "↵"."""
    return "".join(tokens).replace("\ufffd", "").replace("\n", "\u21b5")


def choose_windows(rows: Sequence[tuple[list[str], list[float]]], seed: int) -> tuple[list[Example], list[str]]:
    """The windows shown to the judge, shuffled, and notes on what ran short; [] when nothing fires."""
    notes: list[str] = []
    positions = [
        (values[center], record, center)
        for record, (_, values) in enumerate(rows)
        for center in _centers(len(values))
    ]
    ranked = sorted(positions, key=lambda item: -item[0])
    pool: list[_Window] = []
    centers: list[float] = []
    seen: set[tuple[int, int]] = set()
    for value, record, center in ranked:
        if len(pool) == N_TOP_POOL or value <= 0:
            break
        length = len(rows[record][1])
        if (record, center) in seen:
            continue
        pool.append(_window(record, length, center))
        centers.append(value)
        blocked = range(length) if length < WINDOW else range(center - BUFFER, center + BUFFER + 1)
        seen.update((record, position) for position in blocked)
    if not pool:
        return [], ["no token has an activation above 0, so there are no top windows"]
    generator = random.Random(seed)
    sampler = np.random.default_rng(seed)
    weakest_top = min(centers)
    act_threshold = ACT_THRESHOLD_FRACTION * max(max(rows[w.record][1][w.start : w.end]) for w in pool)
    top = generator.sample(pool, min(N_TOP, len(pool)))
    if len(pool) < N_TOP_POOL:
        notes.append(f"only {len(pool)} top windows without overlap (SAEBench takes 2 of 12)")

    candidates = [(value, record, center) for value, record, center in positions if value < weakest_top]
    weights = np.array([value**2 for value, _, _ in candidates], dtype=np.float64)
    importance: list[_Window] = []
    if weights.size and weights.max() >= 1e-6:
        size = min(N_IMPORTANCE_POOL, int(np.count_nonzero(weights)))
        drawn = sampler.choice(len(candidates), size=size, replace=False, p=weights / weights.sum())
        sampled = [_window(candidates[i][1], len(rows[candidates[i][1]][1]), candidates[i][2]) for i in drawn]
        importance = generator.sample(sampled, min(N_IMPORTANCE, len(sampled)))
    if len(importance) < N_IMPORTANCE:
        notes.append(f"{len(importance)} importance-weighted windows below the top ones (SAEBench uses 2)")

    used = {*top, *importance}
    quiet = sorted(
        {
            window
            for record, (_, values) in enumerate(rows)
            for center in _centers(len(values))
            for window in [_window(record, len(values), center)]
            if max(values[window.start : window.end]) <= act_threshold and window not in used
        },
        key=lambda window: (window.record, window.start),
    )
    randoms = generator.sample(quiet, min(N_RANDOM, len(quiet)))
    if len(randoms) < N_RANDOM:
        notes.append(f"{len(randoms)} windows where the latent stays quiet (SAEBench uses 10 random ones)")

    examples: list[Example] = []
    for group, windows in (("top", top), ("importance", importance), ("random", randoms)):
        for window in windows:
            tokens, values = rows[window.record]
            shown_tokens = list(tokens[window.start : window.end])
            shown_values = list(values[window.start : window.end])
            active = group != "random" and any(value > act_threshold for value in shown_values)
            examples.append(
                Example(group, shown_tokens, shown_values, active, window_text(shown_tokens), source=window.record)
            )
    generator.shuffle(examples)
    return examples, notes


def parse_predictions(text: str) -> list[int] | None:
    """The numbers listed in a reply, by SAEBench's rules; None when the reply is unusable."""
    pieces = text.strip().rstrip(".").replace("and", ",").replace("None", "").split(",")
    listed = [piece.strip() for piece in pieces if piece.strip()]
    if not all(piece.isdigit() for piece in listed):
        return None
    return [int(piece) for piece in listed]


def request_for(examples: Sequence[Example], explanation: str, template: Template, run: int) -> ChatRequest:
    listing = "\n".join(f"{number}. {example.text}" for number, example in enumerate(examples, start=1))
    return ChatRequest(
        messages=template.fill(explanation, listing, len(examples)),
        temperature=TEMPERATURE,
        max_tokens=max_tokens(len(examples)),
        reply_shape="index-list",
        answers=len(examples),
        run=run,
        protocol=PROTOCOL,
        explanation=explanation,
        items=tuple(example.text for example in examples),
    )


def read_reply(examples: Sequence[Example], reply: ChatReply, run: int) -> ProtocolRun:
    if not reply.ok:
        failed = [Judged(example, None, f"no reply: {reply.error}", True, False, run=run) for example in examples]
        return ProtocolRun(float("nan"), f"the judge gave no reply: {reply.error}", failed)
    predictions = parse_predictions(reply.text or "")
    if predictions is None:
        why = f"the reply is not a list of numbers: {(reply.text or '')[:80]!r}"
        unusable = [Judged(example, None, why, True, False, run=run) for example in examples]
        return ProtocolRun(float("nan"), why, unusable)
    judged = [
        Judged(example, number in predictions, run=run) for number, example in enumerate(examples, start=1)
    ]
    return ProtocolRun(sum(bool(item.correct) for item in judged) / len(judged), None, judged)


async def score(
    explanation: str,
    examples: Sequence[Example],
    judge: ChatJudge,
    template: Template,
    *,
    runs: int = 5,
    judge_id: str = "",
    cache: SimulationCache | None = None,
    progress: Progress | None = None,
) -> ProtocolOutcome:
    """Ask the judge about the windows `runs` times (temperature 1): each run's fraction right."""
    requests = [request_for(examples, explanation, template, run) for run in range(runs)]
    replies, usage, from_cache = await run_chats(judge, requests, cache=cache, progress=progress)
    parameters = {"temperature": TEMPERATURE, "max_tokens": max_tokens(len(examples)), "runs": runs}
    outcome = ProtocolOutcome(PROTOCOL, [], judge_id, parameters, template.source)
    for run, (reply, cached) in enumerate(zip(replies, from_cache, strict=True)):
        result = read_reply(examples, reply, run)
        result.cached = cached
        outcome.runs.append(result)
    if outcome.runs:
        outcome.runs[0].usage = usage
    return outcome
