"""Benchmark a judge: does it rank true explanations above false ones when it answers yes/no questions?

The embedded judge answers the questions of the attention-head scorer and of the judged scorers
(detection-judge, fuzzing-judge, binary-condition). This script measures it on two kinds of dev data:

- attention heads with known patterns (`benchmarks/attention_heads.json`, built by
  `benchmarks/attention_build.py`): every explanation of a head is scored with the attention-head
  scorer (ROC-AUC of the judge's P(yes) on the head's strongest pairs against weak ones). Reported:
  the mean score of the true and of the false explanations, ``separation_roc_auc`` (how well the
  scores separate true from false explanations, pooled over heads), ``pairwise_accuracy`` (share of
  true-vs-false pairs where the true explanation scores higher; NaN loses) and ``accuracy`` (share
  of heads whose true explanation beats every false one);
- the dev puzzle sets (`--sets`), scored with each judged scorer through `scoring.bench`:
  pairwise accuracy and accuracy per set and pooled over the sets.

Seconds per score (one explanation on one head or puzzle) are reported for each part. Scores are
not cached unless `--cache` is given, so the seconds are what judging costs.

    python benchmarks/bench_judge.py --simulator local
    python benchmarks/bench_judge.py --simulator local --sets dev3 --scorers fuzzing-judge --json
    python benchmarks/bench_judge.py --simulator fake --limit 2 --json     # plumbing only

`fake` judges by word overlap: its figures test the plumbing and mean nothing about judging.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.api import resolve_simulator, score_attention_explanation  # noqa: E402
from scoring.bench import run_bench  # noqa: E402
from scoring.errors import ScoringInputError  # noqa: E402
from scoring.metrics import roc_auc  # noqa: E402
from scoring.process_settings import configure_process  # noqa: E402
from scoring.scorers import simulator_id  # noqa: E402
from scoring.simulators import Simulator  # noqa: E402

SETS = {
    "dev": ROOT / "benchmarks" / "dev_puzzles.json",
    "dev2": ROOT / "benchmarks" / "dev_puzzles_2.json",
    "dev3": ROOT / "benchmarks" / "dev_puzzles_3.json",
}
HEADS = ROOT / "benchmarks" / "attention_heads.json"
JUDGED_SCORERS = ("detection-judge", "fuzzing-judge", "binary-condition")


def beats(true_score: float, false_score: float) -> bool:
    """A NaN true score loses; a NaN false score loses to any real true score (as `scoring.bench` counts)."""
    if math.isnan(true_score):
        return False
    return math.isnan(false_score) or true_score > false_score


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _mean(values: Sequence[float]) -> float:
    defined = [value for value in values if not math.isnan(value)]
    return statistics.fmean(defined) if defined else math.nan


def load_heads(path: Path) -> dict[str, dict[str, Any]]:
    """Heads keyed by name, each with explanation, false_explanations and records; a clear error when malformed."""
    try:
        heads = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScoringInputError(f"cannot read the attention heads file {path}: {exc}") from exc
    if not isinstance(heads, dict) or not heads:
        raise ScoringInputError(f"{path} must be a non-empty JSON object keyed by head name")
    for key, head in heads.items():
        missing = [field for field in ("explanation", "false_explanations", "records") if field not in head]
        if missing:
            raise ScoringInputError(f"head {key!r} in {path} has no {', '.join(missing)}")
        if not head["false_explanations"]:
            raise ScoringInputError(f"head {key!r} in {path} needs at least one false explanation")
    return heads


def bench_attention(heads: dict[str, dict[str, Any]], simulator: Simulator, cache: bool) -> dict[str, Any]:
    """Score every head's explanations with the attention-head scorer; see the module docstring."""
    per_head: dict[str, Any] = {}
    true_scores: list[float] = []
    false_scores: list[float] = []
    pairs = pairs_won = heads_won = n_scores = 0
    started = time.perf_counter()
    for key, head in heads.items():
        explanations = [head["explanation"], *head["false_explanations"]]
        results = [
            score_attention_explanation(text, head["records"], simulator=simulator, cache=cache)
            for text in explanations
        ]
        n_scores += len(results)
        scores = [result.score for result in results]
        won = [beats(scores[0], score) for score in scores[1:]]
        pairs += len(won)
        pairs_won += sum(won)
        heads_won += all(won)
        true_scores.append(scores[0])
        false_scores.extend(scores[1:])
        per_head[key] = {
            "explanation": explanations[0],
            "true_score": _number(scores[0]),
            "false_scores": {text: _number(score) for text, score in zip(explanations[1:], scores[1:], strict=True)},
            "pairs_won": sum(won),
            "pairs": len(won),
            "errors": {result.explanation: result.error for result in results if result.error},
        }
    seconds = time.perf_counter() - started
    labelled = [(True, score) for score in true_scores] + [(False, score) for score in false_scores]
    defined = [(label, score) for label, score in labelled if not math.isnan(score)]
    separation = roc_auc([label for label, _ in defined], [score for _, score in defined]) if defined else math.nan
    return {
        "heads": len(heads),
        "pairs": pairs,
        "pairwise_accuracy": pairs_won / pairs if pairs else math.nan,
        "accuracy": heads_won / len(heads) if heads else math.nan,
        "mean_true_roc_auc": _mean(true_scores),
        "mean_false_roc_auc": _mean(false_scores),
        "separation_roc_auc": separation,
        "n_scores": n_scores,
        "seconds": round(seconds, 3),
        "seconds_per_score": seconds / n_scores if n_scores else math.nan,
        "per_head": per_head,
    }


def bench_judged(
    sets: dict[str, Path], simulator: Simulator, scorers: Sequence[str], cache: bool, limit: int | None
) -> dict[str, Any]:
    """Each judged scorer on each puzzle set (through `scoring.bench.run_bench`), and pooled over the sets."""
    per_set: dict[str, dict[str, Any]] = {}
    pooled = {
        name: {"pairs": 0, "pairs_won": 0, "puzzles": 0, "won": 0, "n_scores": 0, "seconds": 0.0} for name in scorers
    }
    for set_name, path in sets.items():
        report = run_bench(path, simulator=simulator, scorer=list(scorers), cache=cache, limit=limit)
        summaries = report.get("scorers") or {scorers[0]: report}
        per_set[set_name] = {}
        for name in scorers:
            summary = summaries[name]
            puzzles = summary["puzzles"].values()
            errors = sum(len(entry["errors"]) for entry in puzzles)
            per_set[set_name][name] = {
                "pairwise_accuracy": summary["pairwise_accuracy"],
                "accuracy": summary["accuracy"],
                "pairs": sum(entry["pairs"] for entry in puzzles),
                "n_scores": summary["n_scores"],
                "seconds_per_score": summary["seconds_per_score"],
                "errors": errors,
            }
            total = pooled[name]
            total["pairs"] += sum(entry["pairs"] for entry in puzzles)
            total["pairs_won"] += sum(entry["pairs_won"] for entry in puzzles)
            total["puzzles"] += len(summary["puzzles"])
            total["won"] += sum(entry["won"] for entry in puzzles)
            total["n_scores"] += summary["n_scores"]
            total["seconds"] += summary["seconds"]
    return {
        "sets": per_set,
        "pooled": {
            name: {
                "pairwise_accuracy": total["pairs_won"] / total["pairs"] if total["pairs"] else math.nan,
                "accuracy": total["won"] / total["puzzles"] if total["puzzles"] else math.nan,
                "pairs": total["pairs"],
                "seconds_per_score": total["seconds"] / total["n_scores"] if total["n_scores"] else math.nan,
            }
            for name, total in pooled.items()
        },
    }


def resolve_sets(names: str) -> dict[str, Path]:
    """Set names (dev, dev2, dev3) or puzzle file paths, comma-separated; an empty string gives none."""
    sets: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in names.split(","))):
        path = SETS.get(item, Path(item))
        if not path.exists():
            raise ScoringInputError(f"unknown puzzle set {item!r}: give one of {', '.join(SETS)} or a puzzle file path")
        sets[item] = path
    return sets


def run(
    simulator: str | Simulator,
    sets: str = "dev,dev2,dev3",
    heads: Path | None = HEADS,
    scorers: Sequence[str] = JUDGED_SCORERS,
    limit: int | None = None,
    cache: bool = False,
) -> dict[str, Any]:
    """The whole report: attention heads (unless `heads` is None) and judged scorers on `sets` (unless empty)."""
    unknown = [name for name in scorers if name not in JUDGED_SCORERS]
    if unknown:
        raise ScoringInputError(
            f"unknown judged scorer(s) {', '.join(unknown)}; choose from {', '.join(JUDGED_SCORERS)}"
        )
    sim = resolve_simulator(simulator)
    report: dict[str, Any] = {"simulator": simulator_id(sim, writing=True), "limit": limit}
    started = time.perf_counter()
    if heads is not None:
        loaded = load_heads(heads)
        if limit:
            loaded = dict(list(loaded.items())[:limit])
        report["attention"] = bench_attention(loaded, sim, cache)
    chosen = resolve_sets(sets)
    if chosen and scorers:
        report["judged"] = bench_judged(chosen, sim, scorers, cache, limit)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def _format(value: Any) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def print_report(report: dict[str, Any]) -> None:
    print(f"judge: {report['simulator']}")
    attention = report.get("attention")
    if attention:
        print(f"\n{'head':22s} {'true':>6s}  false scores (ROC-AUC of P(yes), strong vs weak pairs)")
        for key, head in attention["per_head"].items():
            falses = " ".join(_format(score) for score in head["false_scores"].values())
            print(f"{key:22s} {_format(head['true_score']):>6s}  {falses}")
            for text, error in head["errors"].items():
                print(f"    error ({text}): {error}")
        print(
            f"attention heads: pairwise {_format(attention['pairwise_accuracy'])} of {attention['pairs']} pairs, "
            f"accuracy {_format(attention['accuracy'])}, mean ROC-AUC true {_format(attention['mean_true_roc_auc'])} "
            f"/ false {_format(attention['mean_false_roc_auc'])}, "
            f"separation {_format(attention['separation_roc_auc'])}, "
            f"{_format(attention['seconds_per_score'])} s per score"
        )
    judged = report.get("judged")
    if judged:
        names = list(judged["pooled"])
        print(f"\n{'set':10s} " + " ".join(f"{name:>18s}" for name in names) + "   (pairwise accuracy)")
        for set_name, rows in judged["sets"].items():
            print(f"{set_name:10s} " + " ".join(f"{_format(rows[name]['pairwise_accuracy']):>18s}" for name in names))
        pooled = judged["pooled"]
        print(f"{'pooled':10s} " + " ".join(f"{_format(pooled[n]['pairwise_accuracy']):>18s}" for n in names))
        print(f"{'s/score':10s} " + " ".join(f"{_format(pooled[n]['seconds_per_score']):>18s}" for n in names))
    print(f"\n{report['seconds']:.1f} s in all")


def main(argv: Sequence[str] | None = None) -> int:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulator", required=True, help="a simulator spec that judges: local, openai:<model>, ...")
    parser.add_argument("--sets", default="dev,dev2,dev3", help="puzzle sets or files, comma-separated ('' for none)")
    parser.add_argument("--heads", type=Path, default=HEADS, help="attention heads file")
    parser.add_argument("--no-heads", action="store_true", help="skip the attention heads")
    parser.add_argument("--scorers", default=",".join(JUDGED_SCORERS), help="judged scorers, comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="only the first N heads and N puzzles of each set")
    parser.add_argument("--cache", action="store_true", help="reuse cached judgments (the seconds then mean little)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = run(
            args.simulator,
            sets=args.sets,
            heads=None if args.no_heads else args.heads,
            scorers=[name.strip() for name in args.scorers.split(",") if name.strip()],
            limit=args.limit,
            cache=args.cache,
        )
    except ScoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_finite(report), indent=2))
    else:
        print_report(report)
    return 0


def _finite(value: Any) -> Any:
    """The report with NaN as null, so that the JSON is standard."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
