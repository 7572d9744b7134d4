"""``python -m scoring ...``: score, explain, attention, bench, serve, batch, spot-check.

User errors end with exit code 2 and one line on stderr saying what to fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from scoring import spotcheck_command
from scoring.batch_input import explanations_of
from scoring.errors import ScoringInputError
from scoring.null import NULL_SIZE, null_from_metrics
from scoring.records import NORMALIZATIONS
from scoring.sampling import STRATEGIES, seed_argument
from scoring.subjects import commands as subject_commands
from scoring.textformat import new_explanations


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """The simulator and scorer, which sequences are scored and how they are scaled (score and batch)."""
    parser.add_argument("--simulator", default=None, help="simulator spec (default: local; embedding without bf16)")
    parser.add_argument("--scorer", default="simulation", help="scoring method (default: simulation)")
    parser.add_argument("--sampling", default="all", choices=list(STRATEGIES))
    parser.add_argument("-n", "--n-sequences", type=int, default=None, help="how many sequences to use")
    parser.add_argument("--seed", type=seed_argument, default=0)
    parser.add_argument("--normalization", default="global", choices=list(NORMALIZATIONS))
    parser.add_argument(
        "--window",
        type=_positive_int,
        default=None,
        metavar="N",
        help="binary-condition: tokens per window (default: whole sequences)",
    )


def _scoring_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the options `_add_scoring_options` added, for rank_explanations and run_batch."""
    return {
        "simulator": args.simulator,
        "scorer": args.scorer,
        "sampling": args.sampling,
        "n_sequences": args.n_sequences,
        "seed": args.seed,
        "normalization": args.normalization,
        "scorer_options": {"window": args.window} if args.window is not None else None,
    }


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse reports the error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score explanations of one neuron's records")
    score.add_argument("records", help="records file (JSON or CSV/TSV), or '-' for standard input")
    score.add_argument("-e", "--explanation", action="append", default=[], help="an explanation (repeat)")
    _add_scoring_options(score)
    score.add_argument("--no-cache", action="store_true", help="simulate again even when cached")
    score.add_argument("--cache-dir", default=None, help="cache directory (default: $SCORING_CACHE_DIR or ./cache)")
    score.add_argument("--json", action="store_true", help="print the full results as JSON")
    score.add_argument(
        "--null",
        type=int,
        nargs="?",
        const=NULL_SIZE,
        default=None,
        metavar="N",
        help=f"also score N (default {NULL_SIZE}) unrelated explanations as the chance level, and show each "
        "explanation's percentile among them and its margin over their 95th percentile",
    )
    score.add_argument(
        "--explain", type=int, default=0, metavar="N", help="also score N candidates the simulator writes"
    )

    explain = commands.add_parser("explain", help="write candidate explanations from the top-activating records")
    explain.add_argument("records", help="records file (JSON or CSV/TSV), or '-' for standard input")
    explain.add_argument("--simulator", default=None, help="a simulator that writes explanations (default: local)")
    explain.add_argument("-n", type=int, default=3, help="how many candidates (default 3)")
    explain.add_argument(
        "--top-k", type=int, default=10, help="records shown to the model, strongest first (default 10)"
    )
    explain.add_argument("--seed", type=seed_argument, default=0, help="seed of the sampled candidates")
    explain.add_argument("--no-cache", action="store_true", help="write again even when cached")
    explain.add_argument("--cache-dir", default=None, help="cache directory (default: $SCORING_CACHE_DIR or ./cache)")
    explain.add_argument("--json", action="store_true", help="print the candidates as JSON")

    attention = commands.add_parser("attention", help="score explanations of an attention head (attention-head scorer)")
    attention.add_argument("records", help="attention records JSON: {tokens, attention: [to][from]} or {tokens, pairs}")
    attention.add_argument("-e", "--explanation", action="append", default=[], help="an explanation (repeat)")
    attention.add_argument("--simulator", default=None, help="a simulator that judges (default: local)")
    attention.add_argument("--seed", type=seed_argument, default=0)
    attention.add_argument("--no-cache", action="store_true", help="judge again even when cached")
    attention.add_argument("--cache-dir", default=None)
    attention.add_argument("--json", action="store_true", help="print the full results as JSON")

    bench = commands.add_parser("bench", help="accuracy of a scorer on a puzzle suite")
    bench.add_argument("puzzles", help="puzzle file in the schema of OpenAI's puzzles.json")
    bench.add_argument("--simulator", default=None, help="simulator spec (default: local; embedding without bf16)")
    bench.add_argument(
        "--scorer",
        action="append",
        default=None,
        help="scoring method (default simulation); several as a comma list or repeated: also compares their rankings",
    )
    bench.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    bench.add_argument("--cache", action="store_true", help="reuse cached simulations (timings then mean little)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    serve = commands.add_parser("serve", help="Neuronpedia-compatible HTTP scoring server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=5000, help="TCP port, 1 to 65535 (default 5000)")
    serve.add_argument("--simulator", default=None)
    serve.add_argument(
        "--allow-open",
        action="store_true",
        default=None,
        help="listen on a non-loopback address without SERVER_KEY (anyone there may score)",
    )

    batch = commands.add_parser("batch", help="score many (feature, explanation) pairs from JSONL")
    batch.add_argument("input", help="input JSONL: one feature per line")
    batch.add_argument("-o", "--output", required=True, help="output JSONL (appended; reruns resume)")
    _add_scoring_options(batch)
    batch.add_argument("--concurrency", type=int, default=4, help="pairs scored at once (default 4)")
    batch.add_argument(
        "--correction",
        default="holm",
        choices=["holm", "bh", "none"],
        help="binary-condition: correct the p-values of the explanations of each input line (one feature, "
        "named by its id) for their number: holm (Holm-Bonferroni, default), bh (Benjamini-Hochberg) or none",
    )
    batch.add_argument("--no-cache", action="store_true", help="simulate again even when cached (no resume help)")
    batch.add_argument("--cache-dir", default=None)
    batch.add_argument("--include-sequences", action="store_true", help="per-sequence results in every line")
    batch.add_argument("--no-retry-failed", action="store_true", help="on resume, keep failed pairs as they are")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.add_argument(
        "--compact",
        action="store_true",
        help="at the end, rewrite the output with one line per pair (its last line, which is its result)",
    )
    batch.add_argument(
        "--allow-paths",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder from which a line's \"records\" path may be read (repeat for more); paths are read "
        "only from the input file's folder otherwise",
    )

    subject_commands.add_parsers(commands)
    spotcheck_command.add_parser(commands, _positive_int)
    return parser


def _format(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.{digits}f}"


def _explanations_from_records(path: str) -> list[str]:
    """The explanations a file carries (a Neuronpedia request's, a feature export's); used when no -e is given."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return explanations_of(data) if isinstance(data, dict) else []
    except (OSError, ValueError):
        return []


def _command_score(args: argparse.Namespace) -> int:
    from scoring.api import generate_explanations, rank_explanations

    source: Any = sys.stdin.read() if args.records == "-" else args.records
    explanations = args.explanation or (_explanations_from_records(args.records) if args.records != "-" else [])
    cache: Any = False if args.no_cache else (args.cache_dir or True)
    generated: list[Any] = []
    added: list[str] = []
    if args.explain:
        generated = generate_explanations(
            source, simulator=args.simulator, n=args.explain, seed=args.seed, cache=cache
        )
        for candidate in generated:
            if candidate.error:
                print(f"note: generated candidate {candidate.attempt + 1} failed: {candidate.error}", file=sys.stderr)
        added = new_explanations(explanations, [candidate.text for candidate in generated])
    explanations = [*explanations, *added]
    if not explanations:
        raise ScoringInputError(
            "give at least one explanation with -e \"...\""
            + (" (no candidate could be generated; see the notes above)" if args.explain else "")
        )
    results = rank_explanations(explanations, source, cache=cache, null=args.null, **_scoring_options(args))
    if args.json:
        document: dict[str, Any] = {"results": [r.to_dict() for r in results]}
        if args.explain:
            document["generated"] = [candidate.to_dict() for candidate in generated]
        print(json.dumps(document, indent=2))
        return 0
    generated_texts = set(added) if args.explain else None
    if args.scorer != "simulation":
        _print_ranking(results, generated_texts)
        return _print_null(results)
    width = _explanation_width(results)
    print(
        f"{'rank':>4}  {'explanation':<{width}}  {'score':>7}  {'95% interval':>15}  {'r2':>7}  {'auc':>6}"
        + _source_heading(generated_texts)
    )
    for rank, result in enumerate(results, start=1):
        low, high = result.interval
        interval = f"[{_format(low, 2)}, {_format(high, 2)}]"
        print(
            f"{rank:>4}  {_shorten(result.explanation, width):<{width}}  {_format(result.score):>7}  {interval:>15}  "
            f"{_format(result.metrics.get('r_squared'), 2):>7}  {_format(result.metrics.get('roc_auc'), 2):>6}"
            + _source(result, generated_texts)
        )
    _print_errors(results)
    first = results[0]
    usage = first.usage
    print(
        f"simulator {first.simulator}, {len(first.sequences)} sequences, normalization {first.normalization}; "
        f"cache hits {sum(r.usage.cache_hits for r in results)}, "
        f"prompt tokens {sum(r.usage.prompt_tokens for r in results)}"
        + (f", cost ${sum(r.usage.cost_usd or 0 for r in results):.4f}" if usage.cost_usd is not None else "")
    )
    return _print_null(results)


def _print_null(results: Sequence[Any]) -> int:
    """With --null: the chance level, and where each explanation stands against it."""
    null = null_from_metrics(results[0])
    if null is None:
        return 0
    nothing = f"; {null.predicted_nothing} predicted nothing and count as 0" if null.predicted_nothing else ""
    print(f"chance level: 95th percentile {_format(null.threshold)} of {null.n} unrelated explanations{nothing}")
    for result in results:
        percentile = float(result.metrics.get("null_percentile", math.nan))
        standing = (
            f"beats {percentile:.0f}% of them; {result.metrics['over_null_p95']:+.3f} over their 95th percentile"
            if math.isfinite(percentile)
            else "no score, so no standing against them"
        )
        print(f"  {_shorten(result.explanation, 60)}: {standing}")
    for text, reason in null.failed.items():
        print(f"note: the unrelated explanation {text!r} could not be scored: {reason}", file=sys.stderr)
    return 0


def _command_explain(args: argparse.Namespace) -> int:
    from scoring.api import generate_explanations

    source: Any = sys.stdin.read() if args.records == "-" else args.records
    generated = generate_explanations(
        source,
        simulator=args.simulator,
        n=args.n,
        top_k=args.top_k,
        seed=args.seed,
        cache=False if args.no_cache else (args.cache_dir or True),
    )
    written = [candidate for candidate in generated if candidate.text is not None]
    if args.json:
        print(json.dumps({"explanations": [candidate.to_dict() for candidate in generated]}, indent=2))
    else:
        for candidate in generated:
            shown = candidate.text if candidate.text is not None else f"(failed: {candidate.error})"
            print(f"{candidate.attempt + 1:>3}. {shown}")
        prompt_tokens = sum(candidate.usage.prompt_tokens for candidate in generated)
        costs = [candidate.usage.cost_usd for candidate in generated if candidate.usage.cost_usd is not None]
        print(
            f"simulator {generated[0].simulator}: {len(written)} of {len(generated)} written; "
            f"cache hits {sum(candidate.usage.cache_hits for candidate in generated)}, prompt tokens {prompt_tokens}"
            + (f", cost ${sum(costs):.4f}" if costs else "")
        )
    if not written:
        print(f"error: no candidate could be written; first reason: {generated[0].error}", file=sys.stderr)
        return 1
    return 0


def _explanation_width(results: Sequence[Any]) -> int:
    """The explanation column: as wide as the longest explanation (at least its heading), at most 60."""
    return min(max([len("explanation"), *(len(result.explanation) for result in results)]), 60)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _source_heading(generated: set[str] | None) -> str:
    return "  source" if generated is not None else ""


def _source(result: Any, generated: set[str] | None) -> str:
    """Whether `score --explain` wrote the explanation or the user gave it (nothing without --explain)."""
    if generated is None:
        return ""
    return "  generated" if result.explanation in generated else "  given"


def _print_errors(results: Sequence[Any]) -> None:
    for result in results:
        if result.error:
            print(f"note: {result.explanation!r}: {result.error}", file=sys.stderr)


def _print_ranking(results: Sequence[Any], generated: set[str] | None = None) -> int:
    """The table of a scorer other than simulation: its score, Holm-corrected p-value or balanced accuracy,
    and how many questions (or sequences) it asked about; with `generated` (score --explain), a source column."""
    width = _explanation_width(results)
    extra = "p (Holm)" if any("p_value_holm" in r.metrics for r in results) else "bal. acc"
    print(f"{'rank':>4}  {'explanation':<{width}}  {'score':>7}  {extra:>8}  {'asked':>5}" + _source_heading(generated))
    for rank, result in enumerate(results, start=1):
        figure = result.metrics.get("p_value_holm", result.metrics.get("balanced_accuracy"))
        asked = len(result.judgments) or len(result.sequences)
        print(
            f"{rank:>4}  {_shorten(result.explanation, width):<{width}}  {_format(result.score):>7}  "
            f"{_format(figure):>8}  {asked:>5}" + _source(result, generated)
        )
    _print_errors(results)
    first = results[0]
    print(
        f"scorer {first.scorer}, simulator {first.simulator}; cache hits {sum(r.usage.cache_hits for r in results)}, "
        f"requests {sum(r.usage.requests for r in results)}, "
        f"prompt tokens {sum(r.usage.prompt_tokens for r in results)}"
    )
    return 0


def _command_attention(args: argparse.Namespace) -> int:
    from scoring.api import score_attention_explanation, sort_results

    if not args.explanation:
        raise ScoringInputError("give at least one explanation with -e \"...\"")
    cache: Any = False if args.no_cache else (args.cache_dir or True)
    results = sort_results(
        [
            score_attention_explanation(text, args.records, simulator=args.simulator, seed=args.seed, cache=cache)
            for text in args.explanation
        ]
    )
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
        return 0
    return _print_ranking(results)


def _command_bench(args: argparse.Namespace) -> int:
    from scoring.bench import run_bench

    summary = run_bench(
        args.puzzles,
        simulator=args.simulator,
        scorer=args.scorer or ["simulation"],
        cache=bool(args.cache),
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(summary, indent=2, default=lambda v: None))
        return 0
    if "scorers" in summary:
        _print_bench_scorers(summary)
        return 0
    print(f"{'puzzle':<24} {'won':>4} {'true':>7}  false scores")
    for key, entry in summary["puzzles"].items():
        falses = ", ".join(_format(v, 2) for v in entry["false_scores"].values())
        print(f"{key:<24} {'yes' if entry['won'] else 'no':>4} {_format(entry['true_score'], 2):>7}  {falses}")
    print(
        f"\nsimulator {summary['simulator']}, scorer {summary['scorer']}: accuracy {_format(summary['accuracy'])}, "
        f"pairwise accuracy {_format(summary['pairwise_accuracy'])}, "
        f"{_format(summary['seconds_per_score'])} s/score, "
        f"{_format(summary['prompt_tokens_per_score'], 0)} prompt tokens/score"
    )
    return 0


def _print_bench_scorers(summary: dict[str, Any]) -> None:
    """Puzzles won per scorer, each scorer's figures, and how alike the scorers rank."""
    scorers: dict[str, Any] = summary["scorers"]
    width = max(len("scorer"), *(len(name) for name in scorers))
    print(f"{'puzzle':<24} " + " ".join(f"{name:>{max(len(name), 4)}}" for name in scorers))
    for key in summary["puzzles"]:
        cells = [
            f"{'yes' if report['puzzles'][key]['won'] else 'no':>{max(len(name), 4)}}"
            for name, report in scorers.items()
        ]
        print(f"{key:<24} " + " ".join(cells))
    print(
        f"\n{'scorer':<{width}}  {'accuracy':>8}  {'pairwise':>8}  {'s/score':>8}  "
        f"{'prompt tok/score':>16}  {'cost':>9}"
    )
    for name, report in scorers.items():
        cost = "n/a" if report["cost_usd"] is None else f"${report['cost_usd']:.4f}"
        print(
            f"{name:<{width}}  {_format(report['accuracy']):>8}  {_format(report['pairwise_accuracy']):>8}  "
            f"{_format(report['seconds_per_score']):>8}  {_format(report['prompt_tokens_per_score'], 0):>16}  "
            f"{cost:>9}"
        )
    agreement = summary["agreement"]
    print("\nrank agreement per pair (Kendall tau-b, mean over puzzles; share of puzzles with the same top):")
    for pair in agreement["pairs"]:
        first, second = pair["scorers"]
        print(
            f"  {first} ~ {second}: tau {_format(pair['kendall_tau'])} ({pair['tau_puzzles']} puzzles), "
            f"top {_format(pair['top_agreement'])} ({pair['top_puzzles']} puzzles)"
        )
    print(
        f"simulator {summary['simulator']}, {summary['n_puzzles']} puzzles: mean tau "
        f"{_format(agreement['mean_kendall_tau'])}, mean top agreement {_format(agreement['mean_top_agreement'])}"
    )


def _command_serve(args: argparse.Namespace) -> int:
    from scoring.server import serve

    serve(host=args.host, port=args.port, simulator=args.simulator, allow_open=args.allow_open)
    return 0


def _command_batch(args: argparse.Namespace) -> int:
    from scoring.batch import exit_status, run_batch, summary_line

    # The torn-line repair and the resume hint are warnings the user must see, even when not verbose.
    logging.getLogger("scoring.batch").setLevel(logging.INFO if args.verbose else logging.WARNING)

    if args.concurrency < 1:
        raise ScoringInputError("--concurrency must be at least 1")
    summary = run_batch(
        args.input,
        args.output,
        concurrency=args.concurrency,
        correction=args.correction,
        **_scoring_options(args),
        cache=False if args.no_cache else (args.cache_dir or True),
        include_sequences=args.include_sequences,
        retry_failed=not args.no_retry_failed,
        progress=not args.no_progress,
        allow_paths=args.allow_paths,
        compact=args.compact,
    )
    print(json.dumps(summary, default=lambda v: None))
    print(summary_line(summary), file=sys.stderr)
    return exit_status(summary)


COMMANDS = {
    "score": _command_score,
    "explain": _command_explain,
    "attention": _command_attention,
    "bench": _command_bench,
    "serve": _command_serve,
    "batch": _command_batch,
    **subject_commands.COMMANDS,
    "spot-check": spotcheck_command.command,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ScoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
