"""The protocols as scorers (`scoring.scorers.SCORER_TABLE`): ``recall-alt``, ``eleuther-fuzz``,
``eleuther-recall``, ``eleuther-embedding`` and ``saebench``.

Each picks its examples from the job's records as the protocol does (raw activations: the
protocols rescale them themselves, so the job's normalization is not used), asks the job's
simulator (which must answer chat requests: ``local``, ``openai:...``,
``openai-compatible:...``) with our prompt or the template in ``scorer_options["prompt"]``
(a list of chat messages), and reports the protocol's value as ``result.score``. Sampled
judges (temperature 1: eleuther-fuzz, eleuther-recall, saebench) run ``runs`` times
(default 5): the score is the mean, ``metrics["sd"]`` the spread, ``metrics["run_scores"]``
each run. ``result.judgments`` lists every example of every run (target 1 where the right
answer is yes); ``metrics["notes"]`` says what differs from the original protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from scoring.errors import ScoringInputError
from scoring.job import ScoringJob, new_result, simulator_id
from scoring.protocols import eleuther, recall_alt, saebench
from scoring.protocols.common import ProtocolOutcome
from scoring.protocols.embedders import embedder_for
from scoring.protocols.neuronpedia import Row, Selection, select_rows
from scoring.protocols.prompts import EMBEDDING_INSTRUCTION, OUR_TEMPLATES, Template, template_from_messages
from scoring.results import JudgmentResult, ScoreResult
from scoring.simulators.chat import ChatJudge, can_chat

RUNS = 5
"""Runs of a temperature-1 judge (the verdict compares a claim with their mean ± sd)."""

MAX_RUNS = 50


def runs_option(options: dict[str, Any]) -> int:
    """The ``runs`` option: a whole number from 1 to MAX_RUNS (default RUNS)."""
    runs = options.get("runs", RUNS)
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise ScoringInputError(f"runs must be a whole number from 1 to {MAX_RUNS}, got {runs!r}")
    return runs


def template_option(options: dict[str, Any], kind: str) -> Template:
    """The ``prompt`` option (a list of chat messages) as a template of `kind`, else ours."""
    given = options.get("prompt")
    return template_from_messages(given, kind) if given is not None else OUR_TEMPLATES[kind]()


def _rows(job: ScoringJob) -> list[Row]:
    return [
        Row(list(record.tokens), list(record.activations), record.max_activation, position)
        for position, record in enumerate(job.records)
    ]


def _needs_chat(job: ScoringJob, result: ScoreResult) -> ChatJudge | None:
    result.simulator = simulator_id(job.simulator, writing=True)
    if can_chat(job.simulator):
        return job.simulator  # type: ignore[return-value]
    result.error = (
        f"the {result.scorer} scorer sends a judge the protocol's chat requests, and the simulator "
        f"{result.simulator} cannot answer them; choose one that can: local, openai:<model> or "
        "openai-compatible:<model>@<url>"
    )
    return None


def fill_result(
    result: ScoreResult, job: ScoringJob, outcome: ProtocolOutcome, notes: Sequence[str] = ()
) -> None:
    """Copy a protocol's outcome into `result`: score (mean over runs), metrics, judgments, usage."""
    result.simulator = outcome.judge or result.simulator
    result.usage = outcome.usage
    result.score = outcome.mean
    result.error = outcome.error
    result.judgments = [
        JudgmentResult(
            index=job.indices[item.example.source] if item.example.source is not None else -1,
            content=item.example.text,
            target=1.0 if item.example.expected else 0.0,
            p_yes=None if item.answer is None else float(item.answer),
            error=item.reason if item.failed or item.answer is None else None,
            cached=run.cached,
            position={"run": item.run, **({"batch": item.batch} if item.batch is not None else {})},
        )
        for run in outcome.runs
        for item in run.judged
    ]
    answered = [judgment for judgment in result.judgments if judgment.p_yes is not None]
    result.metrics = {
        "protocol": outcome.protocol,
        "runs": len(outcome.runs),
        "run_scores": [run.value for run in outcome.runs],
        "sd": outcome.sd,
        "parameters": outcome.parameters,
        "prompt": outcome.prompt,
        "examples": len(outcome.runs[0].judged) if outcome.runs else 0,
        "answered": len(answered),
        "right": sum(((judgment.p_yes or 0.0) >= 0.5) == (judgment.target >= 0.5) for judgment in answered),
        "threshold": 0.5,
        "notes": [*notes, *outcome.notes],
    }
    kept = {item.example.source for run in outcome.runs for item in run.judged if item.example.source is not None}
    result.sequences = [sequence for position, sequence in enumerate(result.sequences) if position in kept]


_NORMALIZATION_NOTE = "the protocol reads raw activations and rescales them itself; the normalization setting is unused"


async def recall_alt_scorer(job: ScoringJob) -> ScoreResult:
    """Neuronpedia's recall_alt on the job's records (`scoring.protocols.recall_alt`)."""
    started = time.perf_counter()
    result = new_result(job, "recall-alt")
    judge = _needs_chat(job, result)
    selection = select_rows(_rows(job))
    if judge is not None and not selection.top:
        result.error = "recall-alt needs records where the feature fires (a value above 0); none does"
    elif judge is not None:
        template = template_option(job.options, "recall_alt")
        outcome, _ = await recall_alt.score(
            job.explanation,
            recall_alt.examples_from_selection(selection),
            judge,
            [template.messages],
            judge_id=result.simulator,
            prompt=template.source,
            cache=job.cache,
            progress=job.progress,
        )
        fill_result(result, job, outcome, [_NORMALIZATION_NOTE, *_selection_notes(selection)])
    result.seconds = time.perf_counter() - started
    return result


def _selection_notes(selection: Selection) -> list[str]:
    notes = []
    if len(selection.zero) < 5:
        notes.append(f"{len(selection.zero)} zero rows (the protocol takes up to 5 rows whose max is 0)")
    return notes


SourcedRow = tuple[list[str], list[float], int | None]


def _both_kinds(selection: Selection, scorer: str) -> tuple[list[SourcedRow], str | None]:
    rows = [(row.tokens, row.values, row.source) for row in [*selection.top, *selection.zero]]
    activating = sum(eleuther.is_activating(values) for _, values, _ in rows)
    if not selection.top or not selection.zero or activating in (0, len(rows)):
        return rows, (
            f"{scorer} needs both activating rows and rows whose max is 0 (Neuronpedia's service refuses a "
            f"feature with one kind); found {len(selection.top)} top rows and {len(selection.zero)} zero rows"
        )
    return rows, None


async def _delphi_scorer(job: ScoringJob, scorer: str, kind: str) -> ScoreResult:
    started = time.perf_counter()
    result = new_result(job, scorer)
    runs = runs_option(job.options)
    judge = _needs_chat(job, result)
    selection = select_rows(_rows(job))
    rows, problem = _both_kinds(selection, scorer)
    if judge is not None and problem:
        result.error = problem
    elif judge is not None:
        template = template_option(job.options, kind)
        prepared = eleuther.prepare(rows, kind, job.seed)
        outcome, _ = await eleuther.score(
            job.explanation,
            prepared.examples,
            judge,
            template,
            kind,
            runs=runs,
            judge_id=result.simulator,
            cache=job.cache,
            progress=job.progress,
        )
        fill_result(result, job, outcome, [_NORMALIZATION_NOTE, *_selection_notes(selection), *prepared.notes])
    result.seconds = time.perf_counter() - started
    return result


async def eleuther_fuzz_scorer(job: ScoringJob) -> ScoreResult:
    """delphi's fuzzing as Neuronpedia runs it (`scoring.protocols.eleuther`)."""
    return await _delphi_scorer(job, "eleuther-fuzz", eleuther.FUZZ)


async def eleuther_recall_scorer(job: ScoringJob) -> ScoreResult:
    """delphi's detection as Neuronpedia runs it (`scoring.protocols.eleuther`)."""
    return await _delphi_scorer(job, "eleuther-recall", eleuther.RECALL)


async def eleuther_embedding_scorer(job: ScoringJob) -> ScoreResult:
    """ROC-AUC of embedding similarity, with the simulator's embedding model or the shipped one."""
    started = time.perf_counter()
    result = new_result(job, "eleuther-embedding")
    selection = select_rows(_rows(job))
    rows, problem = _both_kinds(selection, "eleuther-embedding")
    if problem:
        result.error = problem
    else:
        prepared = eleuther.prepare(rows, eleuther.RECALL, job.seed)
        embedder = embedder_for(job.simulator)
        outcome, similarities = await eleuther.embedding_score(
            job.explanation, prepared.examples, embedder, EMBEDDING_INSTRUCTION
        )
        model_note = f"embedding model {embedder.name} (Neuronpedia's: {eleuther.EMBEDDING_MODEL}); our query wording"
        fill_result(result, job, outcome, [_NORMALIZATION_NOTE, model_note])
        result.metrics["similarities"] = similarities
    result.seconds = time.perf_counter() - started
    return result


async def saebench_scorer(job: ScoringJob) -> ScoreResult:
    """SAEBench's autointerp scoring on windows of the job's records (`scoring.protocols.saebench`)."""
    started = time.perf_counter()
    result = new_result(job, "saebench")
    runs = runs_option(job.options)
    judge = _needs_chat(job, result)
    examples, notes = saebench.choose_windows([(list(r.tokens), list(r.activations)) for r in job.records], job.seed)
    if judge is not None and not examples:
        result.error = "saebench needs records where the latent fires; " + "; ".join(notes)
    elif judge is not None and all(example.expected for example in examples):
        result.error = "saebench needs text where the latent stays quiet to draw its random windows from; none is"
    elif judge is not None:
        template = template_option(job.options, "saebench")
        outcome = await saebench.score(
            job.explanation,
            examples,
            judge,
            template,
            runs=runs,
            judge_id=result.simulator,
            cache=job.cache,
            progress=job.progress,
        )
        fill_result(result, job, outcome, [_NORMALIZATION_NOTE, *notes])
    result.seconds = time.perf_counter() - started
    if not math.isfinite(result.score) and result.error is None:
        result.error = "no run gave a value"
    return result
