"""``python -m scoring spot-check``: a moderator's check of the scores a Neuronpedia feature claims.

    python -m scoring spot-check FEATURE.json|FEATURES.jsonl [--judge SPEC] [--rescore] [--json]

For every explanation and every claimed score: type, model, claimed value, the value
derived from its stored details, the re-score (with sd where the judge samples), the
verdict and a one-line reason (`scoring.spotcheck`). A JSON list or a JSONL file is a
queue: each feature is checked in turn, and one that cannot be read is reported without
stopping the rest. ``--json`` prints one object per feature (``claims``: explanation,
type, model, claimed, derived, rescored, rescored_sd, verdict, reason, and the evidence).

Exit codes: 0 when every feature was read (whatever the verdicts), 1 when some feature of
a queue could not be read, 2 for a usage error (file missing, bad option).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from scoring.errors import ScoringInputError
from scoring.protocols.prompts import KINDS, load_template

SUMMARY = "check the scores a Neuronpedia feature claims: derived from their details, re-scored"


def add_arguments(spot: argparse.ArgumentParser) -> None:
    """The ``spot-check`` command's arguments."""
    from scoring.cli_support import positive_int

    spot.add_argument(
        "feature", help="feature JSON (Neuronpedia's /api/feature response), a JSON list of them, or JSONL (a queue)"
    )
    spot.add_argument("--rescore", action="store_true", help="also re-score every claim with --judge")
    spot.add_argument(
        "--judge",
        default=None,
        help="judge of the re-scores: a simulator spec (default: local); {model} in it becomes each claim's own "
        "model, e.g. openai-compatible:{model}@https://openrouter.ai/api/v1",
    )
    spot.add_argument(
        "--model-id",
        action="append",
        default=[],
        metavar="NAME=ID",
        help="the id {model} gets for a claim model NAME (default: gpt-*/o*: openai/NAME, gemini-*: google/NAME, "
        "else NAME); repeat",
    )
    spot.add_argument(
        "--simulator", default=None, help="simulator for claims of our simulation scorers (default: the default)"
    )
    spot.add_argument(
        "--runs", type=positive_int, default=5, help="runs of a temperature-1 judge (eleuther_fuzz/recall; default 5)"
    )
    spot.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="how far a claim may lie from a re-score (plus 2 sd; default 0.05)",
    )
    spot.add_argument(
        "-e",
        "--explanation",
        action="append",
        default=[],
        help="also score this explanation with each protocol the feature's claims use (needs --rescore; repeat)",
    )
    spot.add_argument(
        "--prompt-file",
        action="append",
        default=[],
        metavar="TYPE=PATH",
        help=f"a JSON list of chat messages to use instead of our prompt; TYPE is one of {', '.join(KINDS)}",
    )
    spot.add_argument(
        "--embedding-model",
        default=None,
        metavar="FOLDER|SPEC",
        help="eleuther_embedding's model: a sentence-transformers folder, or openai-compatible:<model>@<url> "
        "(a server's /v1/embeddings)",
    )
    spot.add_argument(
        "--trust-remote-code", action="store_true", help="let --embedding-model run the code in its folder"
    )
    spot.add_argument(
        "--embedding-instruction-file",
        default=None,
        metavar="PATH",
        help="text put before the explanation in the embedding query (default: ours)",
    )
    spot.add_argument("--evidence", action="store_true", help="also list, per claim, the examples judged wrongly")
    spot.add_argument("--no-cache", action="store_true", help="judge again even when cached")
    spot.add_argument(
        "--cache-dir", default=None, help="cache folder (default: $SCORING_CACHE_DIR or the user cache folder)"
    )
    spot.add_argument("--json", action="store_true", help="print one JSON object per feature")


def _model_ids(entries: list[str]) -> dict[str, str]:
    found = {}
    for entry in entries:
        name, separator, model_id = entry.partition("=")
        if not separator or not name.strip() or not model_id.strip():
            raise ScoringInputError(
                f"--model-id takes NAME=ID, e.g. claude-3-5-haiku=anthropic/claude-3.5-haiku; got {entry!r}"
            )
        found[name.strip()] = model_id.strip()
    return found


def _prompts(entries: list[str]) -> dict[str, Any]:
    prompts = {}
    for entry in entries:
        kind, separator, path = entry.partition("=")
        if not separator or kind not in KINDS:
            raise ScoringInputError(f"--prompt-file takes TYPE=PATH with TYPE one of {', '.join(KINDS)}, got {entry!r}")
        prompts[kind] = load_template(path, kind)
    return prompts


def _instruction(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoringInputError(f"cannot read the instruction file {path}: {exc}") from None


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_feature(check: Any, evidence: bool) -> None:
    from scoring.viz.spot_check import claim_evidence, evidence_summary, where_it_fails

    print(f"feature {check.identity or '(not named)'} ({check.name})")
    width = min(max([len("explanation"), *(len(claim.explanation) for claim in check.claims)]), 40)
    print(
        f"  {'explanation':<{width}}  {'type':<18}  {'model':<18}  {'claimed':>7}  {'derived':>7}  "
        f"{'rescored':>13}  verdict"
    )
    for claim in check.claims:
        rescore = claim.rescore
        rescored = "—"
        if rescore is not None and math.isfinite(rescore.value):
            rescored = _number(rescore.value) + (f"±{rescore.sd:.3f}" if math.isfinite(rescore.sd) else "")
        print(
            f"  {_shorten(claim.explanation, width):<{width}}  {_shorten(claim.type or '—', 18):<18}  "
            f"{_shorten(claim.model or '—', 18):<18}  {_number(claim.claimed):>7}  {_number(claim.derived):>7}  "
            f"{rescored:>13}  {claim.verdict}"
        )
        print(f"      {claim.reason}")
        if evidence:
            for source, judged in claim_evidence(claim).items():
                print(f"      {source}: {evidence_summary(judged)}")
                for item in where_it_fails(judged)[:10]:
                    said = "—" if item.answer is None else ("yes" if item.answer else "no")
                    text = _shorten(item.example.text.replace("\n", "↵"), 90)
                    expected = "yes" if item.example.expected else "no"
                    print(f"        [{item.example.group}, expected {expected}, said {said}] {text}")
    for problem in check.problems:
        print(f"  note: {problem}")
    flagged = len(check.flagged)
    print(f"  {len(check.claims)} claims, {flagged} flagged" + ("" if flagged else " (none refuted)"))


def command(args: argparse.Namespace) -> int:
    from scoring.progress import progress_bar
    from scoring.protocols.neuronpedia import load_features
    from scoring.spotcheck import SpotCheckOptions, spot_check

    if args.explanation and not args.rescore:
        raise ScoringInputError("-e/--explanation scores a new explanation, which needs --rescore")
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise ScoringInputError(f"--tolerance must be a number of at least 0, got {args.tolerance}")
    options = SpotCheckOptions(
        rescore=args.rescore,
        judge=args.judge,
        simulator=args.simulator,
        runs=args.runs,
        tolerance=args.tolerance,
        prompts=_prompts(args.prompt_file),
        embedding_model=args.embedding_model,
        trust_remote_code=args.trust_remote_code,
        embedding_instruction=_instruction(args.embedding_instruction_file),
        explanations=tuple(args.explanation),
        model_ids=_model_ids(args.model_id),
        cache=False if args.no_cache else (args.cache_dir or True),
    )
    features = load_features(args.feature)
    unreadable = 0
    for position, (name, feature) in enumerate(features):
        if isinstance(feature, ScoringInputError):
            unreadable += 1
            if args.json:
                print(json.dumps({"name": name, "error": str(feature)}))
            else:
                print(f"feature {name}: cannot be checked: {feature}")
            continue
        if args.rescore and sys.stderr.isatty():
            with progress_bar(f"{name}", "claims") as progress:
                check = spot_check(feature, options, progress=progress)
        else:
            check = spot_check(feature, options)
        if args.json:
            print(json.dumps(check.to_dict(), indent=2 if len(features) == 1 else None, allow_nan=False))
        else:
            if position:
                print()
            _print_feature(check, args.evidence)
    return 1 if unreadable else 0
