"""The subject-model commands of ``python -m scoring``: activations, neurons, records, train-sae.

Every command reads units of kind ``--unit neuron`` (MLP neurons, or residual
dimensions with ``--kind resid``) or ``--unit latent`` (the latents of the SAE
folder ``--sae PATH``; without it, the SAE that ships with the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import scoring.subjects as subjects
from scoring.cli_support import Command, non_negative_int, positive_int, progress, progress_wanted
from scoring.errors import ScoringInputError
from scoring.progress import ProgressBar
from scoring.sampling import seed_argument


def _add_activations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", required=True, help="text to run the model on")
    _add_unit_options(parser)
    _add_index_option(parser, required=True)
    parser.add_argument("--json", action="store_true", help="print {tokens, values} as JSON")


def _add_neurons(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", required=True, help="text to run the model on")
    _add_unit_options(parser)
    parser.add_argument("--top", type=positive_int, default=10, help="how many units (default: 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _add_records(parser: argparse.ArgumentParser) -> None:
    _add_unit_options(parser)
    _add_index_option(parser, required=True)
    parser.add_argument(
        "--top", type=non_negative_int, default=20, help="top windows, near-duplicates merged (default: 20)"
    )
    parser.add_argument("--random", type=non_negative_int, default=10, help="random windows (default: 10)")
    parser.add_argument(
        "--quantiles", type=non_negative_int, default=0, help="also sample from N activation quantiles (default: 0)"
    )
    parser.add_argument("--per-quantile", type=positive_int, default=2, help="windows per quantile (default: 2)")
    parser.add_argument(
        "--dedup",
        choices=subjects.DEDUP_CHOICES,
        default="embedding",
        help="merge near-duplicate top windows: same peak token and context embeddings with cosine >= "
        f"{subjects.index.DUPLICATE_COSINE} (embedding), same context or shared words only "
        "(lexical), or keep them all (none) (default: embedding)",
    )
    parser.add_argument("--no-diverse", action="store_true", help="keep near-duplicate top windows (= --dedup none)")
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the random windows (default: 0)")
    parser.add_argument("--corpus", default=None, help="text file or folder of .txt (default: the bundled corpus)")
    parser.add_argument("--window-tokens", type=positive_int, default=64, help="tokens per window (default: 64)")
    parser.add_argument(
        "--max-windows",
        type=positive_int,
        default=None,
        help=f"windows indexed at most (default: {subjects.MAX_WINDOWS} for neurons, "
        f"{subjects.LATENT_MAX_WINDOWS} for latents)",
    )
    parser.add_argument("-o", "--output", required=True, help="feature JSON to write (Neuronpedia format)")


def _add_train_sae(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=subjects.DEFAULT_SUBJECT, help="subject model (default: gemma-3-270m)")
    parser.add_argument(
        "--layer", type=non_negative_int, required=True, help="layer whose activations are read, from 0"
    )
    parser.add_argument(
        "--kind", default="resid", choices=["resid", "mlp_out"], help="residual stream or MLP output (default: resid)"
    )
    parser.add_argument("--latents", type=positive_int, default=2048, help="number of latents (default: 2048)")
    parser.add_argument("--k", type=positive_int, default=32, help="latents kept per token (default: 32)")
    parser.add_argument(
        "--windows", type=positive_int, default=1024, help="training windows of 64 tokens (default: 1024)"
    )
    parser.add_argument(
        "--eval-windows", type=positive_int, default=64, help="held-out windows for the report (default: 64)"
    )
    parser.add_argument("--epochs", type=positive_int, default=6, help="passes over the training tokens (default: 6)")
    parser.add_argument(
        "--batch-tokens", type=positive_int, default=512, help="tokens per optimiser step (default: 512)"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default: 0.001)")
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the initialisation (default: 0)")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "float16"], help="saved weights (default: float32)"
    )
    parser.add_argument("--corpus", default=None, help="text file or folder of .txt (default: the bundled corpus)")
    parser.add_argument("--restart", action="store_true", help="ignore a checkpoint left by an interrupted run")
    parser.add_argument(
        "-o", "--output", required=True, help="folder to write cfg.json, sae_weights.safetensors to"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_unit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=subjects.DEFAULT_SUBJECT, help="subject model (default: gemma-3-270m)")
    parser.add_argument(
        "--layer",
        type=non_negative_int,
        default=None,
        help="layer number, from 0 (required for neurons; latents: default the SAE's layer)",
    )
    parser.add_argument(
        "--kind", default="mlp", choices=["mlp", "resid"], help="MLP neurons or residual dimensions (default: mlp)"
    )
    parser.add_argument(
        "--unit", default="neuron", choices=["neuron", "latent"], help="neurons (default) or SAE latents"
    )
    parser.add_argument("--sae", default=None, help="SAE folder in SAELens format (default: the bundled SAE)")


def _add_index_option(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--neuron",
        "--latent",
        dest="neuron",
        metavar="N",
        type=non_negative_int,
        required=required,
        help="neuron, dimension or latent number",
    )


def _resolve(
    args: argparse.Namespace,
    corpus: subjects.Corpus | None = None,
    *,
    window_tokens: int = subjects.WINDOW_TOKENS,
    max_windows: int | None = None,
) -> tuple[subjects.Units, int]:
    """The units of --unit (the neurons of --kind, or the latents of --sae) on `corpus`, and the layer, checked
    against each other.

    Everything that can be checked without the model is checked before it loads (a load can take a minute).
    """
    _check_subject_name(args.model)
    sizes: dict[str, Any] = {"window_tokens": window_tokens}
    if max_windows is not None:
        sizes["max_windows"] = max_windows
    if args.unit == "neuron":
        if args.sae:
            raise ScoringInputError("--sae reads latents: add --unit latent (or drop --sae for neurons)")
        if args.layer is None:
            raise ScoringInputError("give --layer L for neurons")
        subject = subjects.load_subject(args.model)
        subject.check_unit(args.layer, kind=args.kind)
        return subjects.Neurons(subject, corpus, kind=args.kind, **sizes), int(args.layer)
    path = args.sae or subjects.default_sae_path(args.model)
    if path is None:
        raise ScoringInputError(f"no SAE ships for {args.model}; give an SAE folder with --sae PATH")
    sae = subjects.load_sae(path)
    if args.layer is not None and args.layer != sae.config.layer:
        raise ScoringInputError(f"the SAE reads layer {sae.config.layer} ({sae.config.hook_name}), not {args.layer}")
    subject = subjects.load_subject(args.model)
    subjects.check_sae_fits(subject, sae)
    return subjects.Latents(subject, sae, corpus, **sizes), sae.config.layer


def _check_subject_name(name: str) -> None:
    if name not in subjects.SUBJECT_MODELS:
        raise ScoringInputError(f"unknown subject model {name!r}; choose one of {', '.join(subjects.SUBJECT_MODELS)}")


def _check_output_file(path: str) -> None:
    """The folder of an output file must exist before any long work starts."""
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ScoringInputError(f"cannot write {path}: the folder {folder} does not exist")


def _command_activations(args: argparse.Namespace) -> int:
    units, layer = _resolve(args)
    unit = units.unit(layer, args.neuron)
    captured = unit.activations(args.text)
    if args.json:
        print(json.dumps({"tokens": captured.tokens, "values": captured.values}, ensure_ascii=False))
        return 0
    print(unit.name)
    for token, value in zip(captured.tokens, captured.values, strict=True):
        print(f"{value:>10.4f}  {token!r}")
    return 0


def _command_neurons(args: argparse.Namespace) -> int:
    units, layer = _resolve(args)
    hits = subjects.rank_units(units.text_activations(args.text, layer), layer, args.top)
    if args.json:
        entries = [
            {
                "neuron": hit.index,
                "max_activation": hit.max_activation,
                "token_position": hit.token_position,
                "token": hit.token,
            }
            for hit in hits
        ]
        result = {"model": units.subject.name, "layer": layer, "kind": units.index_kind, "neurons": entries}
        if units.sae_name is not None:
            result["sae"] = units.sae_name
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{args.unit:>6}  {'max':>9}  token at max")
    for hit in hits:
        print(f"{hit.index:>6}  {hit.max_activation:>9.4f}  {hit.token!r} (position {hit.token_position})")
    return 0


def _command_records(args: argparse.Namespace) -> int:
    _check_output_file(args.output)
    corpus = subjects.load_corpus(args.corpus)
    units, layer = _resolve(args, corpus, window_tokens=args.window_tokens, max_windows=args.max_windows)
    unit = units.unit(layer, args.neuron)
    with progress(args, "indexing corpus windows", "window") as report:
        index = units.index(progress=report)
    records = unit.records(
        top=args.top,
        random=args.random,
        quantiles=args.quantiles,
        per_quantile=args.per_quantile,
        dedup="none" if args.no_diverse else args.dedup,
        seed=args.seed,
    )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(unit.feature_json(records), handle, ensure_ascii=False)
    top = [record for record in records if record.sample == "top"]
    merged = sum(record.duplicates for record in top)
    best = f"{top[0].max_value:.3f}" if top else "-"
    print(
        f"wrote {len(records)} windows ({len(top)} top, {merged} near-duplicates merged, max {best}) "
        f"of {index.n_windows} indexed to {args.output}",
        file=sys.stderr,
    )
    return 0


def _command_train_sae(args: argparse.Namespace) -> int:
    from scoring.subjects.train import TrainingSettings, train_sae

    _check_subject_name(args.model)
    _check_output_file(args.output)
    corpus = subjects.load_corpus(args.corpus)
    subject = subjects.load_subject(args.model)
    settings = TrainingSettings(
        layer=args.layer,
        kind=args.kind,
        d_sae=args.latents,
        k=args.k,
        windows=args.windows,
        eval_windows=args.eval_windows,
        epochs=args.epochs,
        batch_tokens=args.batch_tokens,
        learning_rate=args.learning_rate,
        seed=args.seed,
        dtype=args.dtype,
    )
    stages = {"capturing": ("capture", "window"), "epoch": ("train", "step")}
    bar = ProgressBar(*stages["capturing"])

    def on_progress(done: int, total: int, message: str) -> None:
        stage = message.split(" ")[0]
        description, unit = stages.get(stage, stages["epoch"])
        if description != bar.description:
            bar.restart(description, unit)
        bar.report(done, total, message)
        if stage == "epoch":
            bar.note(message.rpartition(",")[2].strip())  # the loss

    with bar:
        _, report = train_sae(
            subject,
            args.output,
            settings,
            corpus=corpus,
            progress=on_progress if progress_wanted(args) else None,
            resume=not args.restart,
        )
    if args.json:
        print(json.dumps(report.__dict__))
        return 0
    print(f"saved {args.output} (SAELens format: cfg.json, sae_weights.safetensors; report in training.json)")
    print(
        f"held-out {report.eval_tokens} tokens: explained variance {report.explained_variance:.3f}, "
        f"L0 {report.l0:.1f} of {report.d_sae} latents, dead {report.dead_share:.1%} "
        f"(not fired in the last epoch: {report.dead_share_train:.1%})"
    )
    print(
        f"the layer's MLP neurons on the same tokens: L0 {report.neuron_l0:.1f} of {report.neurons} "
        f"(never > 0: {report.neuron_dead_share:.1%})"
    )
    print(f"capture {report.capture_seconds:.0f} s, training {report.train_seconds:.0f} s")
    return 0


COMMANDS = (
    Command(
        "activations", "a subject model's per-token activations of one unit", _add_activations, _command_activations
    ),
    Command(
        "neurons", "the units of a layer that fire most on a text", _add_neurons, _command_neurons
    ),
    Command("records", "a feature file of one unit's top and sampled corpus windows", _add_records, _command_records),
    Command(
        "train-sae", "train a small top-k SAE on a subject model (CPU)", _add_train_sae,
        _command_train_sae,
    ),
)
"""The subject-model rows of `scoring.cli.COMMANDS`."""
