"""Scorers that ask a judge yes/no questions instead of simulating activations.

Each builds questions with `scoring.prompts`, has them answered through the
runner (cache, concurrency, usage) by a simulator that can judge, and compares
the answers, read as P(yes), with what the real activations say:

- ``detection-judge``: whole sequences, half activating (spread over the
  activation range) and half not; is what the explanation describes in the text?
  Like ``detection``, its metrics hold ``sequence_predictions`` (here each
  sequence's P(yes), in the order of ``result.sequences``) and ``threshold``.
- ``fuzzing-judge``: activating sequences with their real active tokens marked
  (a correct example) or as many inactive tokens marked (a wrong one); are the
  marked tokens what the explanation describes?
- ``binary-condition``: windows of text; does the explanation's condition hold?
  Correlated with each window's highest real activation, with a p-value.
- ``attention-head``: the strongest and some weak token pairs of an attention
  head; does the explanation describe attention from one token to the other?

A judgment that fails makes the score NaN with the reason, as a failed
simulation does; it never counts as "no".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from scoring import prompts
from scoring.errors import ScoringInputError
from scoring.job import ScoringJob, new_result, simulator_id
from scoring.metrics import classification_metrics, pearson, pearson_p_value
from scoring.records import AttentionPair, AttentionRecord
from scoring.results import JudgmentResult, ScoreResult
from scoring.shared_types import ACTIVE_THRESHOLD, JUDGE_THRESHOLD
from scoring.simulated import fuzzing_markings
from scoring.simulators.judge import Judge, JudgeQuestion, can_judge
from scoring.simulators.runner import run_judgments

ATTENTION_TOP_PAIRS = 5
"""Strongest pairs per attention record (the examples the explanation should describe)."""
ATTENTION_LOW_PAIRS = 5
"""Weak pairs drawn per attention record (the examples it should not describe)."""
ATTENTION_LOW_FRACTION = 0.1
"""A pair is weak below this fraction of its record's strongest value."""


@dataclass
class _Asked:
    """A question with what it is about and what a perfect judge would answer."""

    question: JudgeQuestion
    target: float
    index: int
    """Position of the record in the loaded records."""
    position: dict[str, int] = field(default_factory=dict)


async def _ask(job: ScoringJob, result: ScoreResult, asked: Sequence[_Asked]) -> bool:
    """Have every question answered into `result.judgments`; False (with `result.error`) when any is not."""
    result.simulator = simulator_id(job.simulator, writing=True)
    if not can_judge(job.simulator):
        result.error = (
            f"the {result.scorer} scorer asks a judge yes/no questions, and the simulator {result.simulator} "
            "cannot answer them; choose one that judges: local, openai:<model> or "
            "openai-compatible:<model>@<url>"
        )
        return False
    judgments, usage, from_cache = await run_judgments(
        cast(Judge, job.simulator), [item.question for item in asked], cache=job.cache, progress=job.progress
    )
    result.usage = usage
    result.judgments = [
        JudgmentResult(
            index=item.index,
            content=item.question.content,
            target=item.target,
            p_yes=judgment.p_yes,
            error=judgment.error,
            cached=cached,
            position=item.position,
        )
        for item, judgment, cached in zip(asked, judgments, from_cache, strict=True)
    ]
    for sequence in result.sequences:
        own = [judgment for judgment in result.judgments if judgment.index == sequence.index]
        sequence.cached = bool(own) and all(judgment.cached for judgment in own)
        sequence.error = next((judgment.error for judgment in own if judgment.error), None)
    failures = [judgment for judgment in result.judgments if judgment.error is not None]
    if failures:
        result.error = (
            f"{len(failures)} of {len(result.judgments)} questions could not be answered, so the score is "
            f"undefined; first reason: {failures[0].error}"
        )
        return False
    return True


def _classify(result: ScoreResult) -> None:
    """Score = ROC-AUC of P(yes) separating correct (target 1) from wrong (target 0) examples."""
    labels = [judgment.target >= 0.5 for judgment in result.judgments]
    answers = [float(judgment.p_yes or 0.0) for judgment in result.judgments]
    result.metrics = classification_metrics(labels, answers, JUDGE_THRESHOLD)
    result.metrics["questions"] = len(result.judgments)
    result.score = float(result.metrics["roc_auc"])


def detection_sample(real: Sequence[Sequence[float]], seed: int) -> tuple[list[int], list[int]]:
    """Positions of the activating and non-activating sequences detection-judge asks about.

    Activating: real max >= ACTIVE_THRESHOLD; non-activating: below it. As many
    of each are taken as the smaller group has; the activating ones are drawn
    one from each of that many equal strata of their maxima (so weak as well as
    strong ones are asked about), the others at random; both seeded. Both
    lists are empty when either group is.
    """
    maxima = [max(values, default=0.0) for values in real]
    activating = sorted((i for i, top in enumerate(maxima) if top >= ACTIVE_THRESHOLD), key=lambda i: maxima[i])
    silent = [i for i, top in enumerate(maxima) if top < ACTIVE_THRESHOLD]
    count = min(len(activating), len(silent))
    if count == 0:
        return [], []
    rng = np.random.default_rng(seed)
    positives = sorted(int(rng.choice(stratum)) for stratum in np.array_split(np.array(activating), count))
    negatives = sorted(int(i) for i in rng.choice(silent, size=count, replace=False))
    return positives, negatives


async def detection_judge_scorer(job: ScoringJob) -> ScoreResult:
    """Does the judge say yes to activating sequences and no to the others?"""
    started = time.perf_counter()
    positives, negatives = detection_sample(job.real, job.seed)
    if not positives:
        result = new_result(job, "detection-judge")
        n_active = sum(max(values, default=0.0) >= ACTIVE_THRESHOLD for values in job.real)
        result.error = (
            "detection-judge needs both activating and non-activating sequences "
            f"(found {n_active} and {len(job.real) - n_active}); add random or low-activation records"
        )
    else:
        chosen = sorted(positives + negatives)
        result = new_result(job, "detection-judge", chosen)
        asked = [
            _Asked(
                prompts.detection_question(job.explanation, job.records[i].tokens),
                1.0 if i in positives else 0.0,
                job.indices[i],
            )
            for i in chosen
        ]
        if await _ask(job, result, asked):
            _classify(result)
            # one question per sequence: its P(yes) is the sequence's prediction (as detection records them)
            answers = {judgment.index: judgment.p_yes for judgment in result.judgments}
            result.metrics["sequence_predictions"] = [answers[sequence.index] for sequence in result.sequences]
    result.seconds = time.perf_counter() - started
    return result


async def fuzzing_judge_scorer(job: ScoringJob) -> ScoreResult:
    """Does the judge accept the real active tokens and reject as many wrong ones, marked in the same text?"""
    started = time.perf_counter()
    markings = fuzzing_markings(job.real, job.seed)
    result = new_result(job, "fuzzing-judge", [position for position, _, _ in markings] if markings else None)
    if not markings:
        result.error = "fuzzing-judge needs activating sequences that also have inactive tokens"
    else:
        asked: list[_Asked] = []
        for position, active, wrong in markings:
            tokens = job.records[position].tokens
            index = job.indices[position]
            asked.append(_Asked(prompts.fuzzing_question(job.explanation, tokens, active), 1.0, index))
            asked.append(_Asked(prompts.fuzzing_question(job.explanation, tokens, wrong), 0.0, index))
        if await _ask(job, result, asked):
            _classify(result)
    result.seconds = time.perf_counter() - started
    return result


def context_windows(n_tokens: int, window: int | None) -> list[tuple[int, int]]:
    """(start, end) token spans: the whole sequence, or consecutive windows of `window` tokens.

    The last window may be shorter."""
    if window is None:
        return [(0, n_tokens)]
    return [(start, min(start + window, n_tokens)) for start in range(0, n_tokens, window)]


def window_option(options: dict[str, object]) -> int | None:
    """binary-condition's ``window`` option: None (whole sequences) or a positive whole number of tokens."""
    window = options.get("window")
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ScoringInputError(f"window must be a positive whole number of tokens, got {window!r}")
    return window


async def binary_condition_scorer(job: ScoringJob) -> ScoreResult:
    """Correlation between the judge's P(yes) that the condition holds and each window's highest real activation.

    Option ``window``: tokens per window (default: whole sequences). Metrics add
    the two-sided p-value of the correlation (t-test, n - 2 degrees of freedom),
    the correlation of the yes/no answer (P(yes) >= 0.5), and classification
    figures of P(yes) for windows with an active token.
    """
    started = time.perf_counter()
    window = window_option(job.options)
    result = new_result(job, "binary-condition")
    asked = [
        _Asked(
            prompts.condition_question(job.explanation, record.tokens[start:end]),
            max(real[start:end]),
            index,
            {"start": start, "end": end},
        )
        for record, real, index in zip(job.records, job.real, job.indices, strict=True)
        for start, end in context_windows(len(record.tokens), window)
    ]
    if all(item.target == asked[0].target for item in asked):
        result.error = (
            "every window has the same highest real activation, so no correlation is defined; "
            "give records where the neuron fires and records where it does not"
        )
    elif await _ask(job, result, asked):
        answers = [float(judgment.p_yes or 0.0) for judgment in result.judgments]
        targets = [judgment.target for judgment in result.judgments]
        saying_yes = [1.0 if answer >= JUDGE_THRESHOLD else 0.0 for answer in answers]
        correlation = pearson(answers, targets)
        indicator_correlation = pearson(saying_yes, targets)
        labels = [target >= ACTIVE_THRESHOLD for target in targets]
        result.metrics = {
            "correlation": correlation,
            "p_value": pearson_p_value(correlation, len(answers)),
            "indicator_correlation": indicator_correlation,
            "indicator_p_value": pearson_p_value(indicator_correlation, len(answers)),
            "windows": len(answers),
            "window_tokens": window,
            **classification_metrics(labels, answers, JUDGE_THRESHOLD),
        }
        result.score = correlation
        if math.isnan(correlation):
            result.error = "the judge gave every window the same P(yes), so no correlation is defined"
    result.seconds = time.perf_counter() - started
    return result


def attention_pairs(
    record: AttentionRecord, rng: np.random.Generator
) -> tuple[list[AttentionPair], list[AttentionPair]]:
    """The top pairs and the weak pairs the attention-head scorer asks about, for one record.

    Top: the ATTENTION_TOP_PAIRS largest values above 0 (ties in input order).
    Weak: up to ATTENTION_LOW_PAIRS drawn at random from the other pairs below
    ATTENTION_LOW_FRACTION x the record's max, listed in input order.
    """
    strongest = record.max_value
    if strongest <= 0:
        return [], []
    ranked = sorted(record.pairs, key=lambda pair: -pair[2])
    top = [pair for pair in ranked[:ATTENTION_TOP_PAIRS] if pair[2] > 0]
    top_cells = {(frm, to) for frm, to, _ in top}
    weak = [
        pair for pair in record.pairs
        if pair[2] < ATTENTION_LOW_FRACTION * strongest and (pair[0], pair[1]) not in top_cells
    ]
    count = min(ATTENTION_LOW_PAIRS, len(weak))
    picks = sorted(int(i) for i in rng.choice(len(weak), size=count, replace=False)) if count else []
    return top, [weak[i] for i in picks]


async def attention_head_scorer(job: ScoringJob) -> ScoreResult:
    """ROC-AUC of P(yes) on each record's top pairs against its weak pairs."""
    started = time.perf_counter()
    result = new_result(job, "attention-head")
    rng = np.random.default_rng(job.seed)
    asked: list[_Asked] = []
    for index, record in enumerate(job.attention_records):
        top, weak = attention_pairs(record, rng)
        for pairs, target in ((top, 1.0), (weak, 0.0)):
            asked += [
                _Asked(
                    prompts.attention_question(job.explanation, record.tokens, frm, to),
                    target,
                    index,
                    {"from": frm, "to": to},
                )
                for frm, to, _ in pairs
            ]
    n_top = sum(item.target == 1.0 for item in asked)
    if n_top == 0 or n_top == len(asked):
        result.error = (
            f"attention-head needs strong pairs and weak pairs (below {ATTENTION_LOW_FRACTION:g} x a record's max) "
            f"to compare; found {n_top} and {len(asked) - n_top}"
        )
    elif await _ask(job, result, asked):
        _classify(result)
    result.seconds = time.perf_counter() - started
    return result
