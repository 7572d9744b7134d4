"""Tables for display: ranking, per-sequence correlation, scorer rankings, benchmarks."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from scoring.metrics import best_first_ranks
from scoring.results import (
    GeneratedExplanation,
    ScoreResult,
    explanation_source,
    ranking_frame,
)
from scoring.viz.tokens import OUTCOME_MARKS, sequence_label, sequence_outcome


def best_index(results: Sequence[ScoreResult]) -> int | None:
    """Position of the highest finite score, or None when no score is finite."""
    finite = [(result.score, pos) for pos, result in enumerate(results) if math.isfinite(result.score)]
    if not finite:
        return None
    return max(finite, key=lambda pair: (pair[0], -pair[1]))[1]


_BEST_ROW_STYLE = "background-color: rgba(40,167,69,0.25); font-weight: 600"


_RANKING_COLUMNS = (
    "rank",
    "explanation",
    "source",
    "score",
    "interval",
    "chance_percentile",
    "over_chance_p95",
    "r_squared",
    "roc_auc",
    "spearman",
    "mean_seq_corr",
    "prompt_tokens",
    "cost_usd",
    "cached",
    "seconds",
    "error",
)


def format_number(value: Any, digits: int = 3) -> str:
    """A float for display: fixed digits, 'n/a' for NaN/None (undefined is never shown as 0)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 sequence', '2 sequences', '4,150 tokens': a count with its noun in the right number."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def numbers_as_text(frame: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """A copy of `frame` with those of `columns` it has written by `format_number`."""
    shown = frame.copy()
    for name in columns:
        if name in shown.columns:
            shown[name] = [format_number(value, digits) for value in frame[name]]
    return shown


def tint_rows(shown: pd.DataFrame, row_style: Callable[[pd.Series], str]) -> Any:
    """A Styler of `shown` with every cell of a row given `row_style(row)` (a CSS declaration, or "")."""
    return shown.style.apply(lambda row: [row_style(row)] * len(row), axis=1)


def ranking_table(results: Sequence[ScoreResult], generated: Collection[str] = ()) -> Any:
    """The ranking for display: numbers as text ('n/a' when undefined), the best row tinted green.

    The ``source`` column is shown when some explanation was generated, ``error`` when one failed, the
    chance-level columns (``chance_percentile``: share of unrelated explanations beaten;
    ``over_chance_p95``: margin over their 95th percentile) when the results carry a null
    (`scoring.null_scores`).
    Returns a pandas Styler (st.dataframe shows its colours).
    """
    frame = ranking_frame(results, generated)
    hidden = set()
    if not any(frame["source"] == "generated"):
        hidden.add("source")
    if not any("null" in result.metrics for result in results):
        hidden |= {"chance_percentile", "over_chance_p95"}
    if not any(frame["error"]):
        hidden.add("error")
    columns = [name for name in _RANKING_COLUMNS if name not in hidden]
    shown = frame.loc[:, columns].copy()
    if "chance_percentile" in shown.columns:
        shown["chance_percentile"] = [
            "n/a" if not math.isfinite(value) else f"{value:.0f}%" for value in frame["chance_percentile"]
        ]
        shown["over_chance_p95"] = [
            "n/a" if not math.isfinite(value) else f"{value:+.3f}" for value in frame["over_chance_p95"]
        ]
    for name in ("score", "r_squared", "roc_auc", "spearman", "mean_seq_corr"):
        shown[name] = [format_number(value) for value in frame[name]]
    shown["cost_usd"] = [
        "n/a" if not math.isfinite(value) else f"${value:.5f}" for value in frame["cost_usd"].astype(float)
    ]
    shown["seconds"] = [format_number(value, 2) for value in frame["seconds"]]
    shown["cached"] = ["yes" if value else "no" for value in frame["cached"]]
    best = best_index(results)
    return tint_rows(shown, lambda row: _BEST_ROW_STYLE if row.name == best else "")


def strongest_sequences(results: Sequence[ScoreResult]) -> list[int]:
    """The indexes of every scored sequence, the highest real activation first (ties in index order), as the
    token view shows them."""
    strongest: dict[int, float] = {}
    for result in results:
        for sequence in result.sequences:
            strongest.setdefault(sequence.index, max(sequence.real, default=0.0))
    return sorted(strongest, key=lambda index: (-strongest[index], index))


def per_sequence_frame(results: Sequence[ScoreResult], rows: Sequence[int] | None = None) -> pd.DataFrame:
    """Per-sequence correlation: rows are sequences (those of `rows`, in that order; by default every one in
    index order), columns explanations (NaN where undefined)."""
    labels: dict[int, str] = {}
    data: dict[str, dict[int, float]] = {}
    for result in results:
        column = data.setdefault(_unique_column(result.explanation, data), {})
        for sequence in result.sequences:
            labels.setdefault(sequence.index, sequence_label(sequence.tokens, sequence.index))
            column[sequence.index] = float(sequence.correlation)
    order = sorted(labels) if rows is None else [index for index in rows if index in labels]
    frame = pd.DataFrame(data, index=order, dtype=float)
    frame.index = [labels[index] for index in frame.index]
    frame.index.name = "sequence"
    return frame


def _unique_column(name: str, existing: Mapping[str, Any]) -> str:
    candidate, number = name, 2
    while candidate in existing:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def outcome_grid(results: Sequence[ScoreResult], rows: Sequence[int]) -> list[list[tuple[str, str]]]:
    """`sequence_outcome` per (row = sequence index in `rows`, column = result); ("failed", ...) where unscored.
    Sequences not in `rows` are left out."""
    positions = {index: row for row, index in enumerate(rows)}
    grid = [[("failed", "not scored with this explanation")] * len(results) for _ in rows]
    for column, result in enumerate(results):
        for sequence in result.sequences:
            if sequence.index in positions:
                grid[positions[sequence.index]][column] = sequence_outcome(sequence)
    return grid


def per_sequence_table(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """`per_sequence_frame` for display: r with 3 digits, or why r is undefined (✗ missed, –, error)."""
    frame = per_sequence_frame(results)
    rows = sorted({sequence.index for result in results for sequence in result.sequences})
    grid = outcome_grid(results, rows)
    shown = frame.astype(object)
    for row in range(frame.shape[0]):
        for column in range(frame.shape[1]):
            kind, _ = grid[row][column]
            value = frame.iat[row, column]
            shown.iat[row, column] = format_number(value) if kind == "scored" else OUTCOME_MARKS[kind]
    return shown


def bench_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per puzzle of a `scoring.bench.run_bench` report: true score vs the best false one."""
    rows = []
    for key, entry in dict(report.get("puzzles", {})).items():
        false_scores = {
            text: (math.nan if score is None else float(score))
            for text, score in dict(entry.get("false_scores", {})).items()
        }
        finite = {text: score for text, score in false_scores.items() if math.isfinite(score)}
        best_false = max(finite, key=lambda text: finite[text]) if finite else next(iter(false_scores), "")
        errors = dict(entry.get("errors", {}))
        true_score = entry.get("true_score")
        true_value = math.nan if true_score is None else float(true_score)
        best_value = false_scores.get(best_false, math.nan)
        rows.append(
            {
                "puzzle": key,
                "won": bool(entry.get("won")),
                "explanation": entry.get("explanation", ""),
                "true_score": true_value,
                "best_false_explanation": best_false,
                "best_false_score": best_value,
                "margin": true_value - best_value,
                "pairs_won": f"{entry.get('pairs_won', 0)}/{entry.get('pairs', 0)}",
                "errors": "; ".join(f"{text}: {error}" for text, error in errors.items()),
            }
        )
    return pd.DataFrame(rows)


def highlight_bench(frame: pd.DataFrame) -> Any:
    """Styler for `bench_frame`: numbers as text ('n/a' when undefined), lost puzzles tinted red."""
    shown = numbers_as_text(frame, ("true_score", "best_false_score", "margin"))
    return tint_rows(shown, lambda row: "" if row.get("won") else "background-color: rgba(220,53,69,0.18)")


DISAGREEMENT_MARK = "⚠"


def scorer_ranking_frame(
    results_by_scorer: Mapping[str, Sequence[ScoreResult]], generated: Collection[str] = ()
) -> pd.DataFrame:
    """One row per explanation, in the first scorer's order: per scorer its score and rank, and the rank spread.

    Ranks are competition ranks (1 = best, equal scores share a rank); a NaN
    score has no rank (<NA>). ``rank_spread`` is the largest minus the smallest rank an
    explanation gets (<NA> with fewer than two ranks); ``disagreement`` is
    "⚠ <spread>" when the scorers rank it differently, an explanation scored
    by one scorer and undefined under another included ("⚠ n/a").
    """
    names = list(results_by_scorer)
    if not names:
        return pd.DataFrame()
    order = [result.explanation for result in results_by_scorer[names[0]]]
    scores: dict[str, dict[str, float]] = {}
    ranks: dict[str, dict[str, int | None]] = {}
    for name in names:
        by_text = {result.explanation: float(result.score) for result in results_by_scorer[name]}
        scores[name] = by_text
        texts = list(by_text)
        ranks[name] = dict(zip(texts, best_first_ranks([by_text[text] for text in texts]), strict=True))
        order += [text for text in texts if text not in order]
    rows = []
    for text in order:
        row: dict[str, Any] = {"explanation": text, "source": explanation_source(text, generated)}
        found: list[int | None] = []
        for name in names:
            row[name] = scores[name].get(text, math.nan)
            rank = ranks[name].get(text)
            row[f"{name} rank"] = rank
            found.append(rank)
        known = [rank for rank in found if rank is not None]
        spread = max(known) - min(known) if len(known) >= 2 else None
        row["rank_spread"] = spread
        if known and len(known) < len(found):
            row["disagreement"] = f"{DISAGREEMENT_MARK} n/a"
        elif spread:
            row["disagreement"] = f"{DISAGREEMENT_MARK} {spread}"
        else:
            row["disagreement"] = ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in [f"{name} rank" for name in names] + ["rank_spread"]:
        frame[column] = pd.array([None if pd.isna(value) else int(value) for value in frame[column]], dtype="Int64")
    return frame


_DISAGREEMENT_STYLE = "background-color: rgba(255,193,7,0.25)"


def scorer_ranking_table(
    results_by_scorer: Mapping[str, Sequence[ScoreResult]], generated: Collection[str] = ()
) -> Any:
    """`scorer_ranking_frame` for display: scores as text, ranks as '#n', disagreeing rows tinted amber."""
    frame = scorer_ranking_frame(results_by_scorer, generated)
    if frame.empty:
        return frame.style
    shown = frame.drop(columns=["rank_spread"])
    if not any(shown["source"] == "generated"):
        shown = shown.drop(columns=["source"])
    for name in results_by_scorer:
        shown[name] = [format_number(value) for value in frame[name]]
        shown[f"{name} rank"] = [
            "n/a" if rank is None or pd.isna(rank) else f"#{int(rank)}" for rank in frame[f"{name} rank"]
        ]
    return tint_rows(shown, lambda row: _DISAGREEMENT_STYLE if row.get("disagreement") else "")


def metrics_frame(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """Every number a scorer reported, one row per explanation (lists and nested entries left out)."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"explanation": result.explanation, "score": result.score}
        for name, value in result.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name] = value
        row["error"] = result.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


COUNT_METRICS = frozenset({"positives", "negatives", "questions"})


"""Metrics that count things (besides every ``n_...``): shown as whole numbers."""


def metrics_table(results: Sequence[ScoreResult]) -> pd.DataFrame:
    """`metrics_frame` for display: counts as whole numbers, other numbers with 3 digits, 'n/a' when undefined.

    A count stays a count when a missing value turned its column into floats.
    """
    frame = metrics_frame(results)
    shown = frame.copy()
    for name in frame.columns:
        if pd.api.types.is_integer_dtype(frame[name]) or (
            (str(name).startswith("n_") or name in COUNT_METRICS) and pd.api.types.is_numeric_dtype(frame[name])
        ):
            shown[name] = [format_number(value, 0) for value in frame[name]]
        elif pd.api.types.is_numeric_dtype(frame[name]):
            shown[name] = [format_number(value) for value in frame[name]]
    return shown


def generated_frame(generated: Sequence[GeneratedExplanation]) -> pd.DataFrame:
    """One row per generation attempt: the text or the reason it failed, whether cached, tokens and cost."""
    rows = [
        {
            "attempt": candidate.attempt + 1,
            "explanation": candidate.text if candidate.text is not None else "",
            "error": candidate.error or "",
            "cached": "yes" if candidate.cached else "no",
            "prompt_tokens": candidate.usage.prompt_tokens,
            "cost_usd": "n/a" if candidate.usage.cost_usd is None else f"${candidate.usage.cost_usd:.5f}",
        }
        for candidate in generated
    ]
    return pd.DataFrame(rows, columns=["attempt", "explanation", "error", "cached", "prompt_tokens", "cost_usd"])


def bench_scorers_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per scorer of a `scoring.bench.run_bench` report (one row for a single-scorer report)."""
    scorers = dict(report.get("scorers") or {report.get("scorer", ""): report})
    rows = [
        {
            "scorer": name,
            "accuracy": _number(summary.get("accuracy")),
            "pairwise_accuracy": _number(summary.get("pairwise_accuracy")),
            "seconds_per_score": _number(summary.get("seconds_per_score")),
            "prompt_tokens_per_score": _number(summary.get("prompt_tokens_per_score")),
            "cost_usd": _number(summary.get("cost_usd")),
            "puzzles_won": sum(bool(entry.get("won")) for entry in dict(summary.get("puzzles", {})).values()),
            "n_puzzles": summary.get("n_puzzles", 0),
        }
        for name, summary in scorers.items()
    ]
    return pd.DataFrame(rows)


def bench_agreement_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per pair of scorers: mean Kendall tau-b and the share of puzzles with the same top explanation."""
    pairs = list(dict(report.get("agreement") or {}).get("pairs", []))
    rows = [
        {
            "scorers": " ~ ".join(pair.get("scorers", [])),
            "kendall_tau": _number(pair.get("kendall_tau")),
            "tau_puzzles": pair.get("tau_puzzles", 0),
            "top_agreement": _number(pair.get("top_agreement")),
            "top_puzzles": pair.get("top_puzzles", 0),
        }
        for pair in pairs
    ]
    return pd.DataFrame(rows, columns=["scorers", "kendall_tau", "tau_puzzles", "top_agreement", "top_puzzles"])


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
