"""The command line: ``scoring COMMAND ...``, the same as ``python -m scoring COMMAND ...``.

Every subcommand is one row of `COMMANDS` (a `scoring.cli_support.Command`: name,
summary, arguments, function); a new command is one row. The conventions every
command follows are in `scoring.cli_support`. Exit codes: 0 done, 1 nothing (or,
with ``--strict``, not everything) could be scored, 2 a mistake the user can fix
(one line on stderr starting ``error:``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from scoring import __version__, spotcheck_command
from scoring import setup_commands as setup
from scoring.batch_input import explanations_of
from scoring.cli_support import (
    Command,
    add_cache_options,
    add_json_option,
    add_simulator_option,
    add_strict_option,
    cache_option,
    non_negative_int,
    port_number,
    positive_int,
    progress,
)
from scoring.errors import ScoringInputError
from scoring.null import NULL_SIZE, null_from_metrics
from scoring.process_settings import configure_process
from scoring.records import NORMALIZATIONS
from scoring.sampling import STRATEGIES, seed_argument
from scoring.scorers import ATTENTION_SCORERS, JUDGE_SCORERS, SCORERS
from scoring.subjects import commands as subject_commands
from scoring.textformat import new_explanations

DESCRIPTION = "Score natural-language explanations of neurons and SAE latents by simulation."

EPILOG = """\
`scoring COMMAND --help` shows a command's options; `scoring list` shows the simulators,
scorers and models, and which simulator is used when none is given, and why.
Exit codes: 0 done; 1 nothing could be scored (with --strict: something could not);
2 a mistake to fix (one `error:` line on stderr); 130 interrupted.
Documentation: docs/cli.md in the repository."""

SEED_HELP = "seed of every random choice (sampling, bootstrap, sampled candidates); a whole number >= 0 (default: 0)"


def _activation_scorers() -> list[str]:
    """Scorers that read activation records (all but attention-head, which has its own command)."""
    return [name for name in SCORERS if name not in ATTENTION_SCORERS]


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """The simulator and scorer, which sequences are scored and how they are scaled (score and batch)."""
    add_simulator_option(parser)
    parser.add_argument(
        "--scorer",
        metavar="NAME",
        default="simulation",
        help=f"scoring method: {', '.join(_activation_scorers())} (default: simulation; docs/scorers.md)",
    )
    parser.add_argument(
        "--sampling",
        default="all",
        choices=list(STRATEGIES),
        help="which sequences are scored (default: all)",
    )
    parser.add_argument(
        "-n",
        "--n-sequences",
        type=positive_int,
        default=None,
        metavar="N",
        help="how many sequences --sampling picks (default: all of them)",
    )
    parser.add_argument("--seed", type=seed_argument, default=0, help=SEED_HELP)
    parser.add_argument(
        "--normalization",
        default="global",
        choices=list(NORMALIZATIONS),
        help="how real activations are scaled to 0..10 (default: global)",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
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


def _check_simulator(spec: str | None, scorers: Sequence[str]) -> None:
    """Build the simulator (a bad spec or missing key is an error before any work) and check it can judge
    when a scorer asks a judge."""
    from scoring.api import require_judge, resolve_simulator

    require_judge(resolve_simulator(spec, judge=any(name in JUDGE_SCORERS for name in scorers)), scorers)


# ---------------------------------------------------------------- score


def _add_score(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", help="records file (JSON or CSV/TSV), or '-' for standard input")
    parser.add_argument(
        "-e",
        "--explanation",
        action="append",
        default=[],
        help="an explanation (repeat for several; default: the explanations stored in the file)",
    )
    _add_scoring_options(parser)
    parser.add_argument(
        "--explain",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also score N candidates that the simulator (default: the default judge) writes (default: 0)",
    )
    parser.add_argument(
        "--null",
        type=positive_int,
        nargs="?",
        const=NULL_SIZE,
        default=None,
        metavar="N",
        help=f"also score N (default: {NULL_SIZE}) unrelated explanations as the chance level, and show each "
        "explanation's percentile among them and its margin over their 95th percentile",
    )
    add_cache_options(parser)
    add_json_option(parser)
    add_strict_option(parser)


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

    _check_simulator(args.simulator, [args.scorer])
    source: Any = sys.stdin.read() if args.records == "-" else args.records
    explanations = args.explanation or (_explanations_from_records(args.records) if args.records != "-" else [])
    cache = cache_option(args)
    generated: list[Any] = []
    added: list[str] = []
    if args.explain:
        with progress(args, "writing candidates", "candidate") as report:
            generated = generate_explanations(
                source, simulator=args.simulator, n=args.explain, seed=args.seed, cache=cache, progress=report
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
    with progress(args, "scoring", "sequence") as report:
        results = rank_explanations(
            explanations, source, cache=cache, progress=report, null=args.null, **_scoring_options(args)
        )
    if args.json:
        document: dict[str, Any] = {"results": [r.to_dict() for r in results]}
        if args.explain:
            document["generated"] = [candidate.to_dict() for candidate in generated]
        print(json.dumps(document, indent=2))
        return _failure_status(results, args.strict)
    generated_texts = set(added) if args.explain else None
    if args.scorer != "simulation":
        _print_ranking(results, generated_texts)
        _print_null(results)
        return _failure_status(results, args.strict)
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
    _print_null(results)
    return _failure_status(results, args.strict)


def _print_null(results: Sequence[Any]) -> None:
    """With --null: the chance level, and where each explanation stands against it."""
    null = null_from_metrics(results[0])
    if null is None:
        return
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


def _failure_status(results: Sequence[Any], strict: bool) -> int:
    """1 (with a line on stderr) when every result failed, or with `strict` when any did; else 0.

    Failed means a simulation or a judge's answer failed (an unreachable server, a bad reply), not a
    score that is undefined for the data (a constant simulation): that is a result, reported as NaN.
    """
    failed = [result for result in results if result.failed]
    if not failed or (len(failed) < len(results) and not strict):
        return 0
    how = "every" if len(failed) == len(results) else f"{len(failed)} of {len(results)}"
    print(f"error: {how} score failed; first reason: {failed[0].error}", file=sys.stderr)
    return 1


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


def _print_ranking(results: Sequence[Any], generated: set[str] | None = None) -> None:
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


# ---------------------------------------------------------------- explain


class _RefuseAction(argparse.Action):
    """An option that only says what to use instead (``explain -n``: -n counts sequences everywhere)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(str(self.help))


def _add_explain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", help="records file (JSON or CSV/TSV), or '-' for standard input")
    add_simulator_option(parser, judge=True)
    parser.add_argument(
        "--candidates", type=positive_int, default=3, metavar="N", help="how many candidates to write (default: 3)"
    )
    parser.add_argument(
        "-n",
        action=_RefuseAction,
        metavar="N",
        help="-n counts sequences in every command; give the number of candidates with --candidates N",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=10,
        metavar="K",
        help="records shown to the model, strongest first (default: 10)",
    )
    parser.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of the candidates after the first (default: 0)"
    )
    add_cache_options(parser)
    add_json_option(parser, "the candidates")


def _command_explain(args: argparse.Namespace) -> int:
    from scoring.api import generate_explanations

    source: Any = sys.stdin.read() if args.records == "-" else args.records
    with progress(args, "writing candidates", "candidate") as report:
        generated = generate_explanations(
            source,
            simulator=args.simulator,
            n=args.candidates,
            top_k=args.top_k,
            seed=args.seed,
            cache=cache_option(args),
            progress=report,
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


# ---------------------------------------------------------------- attention


def _add_attention(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", help="attention records JSON: {tokens, attention: [to][from]} or {tokens, pairs}")
    parser.add_argument(
        "-e", "--explanation", action="append", default=[], help="an explanation (repeat for several)"
    )
    add_simulator_option(parser, judge=True)
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the weak pairs drawn (default: 0)")
    add_cache_options(parser)
    add_json_option(parser)
    add_strict_option(parser)


def _command_attention(args: argparse.Namespace) -> int:
    from scoring.api import score_attention_explanation, sort_results

    if not args.explanation:
        raise ScoringInputError("give at least one explanation with -e \"...\"")
    _check_simulator(args.simulator, ["attention-head"])
    cache = cache_option(args)
    results = []
    with progress(args, "judging", "question") as report:
        for position, text in enumerate(args.explanation):
            own = _share(report, position, len(args.explanation))
            results.append(
                score_attention_explanation(
                    text, args.records, simulator=args.simulator, seed=args.seed, cache=cache, progress=own
                )
            )
    results = sort_results(results)
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
    else:
        _print_ranking(results)
    return _failure_status(results, args.strict)


def _share(report: Any, position: int, count: int) -> Any:
    """The progress callback of part `position` of `count` equal parts of one bar."""
    if report is None:
        return None

    def own(done: int, total: int, message: str) -> None:
        report(position * total + done, count * total, message)

    return own


# ---------------------------------------------------------------- bench


def _add_bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("puzzles", help="puzzle file in the schema of OpenAI's puzzles.json")
    add_simulator_option(parser)
    parser.add_argument(
        "--scorer",
        metavar="NAME",
        action="append",
        default=None,
        help=f"scoring method, several as a comma list or repeated (then their rankings are compared): "
        f"{', '.join(_activation_scorers())} (default: simulation)",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="only the first N puzzles (default: all)"
    )
    add_cache_options(parser, default_on=False, why=", so seconds and tokens are what a fresh run costs")
    add_json_option(parser, "the report")
    add_strict_option(parser)


def _command_bench(args: argparse.Namespace) -> int:
    from scoring.bench import run_bench

    with progress(args, "puzzles", "puzzle") as report:
        summary = run_bench(
            args.puzzles,
            simulator=args.simulator,
            scorer=args.scorer or ["simulation"],
            cache=cache_option(args, default_on=False),
            limit=args.limit,
            progress=report,
        )
    if args.json:
        print(json.dumps(summary, indent=2, default=lambda v: None))
    elif "scorers" in summary:
        _print_bench_scorers(summary)
    else:
        _print_bench(summary)
    return _bench_status(summary, args.strict)


def _print_bench(summary: dict[str, Any]) -> None:
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


def _bench_status(summary: dict[str, Any], strict: bool) -> int:
    """As `_failure_status`, over every score of every scorer of a bench run."""
    reports = list(summary.get("scorers", {}).values()) or [summary]
    failed = sum(report["failed_scores"] for report in reports)
    total = sum(report["n_scores"] for report in reports)
    if not failed or (failed < total and not strict):
        return 0
    how = "every" if failed == total else f"{failed} of {total}"
    reason = next(
        (error for report in reports for puzzle in report["puzzles"].values() for error in puzzle["errors"].values()),
        None,
    )
    print(f"error: {how} score failed; first reason: {reason}", file=sys.stderr)
    return 1


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


# ---------------------------------------------------------------- serve


def _add_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; another needs SERVER_KEY or --allow-open)",
    )
    parser.add_argument("--port", type=port_number, default=5000, help="TCP port (default: 5000)")
    parser.add_argument(
        "--simulator",
        metavar="SPEC",
        default=None,
        help="simulator of requests that name none (default: $SCORING_SIMULATOR, else the default simulator, "
        "see `scoring list`); requests may pick others listed in $SCORING_ALLOWED_SIMULATORS",
    )
    parser.add_argument(
        "--allow-open",
        action="store_true",
        default=None,
        help="listen on a non-loopback address without SERVER_KEY (anyone there may score)",
    )


def _command_serve(args: argparse.Namespace) -> int:
    from scoring.server import serve

    serve(host=args.host, port=args.port, simulator=args.simulator, allow_open=args.allow_open)
    return 0


# ---------------------------------------------------------------- batch


def _add_batch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="input JSONL: one feature per line")
    parser.add_argument("-o", "--output", required=True, help="output JSONL (appended; reruns resume)")
    _add_scoring_options(parser)
    parser.add_argument(
        "--concurrency", type=positive_int, default=4, metavar="N", help="pairs scored at once (default: 4)"
    )
    parser.add_argument(
        "--correction",
        default="holm",
        choices=["holm", "bh", "none"],
        help="binary-condition: correct the p-values of the explanations of each input line (one feature, "
        "named by its id) for their number: holm (Holm-Bonferroni), bh (Benjamini-Hochberg) or none "
        "(default: holm)",
    )
    add_cache_options(parser, why="; without it a resumed run simulates again")
    parser.add_argument("--include-sequences", action="store_true", help="per-sequence results in every line")
    parser.add_argument("--no-retry-failed", action="store_true", help="on resume, keep failed pairs as they are")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="at the end, rewrite the output with one line per pair (its last line, which is its result)",
    )
    parser.add_argument(
        "--allow-paths",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder from which a line's \"records\" path may be read (repeat for more; default: only the "
        "input file's folder)",
    )


def _command_batch(args: argparse.Namespace) -> int:
    from scoring.batch import exit_status, run_batch, summary_line
    from scoring.cli_support import progress_wanted

    # The torn-line repair and the resume hint are warnings the user must see, even when not verbose.
    logging.getLogger("scoring.batch").setLevel(logging.INFO if args.verbose else logging.WARNING)
    summary = run_batch(
        args.input,
        args.output,
        concurrency=args.concurrency,
        correction=args.correction,
        **_scoring_options(args),
        cache=cache_option(args),
        include_sequences=args.include_sequences,
        retry_failed=not args.no_retry_failed,
        progress=progress_wanted(args),
        allow_paths=args.allow_paths,
        compact=args.compact,
    )
    print(json.dumps(summary, default=lambda v: None))
    print(summary_line(summary), file=sys.stderr)
    return exit_status(summary)


# ---------------------------------------------------------------- the table and the parser


COMMANDS: tuple[Command, ...] = (
    Command("score", "score explanations of one neuron's records", _add_score, _command_score),
    Command("explain", "write candidate explanations from the top-activating records", _add_explain, _command_explain),
    Command("attention", "score explanations of an attention head", _add_attention, _command_attention),
    Command("bench", "accuracy of scorers on a puzzle suite", _add_bench, _command_bench),
    Command("batch", "score many (feature, explanation) pairs from JSONL, resumably", _add_batch, _command_batch),
    Command("serve", "the Neuronpedia-compatible HTTP scoring server", _add_serve, _command_serve),
    *subject_commands.COMMANDS,
    Command("spot-check", spotcheck_command.SUMMARY, spotcheck_command.add_arguments, spotcheck_command.command),
    *setup.COMMANDS,
)
"""Every subcommand, in the order of ``--help``: the one place where commands are declared."""


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``-v`` and ``--no-progress``; a subcommand's copies leave the values alone unless given there."""
    keep: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings", **keep)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are drawn on stderr only when it is a terminal)",
        **keep,
    )


class _CommandFormatter(argparse.RawDescriptionHelpFormatter):
    """A command's help: the description as written; option help wrapped at spaces, never inside a
    hyphenated name (``eleuther-embedding`` stays whole, so it can be found and copied)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _TopLevelFormatter(argparse.RawDescriptionHelpFormatter):
    """The top-level help: the epilog as written, command names in a column wide enough for all of them."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26)


class CommandLine:
    """The parser of every command, and the parse that reports a mistake with the usage of its command."""

    def __init__(self, prog: str = "scoring") -> None:
        self.parser = argparse.ArgumentParser(
            prog=prog,
            description=DESCRIPTION,
            epilog=EPILOG,
            formatter_class=_TopLevelFormatter,
        )
        self.parser.add_argument("--version", action="version", version=f"scoring {__version__}")
        _add_global_options(self.parser, defaults=True)
        shared = argparse.ArgumentParser(add_help=False)
        _add_global_options(shared, defaults=False)
        commands = self.parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
        self.commands: dict[str, argparse.ArgumentParser] = {}
        for command in COMMANDS:
            self.commands[command.name] = commands.add_parser(
                command.name,
                help=command.summary,
                description=command.description or command.summary[0].upper() + command.summary[1:] + ".",
                parents=[shared],
                formatter_class=_CommandFormatter,
            )
            command.add_arguments(self.commands[command.name])

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        args, extras = self.parser.parse_known_args(argv)
        if extras:
            self.commands.get(args.command, self.parser).error(f"unrecognized arguments: {' '.join(extras)}")
        return args


def build_parser(prog: str = "scoring") -> argparse.ArgumentParser:
    """The top-level parser (its subparsers hold every command's options)."""
    return CommandLine(prog).parser


def main(argv: Sequence[str] | None = None, prog: str = "scoring") -> int:
    """Run one command; returns its exit code (`scoring.__main__` and the ``scoring`` script exit with it)."""
    configure_process()
    command_line = CommandLine(prog)
    args = command_line.parse(argv)
    if args.command is None:
        command_line.parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(message)s")
    run = {command.name: command.run for command in COMMANDS}[args.command]
    try:
        return run(args)
    except ScoringInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`scoring list | head`): not an error of ours. Python would complain about
        # the unflushed stdout at exit, so point it at nothing first.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
