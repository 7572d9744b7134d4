"""The public functions: score and rank explanations (of neurons, or of attention heads), and generate candidate ones.

Synchronous functions wrap the async ones (``ascore_explanation``,
``arank_explanations``, ``ascore_attention_explanation``,
``agenerate_explanations``), which servers and batch jobs call directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from scoring import judged
from scoring.cache import SimulationCache, open_cache
from scoring.errors import ScoringInputError
from scoring.job import ScoringJob, simulator_id
from scoring.metrics import benjamini_hochberg, holm_bonferroni
from scoring.null import NULL_SIZE, NullDistribution, attach_null, choose_null
from scoring.prepared import PreparedRecords, prepare_records, selection_options
from scoring.records import (
    NORMALIZATIONS,
    ActivationRecord,
    AttentionRecord,
    Limits,
    check_unicode,
    load_attention_records,
)
from scoring.results import GeneratedExplanation, ScoreResult
from scoring.scorers import ATTENTION_SCORERS, JUDGE_SCORERS, SCORER_OPTIONS, SCORERS, check_scorer_options
from scoring.shared_types import PreparationProgress, Progress
from scoring.simulators import Explainer, ExplanationExample, Simulator, build_default, get_simulator
from scoring.simulators.defaults import DefaultChoice, default_choice
from scoring.simulators.judge import can_judge
from scoring.simulators.runner import run_explanations

MAX_EXPLANATION_CHARS = 2000
MAX_GENERATED = 20
"""Most candidates one `generate_explanations` call may ask for."""

RecordsInput = PreparedRecords | str | Path | dict[str, Any] | list[Any] | Sequence[ActivationRecord]
AttentionInput = str | Path | dict[str, Any] | list[Any] | Sequence[AttentionRecord]
CacheOption = SimulationCache | str | Path | bool | None

T = TypeVar("T")

_simulators: dict[str, Simulator] = {}
_simulators_lock = threading.Lock()


def default_simulator_spec(judge: bool = False) -> str:
    """The spec used when none is given: ``$SCORING_SIMULATOR``, else the user's settings file, else the
    built-in choice (`scoring.simulators.default_simulator`, by benchmark for this hardware). With `judge`,
    the spec of work that asks yes/no questions or writes explanations (``$SCORING_JUDGE``, the settings
    file, else ``local``). `default_simulator_choice` also says where it comes from and why."""
    return default_choice(judge).spec


def default_simulator_choice(judge: bool = False) -> DefaultChoice:
    """The default simulator (with `judge`, the default judge), where it comes from and why."""
    return default_choice(judge)


def resolve_simulator(simulator: str | Simulator | None, *, judge: bool = False) -> Simulator:
    """One shared instance per spec string, so models load once and limits are shared.

    None means the default (`default_simulator_spec`); with `judge`, the default of work that asks
    yes/no questions or writes explanations."""
    if simulator is None:
        return build_default(resolve_simulator, judge=judge)
    if not isinstance(simulator, str):
        return get_simulator(simulator)
    with _simulators_lock:
        if simulator not in _simulators:
            _simulators[simulator] = get_simulator(simulator)
        return _simulators[simulator]


def preparation_needed(simulator: str | Simulator | None = None) -> str | None:
    """What the first use of `simulator` will do before it can score (a sentence for the user, e.g. "converts
    the model, about 2 min, 1.9 GB"), or None when it is ready or needs no preparation.

    Asks the simulator's optional ``preparation_needed()`` method; a simulator without one is always ready.
    A spec string or None (the default) is resolved to the same shared instance the scoring functions use.
    """
    instance = resolve_simulator(simulator)
    ask = getattr(instance, "preparation_needed", None)
    if not callable(ask):
        return None
    needed = ask()
    if needed is None:
        return None
    if not isinstance(needed, str):
        raise TypeError(f"{type(instance).__name__}.preparation_needed() returned {type(needed).__name__}, not a str")
    return needed.strip() or None


def prepare_simulator(simulator: str | Simulator | None = None, progress: PreparationProgress | None = None) -> None:
    """Do the first-use preparation of `simulator` now (convert, download, load its model), reporting
    progress(stage, done, total), so that the first score does not stall silently. Nothing happens for a
    simulator without an optional ``prepare()`` method. Errors of the preparation itself propagate.
    """
    instance = resolve_simulator(simulator)
    prepare = getattr(instance, "prepare", None)
    if callable(prepare):
        prepare(progress)


def require_judge(simulator: Simulator, scorers: Sequence[str]) -> None:
    """Raise ScoringInputError when one of `scorers` asks a judge and `simulator` cannot answer.

    The scorers themselves return NaN with the reason in that case; faces that run many scores
    (command line, batch, bench) call this first, so that a run which cannot produce a single
    number stops at once with the reason.
    """
    judged_here = [name for name in scorers if name in JUDGE_SCORERS]
    if judged_here and not can_judge(simulator):
        named = f"the {', '.join(judged_here)} scorer{'s ask' if len(judged_here) > 1 else ' asks'}"
        raise ScoringInputError(
            f"{named} a judge yes/no questions, which the {simulator_id(simulator)} simulator cannot answer; "
            "choose one that judges: "
            "local, openai:<model> or openai-compatible:<model>@<url> (or leave out --simulator for the default "
            "judge)"
        )


def resolve_cache(cache: CacheOption) -> SimulationCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return open_cache(None)
    if isinstance(cache, SimulationCache):
        return cache
    if isinstance(cache, (str, Path)):
        return open_cache(cache)
    raise ScoringInputError(f"cache must be True/False, a directory or a SimulationCache, not {type(cache).__name__}")


@contextlib.contextmanager
def run_cache(cache: CacheOption, n_scorers: int) -> Iterator[SimulationCache | None]:
    """The cache of a run of `n_scorers` scorers over the same explanations and records.

    `cache` resolved; but when none is asked for and several scorers run, a
    temporary cache that lives for this run only, so each simulation (and each
    judgment) is made once and the later scorers read it instead of simulating again.
    """
    resolved = resolve_cache(cache)
    if resolved is not None or n_scorers < 2:
        yield resolved
        return
    with tempfile.TemporaryDirectory(prefix="scoring-run-") as directory:
        scratch = SimulationCache(directory)
        try:
            yield scratch
        finally:
            scratch.close()


def check_explanation(explanation: Any) -> str:
    if not isinstance(explanation, str):
        raise ScoringInputError(f"an explanation must be text, got {type(explanation).__name__}")
    text = check_unicode(explanation, "the explanation").strip()
    if not text:
        raise ScoringInputError("the explanation is empty: write what the neuron responds to")
    if len(text) > MAX_EXPLANATION_CHARS:
        raise ScoringInputError(
            f"the explanation is {len(text)} characters; keep it under {MAX_EXPLANATION_CHARS}"
        )
    return text


def refuse_attention_scorer(scorer: str) -> None:
    """Raise ScoringInputError, saying where to go instead, when `scorer` reads attention records."""
    if scorer in ATTENTION_SCORERS:
        raise ScoringInputError(
            f"the {scorer} scorer reads attention records, not activation records: call "
            "scoring.score_attention_explanation(explanation, attention_records, simulator=...) "
            "or run `python -m scoring attention RECORDS -e EXPLANATION`"
        )


async def ascore_explanation(
    explanation: str,
    records: RecordsInput,
    *,
    simulator: str | Simulator | None = None,
    scorer: str = "simulation",
    sampling: str = "all",
    n_sequences: int | None = None,
    seed: int = 0,
    normalization: str = "global",
    cache: CacheOption = True,
    progress: Progress | None = None,
    limits: Limits | None = None,
    scorer_options: dict[str, Any] | None = None,
    null: int | bool | None = None,
) -> ScoreResult:
    """Score one explanation (async). See `score_explanation`."""
    if null_size(null):
        ranked = await arank_explanations(
            [explanation],
            records,
            null=null,
            simulator=simulator,
            scorer=scorer,
            sampling=sampling,
            n_sequences=n_sequences,
            seed=seed,
            normalization=normalization,
            cache=cache,
            progress=progress,
            limits=limits,
            scorer_options=scorer_options,
        )
        return ranked[0]
    text = check_explanation(explanation)
    if scorer not in SCORERS:
        raise ScoringInputError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}")
    refuse_attention_scorer(scorer)
    options = check_scorer_options(scorer, scorer_options)
    if normalization not in NORMALIZATIONS:
        raise ScoringInputError(
            f"unknown normalization {normalization!r}; choose one of: {', '.join(NORMALIZATIONS)}"
        )
    prepared = prepare_records(
        records, limits=limits, sampling=sampling, n_sequences=n_sequences, seed=seed, normalization=normalization
    )
    job = ScoringJob(
        explanation=text,
        records=prepared.chosen,
        indices=prepared.indices,
        real=prepared.real,
        simulator=resolve_simulator(simulator, judge=scorer in JUDGE_SCORERS),
        cache=resolve_cache(cache),
        normalization=normalization,
        sampling=prepared.sampling_summary(),
        seed=seed,
        progress=progress,
        options=options,
    )
    return await SCORERS[scorer](job)


def score_explanation(explanation: str, records: RecordsInput, **options: Any) -> ScoreResult:
    """Score how well `explanation` predicts the activations in `records`.

    `records`: anything `load_records` reads, or `PreparedRecords` from `prepare_records` (then validated
    once already, and not again).
    Options: simulator (spec string or instance; default: `default_simulator_spec`,
    or for a judge scorer `default_simulator_spec(judge=True)`), scorer (``simulation``, ``detection``,
    ``fuzzing``, or a judge scorer: ``detection-judge``, ``fuzzing-judge``,
    ``binary-condition``), scorer_options (``{"window": W}`` for
    binary-condition), sampling (``all``, ``top``, ``top+random``,
    ``quantile``, ``diverse``), n_sequences, seed, normalization (``global``,
    ``per_record``, ``none``), cache (True, False, a directory or a
    SimulationCache), progress (callback(done, total, message)), limits, null
    (True, or how many unrelated explanations to score as the chance level:
    see `null_scores`; the result's metrics then hold ``null_percentile``,
    ``null_p95``, ``over_null_p95``, ``null_n`` and the null under ``null``). The
    score is NaN with ``result.error`` set when it cannot be computed. Raises
    ScoringInputError for bad input (``attention-head`` included: it takes
    attention records, see `score_attention_explanation`).
    """
    return run_sync(ascore_explanation(explanation, records, **options))


async def arank_explanations(
    explanations: Sequence[str], records: RecordsInput, *, progress: Progress | None = None, **options: Any
) -> list[ScoreResult]:
    """Score several explanations on the same records (async), best first, NaN last."""
    if isinstance(explanations, str) or not isinstance(explanations, Sequence):
        raise ScoringInputError("explanations must be a list of strings")
    if not explanations:
        raise ScoringInputError("give at least one explanation to rank")
    texts = [check_explanation(e) for e in explanations]
    limits = options.pop("limits", None)
    size = null_size(options.pop("null", None))
    unrelated = choose_null(size, exclude=texts, seed=int(options.get("seed", 0))) if size else []
    everything = [*texts, *unrelated]
    prepared = prepare_records(records, limits=limits, **selection_options(options))
    done = [0] * len(everything)
    totals = [0] * len(everything)

    def progress_for(position: int) -> Progress | None:
        if progress is None:
            return None
        if position < len(texts):
            label = f"explanation {position + 1}/{len(texts)}"
        else:
            label = f"chance level: unrelated explanation {position - len(texts) + 1}/{len(unrelated)}"

        def report(finished: int, total: int, message: str) -> None:
            done[position], totals[position] = finished, total
            progress(sum(done), max(sum(totals), 1), f"{label}: {message}")

        return report

    results = list(
        await asyncio.gather(
            *(
                ascore_explanation(text, prepared, progress=progress_for(i), limits=limits, **options)
                for i, text in enumerate(everything)
            )
        )
    )
    candidates = results[: len(texts)]
    correct_p_values(candidates)
    if unrelated:
        attach_null(candidates, NullDistribution.from_results(results[len(texts) :]))
    return sort_results(candidates)


def rank_explanations(explanations: Sequence[str], records: RecordsInput, **options: Any) -> list[ScoreResult]:
    """Score several explanations on the same records; best first, NaN scores last.

    When the scorer reports a ``p_value`` (binary-condition), each result's
    metrics also get it corrected for the number of explanations tested:
    ``p_value_holm`` (Holm-Bonferroni, the default, copied to
    ``p_value_corrected``) and ``p_value_bh`` (Benjamini-Hochberg).
    With ``null=True`` (or a number of unrelated explanations), the chance level
    is scored alongside, in the same pass: see `score_explanation` and `null_scores`.
    """
    return run_sync(arank_explanations(explanations, records, **options))


def null_size(null: int | bool | None) -> int:
    """How many unrelated explanations the `null` option asks for (0: none)."""
    if null is None or null is False:
        return 0
    if null is True:
        return NULL_SIZE
    if isinstance(null, int) and null >= 2:
        return null
    raise ScoringInputError(f"null must be True, False or a number of unrelated explanations (2 or more), got {null!r}")


async def anull_scores(
    records: RecordsInput,
    *,
    n: int = NULL_SIZE,
    exclude: Sequence[str] = (),
    progress: Progress | None = None,
    **options: Any,
) -> NullDistribution:
    """The chance level (async). See `null_scores`."""
    unrelated = choose_null(n, exclude=[check_explanation(text) for text in exclude], seed=int(options.get("seed", 0)))
    results = await arank_explanations(unrelated, records, progress=progress, **options)
    return NullDistribution.from_results(results)


def null_scores(records: RecordsInput, **options: Any) -> NullDistribution:
    """The chance level of a score on `records`: `n` (default 20) explanations of unrelated features, drawn
    (seeded) from the bank shipped in ``scoring/data/null_explanations.txt`` and scored with the same
    simulator, scorer, sampling, normalization and cache as any explanation.

    ``null.percentile(score)`` is the share (0..100) of the unrelated explanations a
    score beats, ``null.threshold`` their 95th percentile and ``null.margin(score)``
    how far a score is above it. `exclude` leaves out bank entries equal to your own
    explanations. Other options as for `rank_explanations`.
    """
    return run_sync(anull_scores(records, **options))


P_VALUE_CORRECTION = "holm"
"""The correction `p_value_corrected` carries: Holm-Bonferroni, which bounds the chance of any
false discovery among the explanations ranked, with no assumption about how their tests depend."""


P_VALUE_CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "holm": holm_bonferroni,
    "bh": benjamini_hochberg,
}
"""Corrections for testing several explanations, by the name that ends their metric (``p_value_holm``)."""


def corrected_p_values(
    pvalues: Sequence[float], corrections: Sequence[str] = (P_VALUE_CORRECTION, "bh")
) -> list[dict[str, Any]]:
    """For each of `pvalues`, the metrics that correct it for all of them, in the input order.

    ``p_value_<name>`` for each of `corrections`, the first one again as ``p_value_corrected``
    (its name in ``p_value_correction``), and ``comparisons``: how many p-values are finite
    (NaN ones stay NaN and are not counted).
    """
    if not corrections or any(name not in P_VALUE_CORRECTIONS for name in corrections):
        raise ScoringInputError(
            f"unknown p-value correction in {list(corrections)!r}; choose from: {', '.join(P_VALUE_CORRECTIONS)}"
        )
    adjusted = {name: P_VALUE_CORRECTIONS[name](pvalues) for name in corrections}
    comparisons = sum(math.isfinite(value) for value in pvalues)
    return [
        {
            **{f"p_value_{name}": values[position] for name, values in adjusted.items()},
            "p_value_corrected": adjusted[corrections[0]][position],
            "p_value_correction": corrections[0],
            "comparisons": comparisons,
        }
        for position in range(len(pvalues))
    ]


def correct_p_values(results: Sequence[ScoreResult]) -> None:
    """Add Holm and Benjamini-Hochberg corrected p-values to results whose metrics hold ``p_value``."""
    tested = [result for result in results if "p_value" in result.metrics]
    pvalues = [float(result.metrics["p_value"]) for result in tested]
    for result, fields in zip(tested, corrected_p_values(pvalues), strict=True):
        result.metrics.update(fields)


async def ascore_attention_explanation(
    explanation: str,
    attention_records: AttentionInput,
    *,
    simulator: str | Simulator | None = None,
    seed: int = 0,
    cache: CacheOption = True,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> ScoreResult:
    """Score an explanation of an attention head (async). See `score_attention_explanation`."""
    text = check_explanation(explanation)
    loaded = load_attention_records(attention_records, limits=limits)
    job = ScoringJob(
        explanation=text,
        records=[],
        indices=[],
        real=[],
        simulator=resolve_simulator(simulator, judge=True),
        cache=resolve_cache(cache),
        normalization="none",
        sampling={
            "strategy": "top+weak pairs",
            "top_pairs": judged.ATTENTION_TOP_PAIRS,
            "weak_pairs": judged.ATTENTION_LOW_PAIRS,
            "seed": seed,
        },
        seed=seed,
        progress=progress,
        attention_records=loaded,
    )
    return await SCORERS["attention-head"](job)


def score_attention_explanation(explanation: str, attention_records: AttentionInput, **options: Any) -> ScoreResult:
    """Score how well `explanation` describes an attention head, with the attention-head scorer.

    `attention_records`: a path, JSON text, parsed JSON or AttentionRecords (see
    `scoring.records.load_attention_records`). Per record, the judge is asked
    about its 5 strongest token pairs and 5 pairs drawn (seeded) below 0.1 x its
    strongest; the score is the ROC-AUC of its P(yes) on strong against weak pairs.
    Options: simulator (one that judges), seed, cache, progress, limits.
    """
    return run_sync(ascore_attention_explanation(explanation, attention_records, **options))


def explanation_examples(records: RecordsInput, top_k: int, limits: Limits | None = None) -> list[ExplanationExample]:
    """The `top_k` records with the strongest activation, on the global 0..10 scale, strongest first.

    Records where nothing fires are left out; raises ScoringInputError when none is left.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ScoringInputError(f"top_k must be a positive whole number, got {top_k!r}")
    prepared = prepare_records(records, limits=limits, sampling="top", n_sequences=top_k)
    chosen = [
        (record, real)
        for record, real in zip(prepared.chosen, prepared.real, strict=True)
        if max(real, default=0.0) > 0
    ]
    if not chosen:
        raise ScoringInputError(
            "no token activates in these records (every activation is zero or negative), so there is "
            "nothing to explain; give records where the neuron fires"
        )
    return [ExplanationExample(tuple(record.tokens), real) for record, real in chosen]


async def agenerate_explanations(
    records: RecordsInput,
    *,
    simulator: str | Simulator | None = None,
    n: int = 3,
    top_k: int = 10,
    seed: int = 0,
    cache: CacheOption = True,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> list[GeneratedExplanation]:
    """Generate candidate explanations (async). See `generate_explanations`."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_GENERATED:
        raise ScoringInputError(f"n must be a whole number from 1 to {MAX_GENERATED}, got {n!r}")
    resolved = resolve_simulator(simulator, judge=True)
    if not isinstance(resolved, Explainer):
        raise ScoringInputError(
            f"the {resolved.name} simulator cannot write explanations; use one that can: "
            "local, openai:<model>, openai-compatible:<model>@<url> (or fake, in tests)"
        )
    examples = explanation_examples(records, top_k, limits)
    return await run_explanations(
        resolved,
        examples,
        n,
        seed=seed,
        cache=resolve_cache(cache),
        progress=progress,
        simulator_id=simulator_id(resolved, writing=True),
    )


def generate_explanations(records: RecordsInput, **options: Any) -> list[GeneratedExplanation]:
    """Write `n` candidate explanations from the `top_k` most strongly activating records.

    The simulator must have the explain capability (``local``, ``openai:...``,
    ``openai-compatible:...``, ``fake``). Candidate 0 is the model's first
    choice, later ones are sampled with `seed`; one entry per attempt, in order,
    each with its text or, when it failed, ``text=None`` and the reason in
    ``error``. Duplicates are kept (callers merge them). Candidates are cached
    like simulations. Raises ScoringInputError for bad input or a simulator
    that cannot explain.
    Options (those of `agenerate_explanations`): simulator, n (default 3), top_k (default 10), seed,
    cache, progress, limits.
    """
    return run_sync(agenerate_explanations(records, **options))


async def arank_with_scorers(
    explanations: Sequence[str],
    records: RecordsInput,
    scorers: Sequence[str],
    *,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, list[ScoreResult]]:
    """Rank the same explanations with each scorer in turn (async); see `rank_with_scorers`."""
    names = list(dict.fromkeys(scorers))
    if not names:
        raise ScoringInputError(f"choose at least one scorer: {', '.join(SCORERS)}")
    for name in names:
        if name not in SCORERS:
            raise ScoringInputError(f"unknown scorer {name!r}; choose one of: {', '.join(SCORERS)}")
        refuse_attention_scorer(name)
    options_by_scorer = split_scorer_options(names, options.pop("scorer_options", None))
    limits = options.pop("limits", None)
    prepared = prepare_records(records, limits=limits, **selection_options(options))
    ranked: dict[str, list[ScoreResult]] = {}
    with run_cache(options.pop("cache", True), len(names)) as cache:
        for position, name in enumerate(names):
            report = None
            if progress is not None:

                def report(done: int, total: int, message: str, position: int = position, name: str = name) -> None:
                    assert progress is not None
                    progress(position * total + done, len(names) * total, f"scorer {name}: {message}")

            ranked[name] = await arank_explanations(
                explanations,
                prepared,
                scorer=name,
                cache=cache,
                progress=report,
                scorer_options=options_by_scorer[name],
                limits=limits,
                **options,
            )
    return ranked


def split_scorer_options(
    names: Sequence[str], scorer_options: dict[str, Any] | None
) -> dict[str, dict[str, Any] | None]:
    """Per scorer, the options of `scorer_options` it declares (None when it takes none of them).

    Raises ScoringInputError for options that none of `names` accepts.
    """
    if scorer_options is None:
        return {name: None for name in names}
    if not isinstance(scorer_options, dict):
        raise ScoringInputError(f"scorer_options must be a dict, got {type(scorer_options).__name__}")
    unused = sorted(set(scorer_options) - {option for name in names for option in SCORER_OPTIONS.get(name, ())})
    if unused:
        raise ScoringInputError(
            f"no chosen scorer ({', '.join(names)}) has the option {', '.join(unused)}; "
            + "; ".join(f"{name}: {', '.join(options)}" for name, options in SCORER_OPTIONS.items() if options)
        )
    split: dict[str, dict[str, Any] | None] = {}
    for name in names:
        own = {key: value for key, value in scorer_options.items() if key in SCORER_OPTIONS.get(name, ())}
        split[name] = own or None
    return split


def rank_with_scorers(
    explanations: Sequence[str], records: RecordsInput, scorers: Sequence[str], **options: Any
) -> dict[str, list[ScoreResult]]:
    """Rank the same explanations with several scorers: {scorer: results, best first}, in the order given.

    The records are validated, sampled and normalised once (`prepare_records`) for every scorer and explanation.
    Scorers run one after the other, so the later ones read the simulations the
    first one cached (with ``cache=False`` a temporary cache lives for this call
    only); judge scorers (``detection-judge``, ``fuzzing-judge``,
    ``binary-condition``) ask the simulator their own questions, cached the same
    way. ``attention-head`` is refused (it reads attention records). Options as
    for `rank_explanations`, except that ``scorer_options`` is shared: each
    scorer gets the options it declares (``window`` goes to binary-condition
    only), and one that no chosen scorer takes is an error.
    """
    return run_sync(arank_with_scorers(explanations, records, scorers, **options))


def sort_results(results: list[ScoreResult]) -> list[ScoreResult]:
    return sorted(results, key=lambda r: (math.isnan(r.score), -r.score if not math.isnan(r.score) else 0.0))


def run_sync(coroutine: Awaitable[T]) -> T:
    """Run a coroutine from sync code, also when an event loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()  # type: ignore[arg-type]
