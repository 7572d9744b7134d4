"""The subject-model commands of ``python -m scoring``: activations, neurons, records, train-sae.

Every command reads units of kind ``--unit neuron`` (MLP neurons, or residual
dimensions with ``--kind resid``) or ``--unit latent`` (the latents of the SAE
folder ``--sae PATH``; without it, the SAE that ships with the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import scoring.subjects as subjects
from scoring.errors import ScoringInputError
from scoring.progress import progress_bar
from scoring.sampling import seed_argument
from scoring.subjects import latents as latent_units
from scoring.subjects.sae import SparseAutoencoder, load_sae

DEDUP_CHOICES = ("embedding", "lexical", "none")


def add_parsers(commands: Any) -> None:
    """Add the subject-model subcommands to the main parser's subparsers."""
    activations = commands.add_parser("activations", help="a subject model's per-token activations of one unit")
    activations.add_argument("--text", required=True, help="text to run the model on")
    _add_unit_options(activations)
    _add_index_option(activations, required=True)
    activations.add_argument("--json", action="store_true", help="print {tokens, values} as JSON")

    neurons = commands.add_parser("neurons", help="the neurons (or SAE latents) of a layer that fire most on a text")
    neurons.add_argument("--text", required=True, help="text to run the model on")
    _add_unit_options(neurons)
    neurons.add_argument("--top", type=int, default=10, help="how many units (default 10)")
    neurons.add_argument("--json", action="store_true", help="print one JSON object")

    records = commands.add_parser("records", help="a feature file of one unit's top and sampled corpus windows")
    _add_unit_options(records)
    _add_index_option(records, required=True)
    records.add_argument("--top", type=int, default=20, help="top windows, near-duplicates merged (default 20)")
    records.add_argument("--random", type=int, default=10, help="random windows (default 10)")
    records.add_argument("--quantiles", type=int, default=0, help="also sample from N activation quantiles")
    records.add_argument("--per-quantile", type=int, default=2, help="windows per quantile (default 2)")
    records.add_argument(
        "--dedup",
        choices=DEDUP_CHOICES,
        default="embedding",
        help="merge near-duplicate top windows: same peak token and context embeddings with cosine >= "
        f"{subjects.index.DUPLICATE_COSINE} (embedding, the default), same context or shared words only "
        "(lexical), or keep them all (none)",
    )
    records.add_argument("--no-diverse", action="store_true", help="keep near-duplicate top windows (= --dedup none)")
    records.add_argument("--seed", type=seed_argument, default=0)
    records.add_argument("--corpus", default=None, help="text file or folder of .txt (default: the bundled corpus)")
    records.add_argument("--window-tokens", type=int, default=64, help="tokens per window (default 64)")
    records.add_argument(
        "--max-windows",
        type=int,
        default=None,
        help=f"windows indexed at most (default {subjects.MAX_WINDOWS} for neurons, "
        f"{latent_units.LATENT_MAX_WINDOWS} for latents)",
    )
    records.add_argument("-o", "--output", required=True, help="feature JSON to write (Neuronpedia format)")

    train = commands.add_parser("train-sae", help="train a small top-k SAE on the subject model's activations (CPU)")
    train.add_argument("--model", default=subjects.DEFAULT_SUBJECT, help="subject model (default: gemma-3-270m)")
    train.add_argument("--layer", type=int, required=True, help="layer whose activations are read")
    train.add_argument("--kind", default="resid", choices=["resid", "mlp_out"], help="residual stream or MLP output")
    train.add_argument("--latents", type=int, default=2048, help="number of latents (default 2048)")
    train.add_argument("--k", type=int, default=32, help="latents kept per token (default 32)")
    train.add_argument("--windows", type=int, default=1024, help="training windows of 64 tokens (default 1024)")
    train.add_argument("--eval-windows", type=int, default=64, help="held-out windows for the report (default 64)")
    train.add_argument("--epochs", type=int, default=6, help="passes over the training tokens (default 6)")
    train.add_argument("--batch-tokens", type=int, default=512, help="tokens per optimiser step (default 512)")
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--seed", type=seed_argument, default=0)
    train.add_argument(
        "--dtype", default="float32", choices=["float32", "float16"], help="saved weights (default float32)"
    )
    train.add_argument("--corpus", default=None, help="text file or folder of .txt (default: the bundled corpus)")
    train.add_argument("--restart", action="store_true", help="ignore a checkpoint left by an interrupted run")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("-o", "--output", required=True, help="folder to write cfg.json, sae_weights.safetensors to")
    train.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_unit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=subjects.DEFAULT_SUBJECT, help="subject model (default: gemma-3-270m)")
    parser.add_argument("--layer", type=int, default=None, help="layer number, from 0 (latents: the SAE's layer)")
    parser.add_argument("--kind", default="mlp", choices=["mlp", "resid"], help="MLP neurons or residual dimensions")
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
        type=int,
        required=required,
        help="neuron, dimension or latent number",
    )


def _resolve(args: argparse.Namespace) -> tuple[subjects.SubjectModel, SparseAutoencoder | None, int]:
    """The subject model, the SAE (for --unit latent) and the layer, checked against each other."""
    subject = subjects.load_subject(args.model)
    if args.unit == "neuron":
        if args.sae:
            raise ScoringInputError("--sae reads latents: add --unit latent (or drop --sae for neurons)")
        if args.layer is None:
            raise ScoringInputError("give --layer L for neurons")
        subject.check_unit(args.layer, kind=args.kind)
        return subject, None, int(args.layer)
    path = args.sae or latent_units.default_sae_path(subject.name)
    if path is None:
        raise ScoringInputError(f"no SAE ships for {subject.name}; give an SAE folder with --sae PATH")
    sae = load_sae(path)
    latent_units.check_sae_fits(subject, sae)
    if args.layer is not None and args.layer != sae.config.layer:
        raise ScoringInputError(f"the SAE reads layer {sae.config.layer} ({sae.config.hook_name}), not {args.layer}")
    return subject, sae, sae.config.layer


def _command_activations(args: argparse.Namespace) -> int:
    subject, sae, layer = _resolve(args)
    if sae is None:
        subject.check_unit(layer, args.neuron, args.kind)
        captured = subject.activations(args.text, [layer], args.kind)
        label = f"{subject.name} layer {layer} {args.kind} {args.neuron}"
    else:
        captured = latent_units.latent_activations(subject, sae, args.text)
        label = f"{subject.name} {sae.config.hook_name} latent {args.neuron} ({sae.name})"
    values = captured.unit(layer, args.neuron)
    if args.json:
        print(json.dumps({"tokens": captured.tokens, "values": values}, ensure_ascii=False))
        return 0
    print(label)
    for token, value in zip(captured.tokens, values, strict=True):
        print(f"{value:>10.4f}  {token!r}")
    return 0


def _command_neurons(args: argparse.Namespace) -> int:
    subject, sae, layer = _resolve(args)
    if sae is None:
        _, hits = subject.top_units(args.text, layer, args.top, args.kind)
    else:
        captured = latent_units.latent_activations(subject, sae, args.text)
        hits = subjects.rank_units(captured, layer, args.top)
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
        result = {"model": subject.name, "layer": layer, "kind": "latent" if sae else args.kind, "neurons": entries}
        if sae is not None:
            result["sae"] = sae.name
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{args.unit:>6}  {'max':>9}  token at max")
    for hit in hits:
        print(f"{hit.index:>6}  {hit.max_activation:>9.4f}  {hit.token!r} (position {hit.token_position})")
    return 0


def _command_records(args: argparse.Namespace) -> int:
    subject, sae, layer = _resolve(args)
    corpus = subjects.load_corpus(args.corpus)
    with progress_bar("indexing corpus windows", "window") as report:
        open_windows: Callable[..., subjects.ActivationIndex]
        if sae is None:
            subject.check_unit(layer, args.neuron, args.kind)
            open_windows = partial(subjects.open_index, subject, corpus)
            default_windows, kind = subjects.MAX_WINDOWS, args.kind
        else:
            open_windows = partial(latent_units.open_latent_index, subject, sae, corpus)
            default_windows, kind = latent_units.LATENT_MAX_WINDOWS, latent_units.LATENT
        max_windows = args.max_windows or default_windows
        index = open_windows(window_tokens=args.window_tokens, max_windows=max_windows, progress=report)
    dedup = "none" if args.no_diverse else args.dedup
    records = index.records(
        subject,
        layer,
        args.neuron,
        kind=kind,
        top=args.top,
        random=args.random,
        quantiles=args.quantiles,
        per_quantile=args.per_quantile,
        diverse=dedup != "none",
        embed=subjects.index.embedding_similarity() if dedup == "embedding" else None,
        seed=args.seed,
    )
    feature = subjects.feature_json(
        records,
        model=subject.name,
        layer=layer,
        index=args.neuron,
        kind=kind,
        corpus=corpus.name,
        sae=sae.name if sae is not None else None,
    )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(feature, handle, ensure_ascii=False)
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
    corpus = subjects.load_corpus(args.corpus)
    bar: Any = None
    phase = [""]

    def progress(done: int, total: int, message: str) -> None:
        nonlocal bar
        from tqdm import tqdm

        current = message.split(":")[0].split(",")[0].split(" ")[0]
        if bar is None or current != phase[0]:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc="capture" if current == "capturing" else "train", file=sys.stderr)
            phase[0] = current
        bar.n = done
        bar.set_postfix_str(message.split(",")[-1].strip() if current == "epoch" else "")
        bar.refresh()

    _, report = train_sae(
        subject,
        args.output,
        settings,
        corpus=corpus,
        progress=None if args.no_progress else progress,
        resume=not args.restart,
    )
    if bar is not None:
        bar.close()
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


COMMANDS = {
    "activations": _command_activations,
    "neurons": _command_neurons,
    "records": _command_records,
    "train-sae": _command_train_sae,
}
