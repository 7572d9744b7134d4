"""Score many (feature, explanation) pairs from a JSONL file, resumably.

Input: one JSON object per line, for one feature::

    {"id": "gpt2-small/6/2294",
     "activations": [{"tokens": [...], "values": [...]}, ...],
     "explanations": ["words about chapters", "the word 'chapter'"]}

- the feature id is ``id``, ``feature_id`` or ``feature``, else Neuronpedia's
  ``modelId``/``layer``/``index`` joined by ``/``, else ``line:N``;
- the records are ``records`` when present (anything `load_records` accepts: a path,
  a JSON/CSV string, a list of ``{tokens, values}``, an OpenAI neuron record...),
  else the line itself (a Neuronpedia scorer request or feature export, OpenAI neuron
  records);
- the explanations are ``explanations`` (strings, or objects with ``description``,
  ``explanation`` or ``text`` as in Neuronpedia exports) or a single ``explanation``.

Output: one JSON line per (feature, explanation), appended and flushed as soon as it is
scored, with ``status`` ``ok`` (scored; ``score`` may still be null with ``error`` when it
is undefined), ``failed`` (the simulator failed; retried by the next run) or
``input_error`` (the input line or pair is unusable; ``line`` says which). A bad line
never stops the batch.

Rerunning the same command resumes: pairs already in the output with status ``ok`` or
``input_error`` are skipped, and whatever was being scored when the run stopped is
simulated again or, when its simulations reached the cache, read from it. A rerun
with other scoring settings (simulator, sampling, ...) than the output was made with
is refused, so one file never mixes them; a retried ``failed`` pair gets a new line,
and **the last line of a pair is its result**. ``compact`` (``batch --compact``) rewrites
the output at the end of the run with one line per pair, its last, in one rename.

A pair (feature id, explanation) that an earlier line of the same input already holds is
scored once (a warning names the line). The output must be a file in a folder that
exists, and not the input under any name (a path, a symbolic or a hard link).

With a scorer that reports a p-value (``binary-condition``), the p-values of the
explanations of one input line (one feature) are corrected for their number, Holm by
default (``correction``: ``holm``, ``bh`` for Benjamini-Hochberg, or ``none``), into the
metrics `rank_explanations` names: ``p_value_holm`` or ``p_value_bh``, again as
``p_value_corrected`` with ``p_value_correction``, and ``comparisons``. The lines of such a
feature are written together once all its explanations are scored (an interrupted one is
read back from the cache on the rerun). When a rerun scores some of a feature's pairs
(retried failures), their correction counts the p-values already in the output, and the
earlier lines of the feature whose corrected values change are written again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from scoring import judged
from scoring.api import (
    P_VALUE_CORRECTIONS,
    ascore_explanation,
    corrected_p_values,
    default_simulator_spec,
    refuse_attention_scorer,
    require_judge,
    resolve_cache,
    resolve_simulator,
)
from scoring.batch_input import Feature, count_pairs, input_lines, line_digest, parse_line
from scoring.batch_output import (
    STATUS_OK,
    BatchWriter,
    Finished,
    compact_output,
    line_at,
    lock_output,
    read_finished,
)
from scoring.errors import ScoringInputError
from scoring.progress import ProgressBar
from scoring.results import ScoreResult, jsonable
from scoring.scorers import JUDGE_SCORERS, P_VALUE_SCORERS, SCORERS, check_scorer_options, simulator_id
from scoring.simulators import Simulator
from scoring.simulators.base import Usage

logger = logging.getLogger(__name__)

SCORING_DEFAULTS: dict[str, Any] = {
    "scorer": "simulation",
    "sampling": "all",
    "n_sequences": None,
    "seed": 0,
    "normalization": "global",
    "scorer_options": None,
}
"""Options passed on to `ascore_explanation` and their defaults there; they, with the simulator, define a run."""
SCORING_OPTIONS = tuple(SCORING_DEFAULTS)

BATCH_OPTIONS = ("cache", "progress", "include_sequences", "retry_failed", "limits", "allow_paths", "compact")

CORRECTIONS = (*P_VALUE_CORRECTIONS, "none")
"""Values of ``correction``: how the p-values of one feature's explanations are corrected."""
DEFAULT_CORRECTION = "holm"


@dataclass
class Tally:
    """Counts of what one run did, for the summary and the progress bar."""

    ok: int = 0
    failed: int = 0
    input_errors: int = 0
    skipped: int = 0
    duplicates: int = 0
    """Pairs that an earlier line of this input already holds (same feature id and explanation): scored once."""
    recorrected: int = 0
    """Lines of earlier runs written again because their corrected p-values changed."""
    compacted: int = 0
    """Lines removed by ``compact``: earlier lines of pairs that have a later one."""
    scores: list[float] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class Family:
    """The pairs of one feature that this run scores, held until all are done so their p-values are corrected
    together."""

    feature: Feature
    waiting: int
    """Pairs not scored yet."""
    results: dict[int, ScoreResult] = field(default_factory=dict)
    """Scored pairs by explanation position (a pair that was an input error is not here)."""


@dataclass
class Job:
    """What one run of `run_batch` scores, how, and where it writes."""

    input_path: Path
    output_path: Path
    simulator: Simulator
    run_settings: dict[str, Any]
    """What a result depends on; a rerun with other settings scores again instead of skipping."""
    concurrency: int
    scoring_options: dict[str, Any]
    batch_options: dict[str, Any]
    correction: str | None
    """The p-value correction across each feature's explanations, None for none."""
    allowed_dirs: tuple[Path, ...] = ()
    """Folders a line's ``records`` path may be read from: the input's own folder, and ``allow_paths``."""
    tally: Tally = field(default_factory=Tally)


async def _run(job: Job) -> None:
    cache = resolve_cache(job.batch_options.get("cache", True))
    retry_failed = bool(job.batch_options.get("retry_failed", True))
    limits = job.batch_options.get("limits")
    with job.output_path.open("a", encoding="utf-8") as handle:
        lock_output(handle, job.output_path)
        finished = read_finished(job.output_path, job.run_settings, retry_failed)
        await _write_results(job, handle, cache, limits, finished)
        if job.batch_options.get("compact"):
            job.tally.compacted = compact_output(handle, job.output_path)


async def _write_results(job: Job, handle: TextIO, cache: Any, limits: Any, finished: Finished) -> None:
    tally = job.tally
    total = sum(count_pairs(text) for _, text in input_lines(job.input_path))
    semaphore = asyncio.Semaphore(job.concurrency)
    running: set[asyncio.Task[None]] = set()
    crashes: list[BaseException] = []

    def finish(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            crashes.append(task.exception())  # type: ignore[arg-type]

    # Drawn only on a terminal: a log file gets no bar states.
    drawn = bool(job.batch_options.get("progress", True)) and sys.stderr.isatty()
    bar = ProgressBar("scoring", "score", total=total, enabled=drawn)

    def advance() -> None:
        bar.advance(failed=tally.failed, bad=tally.input_errors, cached=tally.usage.cache_hits)

    def skip() -> None:
        # Work done by an earlier run is not progress of this one: counting it would inflate the rate.
        tally.skipped += 1
        bar.drop()

    scheduled: set[tuple[str, str]] = set()
    """(feature id, explanation) of every pair this run has taken up: a repeated one is scored once."""

    def repeated(feature: Feature, position: int) -> bool:
        pair = (feature.feature_id, feature.explanations[position])
        if pair not in scheduled:
            scheduled.add(pair)
            return False
        logger.warning(
            "input line %d repeats feature %s, explanation %r of an earlier line: scored once",
            feature.line,
            feature.feature_id,
            feature.explanations[position],
        )
        tally.duplicates += 1
        bar.drop()
        return True

    writer = BatchWriter(handle, job.run_settings, bool(job.batch_options.get("include_sequences", False)))

    def record(feature: Feature, position: int, result: ScoreResult) -> None:
        if writer.result(feature, position, result) == STATUS_OK:
            tally.ok += 1
            if math.isfinite(result.score):
                tally.scores.append(result.score)
        else:
            tally.failed += 1

    def record_family(family: Family, correction: str) -> None:
        feature = family.feature
        tested: dict[int, float] = {}
        for position, explanation in enumerate(feature.explanations):
            result = family.results.get(position)
            if result is not None and "p_value" in result.metrics:
                tested[position] = float(result.metrics["p_value"])
            elif result is None and (feature.feature_id, explanation) in finished.p_values:
                tested[position] = finished.p_values[feature.feature_id, explanation][0]
        fields = dict(zip(tested, corrected_p_values(list(tested.values()), (correction,)), strict=True))
        for position in sorted(family.results):
            family.results[position].metrics.update(fields.get(position, {}))
            record(feature, position, family.results[position])
        for position in sorted(set(fields) - set(family.results)):
            # A line of an earlier run, corrected then over other p-values: write it again when that changed.
            _, offset = finished.p_values[feature.feature_id, feature.explanations[position]]
            earlier = line_at(job.output_path, offset)
            metrics = earlier.get("metrics") or {}
            now = jsonable(fields[position])
            if any(metrics.get(name) != value for name, value in now.items()):
                earlier["metrics"] = {**metrics, **now}
                writer.write(earlier)
                tally.recorrected += 1

    async def score_pair(feature: Feature, position: int, family: Family | None) -> None:
        explanation = feature.explanations[position]
        try:
            try:
                result = await ascore_explanation(
                    explanation,
                    feature.records,
                    simulator=job.simulator,
                    cache=cache,
                    limits=limits,
                    **job.scoring_options,
                )
            except ScoringInputError as exc:
                tally.input_errors += 1
                writer.input_error(feature.line, str(exc), "", feature.feature_id, explanation)
            except Exception as exc:
                # Our bug, not the input's: the pair fails with the reason (retried by a rerun), the batch goes on.
                logger.exception("scoring %s / %r failed", feature.feature_id, explanation)
                tally.failed += 1
                writer.failure(feature, position, f"internal error ({type(exc).__name__}: {exc}); see the log")
                if family is not None:
                    family.waiting -= 1
                    if family.waiting == 0 and job.correction is not None:
                        record_family(family, job.correction)
                advance()
                return
            else:
                tally.usage.add(result.usage)
                if family is None:
                    record(feature, position, result)
                else:
                    family.results[position] = result
            if family is not None and job.correction is not None:
                family.waiting -= 1
                if family.waiting == 0:
                    record_family(family, job.correction)
        finally:
            semaphore.release()
        # Not reached when cancelled: an interrupted pair is not done, and the bar does not count it.
        advance()

    try:
        for number, text in input_lines(job.input_path):
            digest = line_digest(text)
            try:
                feature = parse_line(text, number, limits, job.allowed_dirs)
            except Exception as exc:
                if ("line", str(number), digest) in finished.keys:
                    skip()
                    continue
                if not isinstance(exc, ScoringInputError):
                    logger.exception("input line %d could not be read", number)
                message = str(exc) if isinstance(exc, ScoringInputError) else f"{type(exc).__name__}: {exc}"
                tally.input_errors += 1
                writer.input_error(number, message, digest)
                advance()
                continue
            to_score = set()
            for position, explanation in enumerate(feature.explanations):
                if ("pair", feature.feature_id, explanation) in finished.keys:
                    skip()
                elif not repeated(feature, position):
                    to_score.add(position)
            family = Family(feature, len(to_score)) if job.correction is not None and to_score else None
            for position in range(len(feature.explanations)):
                if position not in to_score:
                    continue
                # At most `concurrency` pairs in flight; reading waits here, so memory stays bounded.
                await semaphore.acquire()
                if crashes:
                    semaphore.release()
                    raise crashes[0]
                task = asyncio.create_task(score_pair(feature, position, family))
                running.add(task)
                task.add_done_callback(finish)
        if running:
            await asyncio.gather(*running)
        if crashes:
            raise crashes[0]
    finally:
        # Interrupted or crashed: stop what is in flight (every finished line is already on disk).
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        bar.close()


def run_batch(
    input_path: str | Path,
    output_path: str | Path,
    simulator: str | Simulator | None = None,
    concurrency: int = 4,
    correction: str = DEFAULT_CORRECTION,
    **options: Any,
) -> dict[str, Any]:
    """Score every (feature, explanation) pair of a JSONL file into an output JSONL.

    ``correction``: how a scorer's p-values (binary-condition) are corrected across the
    explanations of each input line: ``holm`` (default), ``bh`` or ``none``.
    ``options``: the scoring settings of `score_explanation` (``scorer``, ``scorer_options``
    such as ``{"window": 16}``, ``sampling``, ``n_sequences``, ``seed``, ``normalization``),
    ``cache`` (as there; default True),
    ``limits`` (records.Limits), ``progress`` (tqdm bar on stderr when it is a terminal, default True),
    ``include_sequences`` (per-sequence results in each line, default False),
    ``retry_failed`` (score pairs whose simulation failed again, default True),
    ``compact`` (at the end, rewrite the output with one line per pair, its last; default False) and
    ``allow_paths`` (folders besides the input file's own from which a line's ``records`` path may be
    read; a path anywhere else is that line's input error, and the file is not opened).
    Returns a summary: counts, time, throughput, usage and mean score of this run.
    Interrupted (Ctrl-C), it keeps every line written; run it again to resume.
    """
    unknown = set(options) - set(SCORING_OPTIONS) - set(BATCH_OPTIONS)
    if unknown:
        raise ScoringInputError(f"unknown batch option(s): {', '.join(sorted(unknown))}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ScoringInputError(f"concurrency must be a positive integer, got {concurrency!r}")
    if correction not in CORRECTIONS:
        raise ScoringInputError(f"unknown correction {correction!r}; choose one of: {', '.join(CORRECTIONS)}")
    # Settings every pair shares are checked here, or each pair would be written as an input error.
    scorer = options.get("scorer") or SCORING_DEFAULTS["scorer"]
    if scorer not in SCORERS:
        raise ScoringInputError(f"unknown scorer {scorer!r}; choose one of: {', '.join(SCORERS)}")
    refuse_attention_scorer(scorer)
    options["scorer_options"] = check_scorer_options(scorer, options.get("scorer_options")) or None
    if options["scorer_options"] is not None:
        judged.window_option(options["scorer_options"])
    source = Path(input_path)
    if not source.is_file():
        raise ScoringInputError(f"input file not found: {source}")
    destination = Path(output_path)
    check_output_path(source, destination)
    if simulator is None:
        simulator = default_simulator_spec(judge=scorer in JUDGE_SCORERS)
    instance = resolve_simulator(simulator)
    require_judge(instance, [scorer])
    # Defaults are filled in so that a run given them explicitly is the same run as one that left them out.
    scoring_options = {
        name: options[name] if options.get(name) is not None else default
        for name, default in SCORING_DEFAULTS.items()
        if options.get(name) is not None or default is not None
    }
    batch_options = {name: options[name] for name in BATCH_OPTIONS if name in options}
    # What a result depends on (the cache key's simulator identity plus the scoring options), so a
    # rerun may change ?concurrency= or --concurrency but not what is being measured.
    identity = {
        "simulator": simulator_id(instance),
        "prompt_version": instance.prompt_version,
        "simulator_options": instance.options(),
        **scoring_options,
    }
    corrects = scorer in P_VALUE_SCORERS
    if corrects:
        identity["correction"] = correction
    run_settings = json.loads(json.dumps(identity, sort_keys=True, default=str))
    job = Job(
        source,
        destination,
        instance,
        run_settings,
        concurrency,
        scoring_options,
        batch_options,
        correction if corrects and correction != "none" else None,
        allowed_dirs=(source.resolve().parent, *allowed_folders(options.get("allow_paths"))),
    )
    tally = job.tally
    started = time.perf_counter()
    try:
        asyncio.run(_run(job))
    except KeyboardInterrupt:
        logger.warning(
            "interrupted after %d new results; every finished line is in %s, run the same command to resume",
            tally.ok + tally.failed + tally.input_errors,
            destination,
        )
        raise
    seconds = time.perf_counter() - started
    written = tally.ok + tally.failed + tally.input_errors
    return {
        "input": str(source),
        "output": str(destination),
        "settings": run_settings,
        "concurrency": concurrency,
        "pairs": written + tally.skipped,
        "written": written,
        "ok": tally.ok,
        "failed": tally.failed,
        "input_errors": tally.input_errors,
        "skipped": tally.skipped,
        "duplicates": tally.duplicates,
        "recorrected": tally.recorrected,
        "compacted": tally.compacted,
        "seconds": round(seconds, 3),
        "scores_per_second": round(written / seconds, 3) if seconds > 0 else None,
        "mean_score": sum(tally.scores) / len(tally.scores) if tally.scores else None,
        "usage": tally.usage.to_dict(),
    }


def check_output_path(source: Path, destination: Path) -> None:
    """ScoringInputError unless `destination` can be the output of a batch reading `source`.

    It must be a file (new or not) in a folder that exists, and not the input under any name: not the same
    path, nor a link to it, nor a hard link (the same device and inode), or the batch would read its own
    output without end.
    """
    if destination.is_dir():
        raise ScoringInputError(f"the output {destination} is a folder; name a file, such as {destination}/out.jsonl")
    if not destination.parent.is_dir():
        raise ScoringInputError(
            f"the output's folder {destination.parent} does not exist; create it first, or name a file in a "
            "folder that exists"
        )
    if destination.resolve() == source.resolve() or (destination.exists() and destination.samefile(source)):
        raise ScoringInputError("the output file must differ from the input file (it is the input under another name)")


def allowed_folders(folders: Any) -> list[Path]:
    """The ``allow_paths`` option as existing folders; ScoringInputError names one that is not."""
    if folders is None:
        return []
    if isinstance(folders, (str, Path)):
        folders = [folders]
    checked = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ScoringInputError(f"--allow-paths {folder}: not a folder; name folders records may be read from")
        checked.append(path.resolve())
    return checked


def summary_line(summary: dict[str, Any]) -> str:
    """One line for people: what this run did, and what to do about failures."""
    line = (
        f"batch: {summary['ok']} ok, {summary['failed']} failed, {summary['input_errors']} bad input, "
        f"{summary['skipped']} done by earlier runs"
        + (f", {summary['duplicates']} repeated pairs scored once" if summary.get("duplicates") else "")
        + (f", {summary['compacted']} superseded lines removed" if summary.get("compacted") else "")
        + f" -> {summary['output']}"
    )
    if summary["failed"]:
        line += "; run the same command again to retry the failed pairs"
    return line


def exit_status(summary: dict[str, Any]) -> int:
    """0 when the run leaves nothing to retry; 1 when a pair failed, or when nothing written was scored."""
    if summary["failed"] or (summary["written"] and not summary["ok"]):
        return 1
    return 0
