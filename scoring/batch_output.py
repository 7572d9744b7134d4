"""Batch output: the JSONL results file, what it already holds (for resuming), and one writer at a time."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from scoring.batch_input import Feature
from scoring.errors import ScoringInputError
from scoring.records import lone_surrogate
from scoring.results import ScoreResult, jsonable

# The batch logger, which the CLI shows at WARNING: the torn-line repair must be seen.
logger = logging.getLogger("scoring.batch")

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INPUT_ERROR = "input_error"


@dataclass
class Finished:
    """What an existing output already holds."""

    keys: set[tuple[str, ...]] = field(default_factory=set)
    """Work not to do again: ``("pair", feature_id, explanation)`` and, for unusable input lines,
    ``("line", number, digest)``."""
    p_values: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    """Per (feature_id, explanation) whose last line is ``ok`` with a ``p_value`` in its metrics:
    that p-value (NaN for null) and the byte offset of the line."""


def line_at(path: Path, offset: int) -> dict[str, Any]:
    """The JSON line of `path` that starts at byte `offset`."""
    with path.open("rb") as handle:
        handle.seek(offset)
        entry: dict[str, Any] = json.loads(handle.readline().decode("utf-8", errors="replace"))
    return entry


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
        status = STATUS_FAILED if result.failed else STATUS_OK
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


def output_key(entry: dict[str, Any], number: int) -> tuple[str, ...]:
    """What a line of the output is the result of: a pair (feature id, explanation), else its input line.

    Of several lines with one key, the last is the result (a retried pair, a line written again).
    """
    if entry.get("explanation") is not None:
        return ("pair", str(entry.get("feature_id")), str(entry["explanation"]))
    if entry.get("line") is not None:
        return ("line", str(entry.get("line")), str(entry.get("line_digest")))
    return ("unkeyed", str(number))


def compact_output(handle: TextIO, output_path: Path) -> int:
    """Rewrite the output with one line per pair (its last), in the order the pairs first appear.

    `handle` is the output, open and locked by this run (see `lock_output`). The new file replaces the old one
    in one rename, so a crash leaves one or the other whole. Lines that are not JSON objects are dropped.
    Returns the number of lines removed.
    """
    handle.flush()
    content = output_path.read_bytes()
    latest: dict[tuple[str, ...], bytes] = {}
    count = 0
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        count += 1
        try:
            entry = json.loads(raw.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            latest[output_key(entry, number)] = raw  # a key keeps its first place, with its last line
    temporary = output_path.with_name(f".{output_path.name}.compact")
    with temporary.open("wb") as rewritten:
        rewritten.writelines(raw + b"\n" for raw in latest.values())
        rewritten.flush()
        os.fsync(rewritten.fileno())
    os.replace(temporary, output_path)
    return count - len(latest)


def lock_output(handle: TextIO, output_path: Path) -> None:
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
