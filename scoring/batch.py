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
and the last line of a pair is its result.

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
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
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
    resolve_cache,
    resolve_simulator,
)
from scoring.errors import ScoringInputError
from scoring.records import ActivationRecord, check_unicode, load_records, lone_surrogate
from scoring.results import ScoreResult, jsonable
from scoring.scorers import SCORERS, check_scorer_options, simulator_id
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

BATCH_OPTIONS = ("cache", "progress", "include_sequences", "retry_failed", "limits")

CORRECTIONS = (*P_VALUE_CORRECTIONS, "none")
"""Values of ``correction``: how the p-values of one feature's explanations are corrected."""
DEFAULT_CORRECTION = "holm"

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INPUT_ERROR = "input_error"


@dataclass
class Feature:
    """One parsed input line."""

    line: int
    feature_id: str
    records: list[ActivationRecord]
    explanations: list[str]


@dataclass
class Tally:
    """Counts of what one run did, for the summary and the progress bar."""

    ok: int = 0
    failed: int = 0
    input_errors: int = 0
    skipped: int = 0
    recorrected: int = 0
    """Lines of earlier runs written again because their corrected p-values changed."""
    scores: list[float] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class Finished:
    """What an existing output already holds."""

    keys: set[tuple[str, ...]] = field(default_factory=set)
    """Work not to do again: ``("pair", feature_id, explanation)`` and, for unusable input lines,
    ``("line", number, digest)``."""
    p_values: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    """Per (feature_id, explanation) whose last line is ``ok`` with a ``p_value`` in its metrics:
    that p-value (NaN for null) and the byte offset of the line."""


@dataclass
class Family:
    """The pairs of one feature that this run scores, held until all are done so their p-values are corrected
    together."""

    feature: Feature
    waiting: int
    """Pairs not scored yet."""
    results: dict[int, ScoreResult] = field(default_factory=dict)
    """Scored pairs by explanation position (a pair that was an input error is not here)."""


def feature_id_of(data: dict[str, Any], line: int) -> str:
    for key in ("id", "feature_id", "feature"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    if all(key in data for key in ("modelId", "layer", "index")):
        return f"{data['modelId']}/{data['layer']}/{data['index']}"
    return f"line:{line}"


def explanations_of(data: dict[str, Any]) -> list[str]:
    """The explanation texts of a line, in order, without repeats."""
    raw: Any = data.get("explanations")
    if raw is None and "explanation" in data:
        raw = [data["explanation"]]
    if raw is None:
        raise ScoringInputError('the line has no explanations: add "explanations": ["..."]')
    if isinstance(raw, str | dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ScoringInputError('"explanations" must be a non-empty list of strings')
    texts: list[str] = []
    for position, item in enumerate(raw):
        if isinstance(item, dict):
            texts_in_item = [
                item[key] for key in ("description", "explanation", "text") if isinstance(item.get(key), str)
            ]
            item = texts_in_item[0] if texts_in_item else None
        if not isinstance(item, str) or not item.strip():
            raise ScoringInputError(
                f"explanations[{position}] must be a non-empty string (or an object with a "
                f'"description"), got {item!r}'
            )
        check_unicode(item, f"explanations[{position}]")
        if item not in texts:
            texts.append(item)
    return texts


def parse_line(text: str, line: int, limits: Any = None) -> Feature:
    """One input line to a Feature; raises ScoringInputError saying what to fix."""
    position = lone_surrogate(text)
    if position is not None:
        raise ScoringInputError(
            f"the line is not valid UTF-8 (at character {position + 1}); save the input as UTF-8"
        )
    try:
        data = json.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise ScoringInputError(f"not valid JSON ({exc.msg} at character {exc.pos + 1})") from exc
    if not isinstance(data, dict):
        raise ScoringInputError(f"each line must be a JSON object, got {type(data).__name__}")
    explanations = explanations_of(data)
    source = data.get("records", data)
    records = load_records(source, limits=limits)
    return Feature(line, feature_id_of(data, line), records, explanations)


def count_pairs(text: str) -> int:
    """How many output lines an input line will give (1 when it is unusable)."""
    try:
        data = json.loads(text)
        return len(explanations_of(data)) if isinstance(data, dict) else 1
    except (ValueError, RecursionError):
        return 1


def _line_digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8", errors="surrogateescape")).hexdigest()[:16]


def _line_at(path: Path, offset: int) -> dict[str, Any]:
    """The JSON line of `path` that starts at byte `offset`."""
    with path.open("rb") as handle:
        handle.seek(offset)
        entry: dict[str, Any] = json.loads(handle.readline().decode("utf-8", errors="replace"))
    return entry


def _input_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines; a line that is not UTF-8 comes as its bytes escaped (its parse then fails)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            # surrogateescape keeps every line readable; parse_line turns the escapes into this line's error.
            text = raw.decode("utf-8", errors="surrogateescape")
            if text.strip():
                yield number, text


def read_finished(output: Path, run_settings: dict[str, Any], retry_failed: bool) -> Finished:
    """What an existing output already holds; repairs a torn last line.

    Raises ScoringInputError when the output was made with other settings.
    """
    finished = Finished()
    if not output.exists():
        return finished
    with output.open("rb+") as handle:
        content = handle.read()
        if content and not content.endswith(b"\n"):
            # A run killed mid-write leaves a partial line: drop it, it is scored again.
            keep = content.rfind(b"\n") + 1
            logger.warning("%s ends with an incomplete line; removing it and scoring that pair again", output)
            handle.truncate(keep)
            content = content[:keep]
    offset = 0
    # Split on the newline we write only: a token may hold a character str.splitlines breaks at (U+2028).
    for number, raw in enumerate(content.split(b"\n"), start=1):
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            logger.warning("%s line %d is not JSON; ignoring it", output, number)
            continue
        if not isinstance(entry, dict):
            continue
        earlier = entry.get("settings")
        if isinstance(earlier, dict) and earlier != run_settings:
            raise ScoringInputError(
                f"{output} holds results made with other settings ({json.dumps(earlier, sort_keys=True)}); "
                f"this run uses {json.dumps(run_settings, sort_keys=True)}. Write to another output file, "
                "or delete this one to start over"
            )
        status = entry.get("status")
        pair = (str(entry.get("feature_id")), str(entry.get("explanation")))
        if status == STATUS_INPUT_ERROR and entry.get("line_digest"):
            finished.keys.add(("line", str(entry.get("line")), str(entry["line_digest"])))
        if (
            status == STATUS_OK
            or (status == STATUS_FAILED and not retry_failed)
            or (status == STATUS_INPUT_ERROR and entry.get("explanation") is not None)
        ):
            finished.keys.add(("pair", *pair))
        metrics = entry.get("metrics")
        if status == STATUS_OK and isinstance(metrics, dict) and "p_value" in metrics:
            p_value = metrics["p_value"]
            finished.p_values[pair] = (float(p_value) if isinstance(p_value, int | float) else math.nan, start)
    return finished


class BatchWriter:
    """Appends one JSON line per result and flushes it, so a crash loses nothing written."""

    def __init__(self, handle: TextIO, run_settings: dict[str, Any], include_sequences: bool) -> None:
        self.handle = handle
        self.run_settings = run_settings
        self.include_sequences = include_sequences

    def write(self, entry: dict[str, Any]) -> None:
        entry["settings"] = self.run_settings
        text = json.dumps(jsonable(entry), ensure_ascii=False, allow_nan=False)
        if lone_surrogate(text) is not None:
            # A lone surrogate (from a bad input line) cannot be written as UTF-8; JSON escapes can hold it.
            text = json.dumps(jsonable(entry), ensure_ascii=True, allow_nan=False)
        self.handle.write(text + "\n")
        self.handle.flush()

    def result(self, feature: Feature, position: int, result: ScoreResult) -> str:
        failed = any(sequence.error is not None for sequence in result.sequences)
        status = STATUS_FAILED if failed else STATUS_OK
        entry: dict[str, Any] = {
            "feature_id": feature.feature_id,
            "explanation": feature.explanations[position],
            "line": feature.line,
            "explanation_index": position,
            "status": status,
        }
        details = result.to_dict(include_sequences=self.include_sequences)
        details.pop("explanation", None)
        entry.update(details)
        entry["n_sequences"] = len(result.sequences)
        self.write(entry)
        return status

    def failure(self, feature: Feature, position: int, message: str) -> None:
        self.write(
            {
                "feature_id": feature.feature_id,
                "explanation": feature.explanations[position],
                "line": feature.line,
                "explanation_index": position,
                "status": STATUS_FAILED,
                "score": None,
                "error": message,
            }
        )

    def input_error(
        self,
        line: int,
        message: str,
        digest: str,
        feature_id: str | None = None,
        explanation: str | None = None,
    ) -> None:
        self.write(
            {
                "feature_id": feature_id,
                "explanation": explanation,
                "line": line,
                "status": STATUS_INPUT_ERROR,
                "score": None,
                "error": f"input line {line}: {message}",
                "line_digest": digest,
            }
        )


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="score", desc="scoring", disable=not enabled, file=sys.stderr, dynamic_ncols=True
    )


async def _run(
    input_path: Path,
    output_path: Path,
    simulator: Simulator,
    run_settings: dict[str, Any],
    concurrency: int,
    scoring_options: dict[str, Any],
    batch_options: dict[str, Any],
    correction: str | None,
    tally: Tally,
) -> None:
    """`correction`: the p-value correction across each feature's explanations, None for none."""
    cache = resolve_cache(batch_options.get("cache", True))
    retry_failed = bool(batch_options.get("retry_failed", True))
    limits = batch_options.get("limits")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("a", encoding="utf-8") as handle:
        _lock_output(handle, output_path)
        finished = read_finished(output_path, run_settings, retry_failed)
        await _write_results(
            input_path, output_path, handle, simulator, run_settings, concurrency, scoring_options,
            batch_options, correction, tally, cache, limits, finished,
        )


def _lock_output(handle: TextIO, output_path: Path) -> None:
    """Hold an exclusive lock on the output for this run, or refuse: two runs would both do all the work."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run at a time is then up to the user
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ScoringInputError(
            f"another batch run is writing {output_path}; wait for it to finish, or write to another output file"
        ) from None


async def _write_results(
    input_path: Path,
    output_path: Path,
    handle: TextIO,
    simulator: Simulator,
    run_settings: dict[str, Any],
    concurrency: int,
    scoring_options: dict[str, Any],
    batch_options: dict[str, Any],
    correction: str | None,
    tally: Tally,
    cache: Any,
    limits: Any,
    finished: Finished,
) -> None:
    total = sum(count_pairs(text) for _, text in _input_lines(input_path))
    semaphore = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    crashes: list[BaseException] = []

    def finish(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            crashes.append(task.exception())  # type: ignore[arg-type]

    bar = _progress_bar(total, bool(batch_options.get("progress", True)))

    def advance() -> None:
        bar.update(1)
        bar.set_postfix(
            failed=tally.failed, bad=tally.input_errors, cached=tally.usage.cache_hits, refresh=False
        )

    def skip() -> None:
        # Work done by an earlier run is not progress of this one: counting it would inflate the rate.
        tally.skipped += 1
        bar.total -= 1
        bar.refresh()

    writer = BatchWriter(handle, run_settings, bool(batch_options.get("include_sequences", False)))

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
            earlier = _line_at(output_path, offset)
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
                    simulator=simulator,
                    cache=cache,
                    limits=limits,
                    **scoring_options,
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
                    if family.waiting == 0 and correction is not None:
                        record_family(family, correction)
                advance()
                return
            else:
                tally.usage.add(result.usage)
                if family is None:
                    record(feature, position, result)
                else:
                    family.results[position] = result
            if family is not None and correction is not None:
                family.waiting -= 1
                if family.waiting == 0:
                    record_family(family, correction)
        finally:
            semaphore.release()
        # Not reached when cancelled: an interrupted pair is not done, and the bar does not count it.
        advance()

    try:
        for number, text in _input_lines(input_path):
            digest = _line_digest(text)
            try:
                feature = parse_line(text, number, limits)
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
            to_score = {
                position
                for position, explanation in enumerate(feature.explanations)
                if ("pair", feature.feature_id, explanation) not in finished.keys
            }
            family = Family(feature, len(to_score)) if correction is not None and to_score else None
            for position in range(len(feature.explanations)):
                if position not in to_score:
                    skip()
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
    ``limits`` (records.Limits), ``progress`` (tqdm bar on stderr, default True),
    ``include_sequences`` (per-sequence results in each line, default False) and
    ``retry_failed`` (score pairs whose simulation failed again, default True).
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
    if destination.resolve() == source.resolve():
        raise ScoringInputError("the output file must differ from the input file")
    if simulator is None:
        simulator = default_simulator_spec()
    instance = resolve_simulator(simulator)
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
    corrects = scorer in judged.P_VALUE_SCORERS
    if corrects:
        identity["correction"] = correction
    run_settings = json.loads(json.dumps(identity, sort_keys=True, default=str))
    tally = Tally()
    started = time.perf_counter()
    try:
        asyncio.run(
            _run(
                source,
                destination,
                instance,
                run_settings,
                concurrency,
                scoring_options,
                batch_options,
                correction if corrects and correction != "none" else None,
                tally,
            )
        )
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
        "recorrected": tally.recorrected,
        "seconds": round(seconds, 3),
        "scores_per_second": round(written / seconds, 3) if seconds > 0 else None,
        "mean_score": sum(tally.scores) / len(tally.scores) if tally.scores else None,
        "usage": tally.usage.to_dict(),
    }


def summary_line(summary: dict[str, Any]) -> str:
    """One line for people: what this run did, and what to do about failures."""
    line = (
        f"batch: {summary['ok']} ok, {summary['failed']} failed, {summary['input_errors']} bad input, "
        f"{summary['skipped']} done by earlier runs -> {summary['output']}"
    )
    if summary["failed"]:
        line += "; run the same command again to retry the failed pairs"
    return line


def exit_status(summary: dict[str, Any]) -> int:
    """0 when the run leaves nothing to retry; 1 when a pair failed, or when nothing written was scored."""
    if summary["failed"] or (summary["written"] and not summary["ok"]):
        return 1
    return 0
