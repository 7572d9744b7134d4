"""Train a small top-k sparse autoencoder on a subject model's activations, on CPU.

The recipe is the top-k SAE of Gao et al. (2024), kept small so it runs in
minutes on 2 cores: the hooked activations of a few hundred corpus windows are
captured once (the slow part; saved in the checkpoint so a resumed run skips
it), scaled by one constant so their mean norm is sqrt(d_in), and the SAE is
trained with Adam on the MSE, plus an auxiliary loss that lets latents which
have not fired for a while reconstruct the residual error (so fewer die).
Decoder rows are kept at unit norm. The scale is folded into the saved weights,
so the saved SAE reads raw activations (SAELens format, `normalize_activations`
"none").

The report (`TrainingReport`) is measured on held-out windows: explained
variance, L0 and the dead-latent share, next to the same layer's MLP neurons'
sparsity, and saved beside the weights as ``training.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoring.errors import ScoringInputError
from scoring.shared_types import Progress
from scoring.subjects.corpus import WINDOW_TOKENS, Corpus, chunk_corpus, default_corpus
from scoring.subjects.model import SubjectModel
from scoring.subjects.sae import SAEConfig, SparseAutoencoder, hook_name_for

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
TRAINING_FILE = "training.json"


@dataclass
class TrainingSettings:
    """Everything that changes the trained SAE (a checkpoint is reused only when these match)."""

    layer: int
    """Layer whose activations are read."""
    kind: str = "resid"
    """Hook position: 'resid' (residual stream after the layer) or 'mlp_out' (the MLP block's output)."""
    d_sae: int = 2048
    """Number of latents."""
    k: int = 32
    """Latents kept per token."""
    windows: int = 1024
    """Training windows of `window_tokens` tokens."""
    eval_windows: int = 64
    """Held-out windows for the report."""
    window_tokens: int = WINDOW_TOKENS
    """Tokens per window."""
    epochs: int = 6
    """Passes over the training tokens."""
    batch_tokens: int = 512
    """Tokens per optimiser step."""
    learning_rate: float = 1e-3
    """Adam's step size."""
    aux_k: int = 256
    """Dead latents used by the auxiliary loss."""
    aux_coefficient: float = 1 / 32
    """Weight of the auxiliary loss."""
    dead_after_tokens: int = 20_000
    """A latent that has not fired for this many training tokens counts as dead for the auxiliary loss."""
    seed: int = 0
    """Seed of the split, the initialisation and the batch order."""
    dtype: str = "float32"
    """Saved weights: float32, or float16 for half the size (the report is measured on the rounded weights)."""
    corpus_fingerprint: str = ""
    """Which corpus (filled in by `train_sae`)."""
    model: str = ""
    """Which subject model (filled in by `train_sae`)."""


@dataclass
class TrainingReport:
    """How well the SAE reconstructs held-out activations, next to the MLP neurons' sparsity."""

    explained_variance: float
    """1 - sum of squared reconstruction errors / sum of squared deviations from the mean."""
    l0: float
    """Mean number of latents active (> 0) per token."""
    dead_share: float
    """Share of latents that never fire on the held-out tokens."""
    dead_share_train: float
    """Share of latents that never fired during the last training epoch."""
    neuron_l0: float
    """Mean number of the layer's MLP neurons with activation > 0 per token (of `neurons`)."""
    neuron_dead_share: float
    """Share of those neurons never > 0 on the held-out tokens."""
    neurons: int
    """MLP neurons in the layer."""
    d_sae: int
    """Latents in the SAE."""
    train_tokens: int
    """Tokens trained on (per epoch)."""
    eval_tokens: int
    """Held-out tokens the report is measured on."""
    capture_seconds: float
    """Time to capture the activations (0 when reused from the checkpoint)."""
    train_seconds: float
    """Time in the optimiser."""


def _capture(
    subject: SubjectModel,
    token_ids: np.ndarray,
    layer: int,
    kinds: tuple[str, ...],
    progress: Progress | None,
    done_before: int,
    total: int,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """(windows * tokens, width) per kind, BOS excluded."""
    skip = 1 if subject.bos_token_id is not None else 0
    parts: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    for start in range(0, len(token_ids), batch_size):
        batch = np.asarray([subject.with_bos(row.tolist()) for row in token_ids[start : start + batch_size]])
        captured = subject.capture_kinds(batch, [layer], kinds)
        for kind in kinds:
            values = captured[kind][:, 0, skip:, :]
            parts[kind].append(values.reshape(-1, values.shape[-1]))
        if progress:
            done = done_before + min(len(token_ids), start + batch_size)
            progress(done, total, f"capturing activations: {done}/{total} windows")
    return {kind: np.concatenate(chunks, axis=0) for kind, chunks in parts.items()}


def train_sae(
    subject: SubjectModel,
    output: str | Path,
    settings: TrainingSettings,
    *,
    corpus: Corpus | None = None,
    progress: Progress | None = None,
    resume: bool = True,
) -> tuple[SparseAutoencoder, TrainingReport]:
    """Train an SAE, save it to `output` (SAELens format plus training.json) and return it with its report.

    A checkpoint (captured activations, then the optimiser state after each
    epoch) is kept in ``output/checkpoint`` while training; with `resume` a
    matching checkpoint is continued, and it is deleted once the SAE is saved.
    """
    import torch

    if settings.kind not in ("resid", "mlp_out"):
        raise ScoringInputError("train an SAE on 'resid' (residual stream) or 'mlp_out' (MLP output)")
    subject.check_unit(settings.layer, kind=settings.kind)
    for name in ("d_sae", "k", "windows", "eval_windows", "epochs", "batch_tokens"):
        if getattr(settings, name) < 1:
            raise ScoringInputError(f"{name.replace('_', '-')} must be at least 1")
    if settings.k > settings.d_sae:
        raise ScoringInputError(f"k ({settings.k}) cannot exceed the number of latents ({settings.d_sae})")
    corpus = corpus or default_corpus()
    settings.corpus_fingerprint = corpus.fingerprint
    settings.model = subject.name
    home = Path(output).expanduser()
    checkpoint = home / CHECKPOINT
    settings_json = json.dumps(asdict(settings), sort_keys=True)
    if checkpoint.exists() and (
        not resume or (checkpoint / "settings.json").read_text(encoding="utf-8") != settings_json
    ):
        shutil.rmtree(checkpoint)
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "settings.json").write_text(settings_json, encoding="utf-8")

    capture_seconds = 0.0
    if (checkpoint / "train.npy").exists():
        train = np.load(checkpoint / "train.npy").astype(np.float32)
        held_out = np.load(checkpoint / "eval.npy").astype(np.float32)
        neurons = np.load(checkpoint / "eval_neurons.npy").astype(np.float32)
        logger.info("reusing %d captured training tokens from %s", len(train), checkpoint)
    else:
        windows = chunk_corpus(subject, corpus, settings.window_tokens, settings.windows + settings.eval_windows)
        n_windows = len(windows.token_ids)
        if n_windows < 2:
            raise ScoringInputError(f"corpus {corpus.name} has {n_windows} window(s); training needs at least 2")
        order = np.random.default_rng(settings.seed).permutation(n_windows)
        n_eval = max(1, min(settings.eval_windows, n_windows // 5))
        eval_ids, train_ids = windows.token_ids[order[:n_eval]], windows.token_ids[order[n_eval:]]
        started = time.perf_counter()
        train = _capture(subject, train_ids, settings.layer, (settings.kind,), progress, 0, n_windows)[settings.kind]
        evaluated = _capture(
            subject, eval_ids, settings.layer, (settings.kind, "mlp"), progress, len(train_ids), n_windows
        )
        held_out, neurons = evaluated[settings.kind], evaluated["mlp"]
        capture_seconds = time.perf_counter() - started
        np.save(checkpoint / "train.npy", train.astype(np.float16))
        np.save(checkpoint / "eval.npy", held_out.astype(np.float16))
        np.save(checkpoint / "eval_neurons.npy", neurons.astype(np.float16))
        # The stored copy is float16; train on what a resumed run would read, so both give the same SAE.
        train = train.astype(np.float16).astype(np.float32)
        held_out = held_out.astype(np.float16).astype(np.float32)
        neurons = neurons.astype(np.float16).astype(np.float32)

    d_in = train.shape[1]
    scale = float(np.sqrt(d_in) / np.mean(np.linalg.norm(train, axis=1)))
    generator = torch.Generator().manual_seed(settings.seed)
    data = torch.from_numpy(train * scale)

    decoder = torch.randn(settings.d_sae, d_in, generator=generator)
    decoder /= decoder.norm(dim=1, keepdim=True)
    parameters = {
        "W_dec": decoder.clone().requires_grad_(True),
        "W_enc": decoder.T.clone().contiguous().requires_grad_(True),
        "b_enc": torch.zeros(settings.d_sae, requires_grad=True),
        "b_dec": data.mean(dim=0).clone().requires_grad_(True),
    }
    optimizer = torch.optim.Adam(parameters.values(), lr=settings.learning_rate)
    since_fired = torch.zeros(settings.d_sae, dtype=torch.long)
    first_epoch = 0
    state_file = checkpoint / "state.pt"
    if state_file.exists():
        state = torch.load(state_file, weights_only=False)
        with torch.no_grad():
            for name, tensor in parameters.items():
                tensor.copy_(state["parameters"][name])
        optimizer.load_state_dict(state["optimizer"])
        since_fired = state["since_fired"]
        first_epoch = int(state["epoch"])
        generator.set_state(state["generator"])
        logger.info("resuming at epoch %d of %d", first_epoch + 1, settings.epochs)

    def encode_pre(x: Any) -> Any:
        return (x - parameters["b_dec"]) @ parameters["W_enc"] + parameters["b_enc"]

    def top_k(pre: Any, k: int) -> Any:
        values, indices = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))

    steps_per_epoch = max(1, len(data) // settings.batch_tokens)
    total_steps = steps_per_epoch * settings.epochs
    fired_last_epoch = torch.zeros(settings.d_sae, dtype=torch.bool)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(subject.threads)
    try:
        for epoch in range(first_epoch, settings.epochs):
            permutation = torch.randperm(len(data), generator=generator)
            fired_last_epoch.zero_()
            for step in range(steps_per_epoch):
                batch = data[permutation[step * settings.batch_tokens : (step + 1) * settings.batch_tokens]]
                pre = encode_pre(batch)
                latents = top_k(pre, settings.k)
                reconstruction = latents @ parameters["W_dec"] + parameters["b_dec"]
                error = batch - reconstruction
                variance = (batch - batch.mean(dim=0)).pow(2).sum(dim=-1).mean()
                loss = error.pow(2).sum(dim=-1).mean() / variance
                fired = (latents > 0).any(dim=0)
                fired_last_epoch |= fired
                since_fired += len(batch)
                since_fired[fired] = 0
                dead = since_fired > settings.dead_after_tokens
                if dead.any() and settings.aux_coefficient > 0:
                    masked = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
                    aux_latents = top_k(masked, min(settings.aux_k, int(dead.sum())))
                    aux_reconstruction = aux_latents @ parameters["W_dec"]
                    residual = error.detach()
                    aux_loss = (residual - aux_reconstruction).pow(2).sum(dim=-1).mean() / residual.pow(2).sum(
                        dim=-1
                    ).mean().clamp_min(1e-12)
                    loss = loss + settings.aux_coefficient * torch.nan_to_num(aux_loss, nan=0.0)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    parameters["W_dec"] /= parameters["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-12)
                if progress:
                    done = epoch * steps_per_epoch + step + 1
                    progress(done, total_steps, f"epoch {epoch + 1}/{settings.epochs}, loss {float(loss.detach()):.4f}")
            torch.save(
                {
                    "parameters": {name: tensor.detach() for name, tensor in parameters.items()},
                    "optimizer": optimizer.state_dict(),
                    "since_fired": since_fired,
                    "epoch": epoch + 1,
                    "generator": generator.get_state(),
                    "fired_last_epoch": fired_last_epoch,
                },
                state_file,
            )
    finally:
        torch.set_num_threads(previous_threads)
    train_seconds = time.perf_counter() - started
    if first_epoch >= settings.epochs and state_file.exists():
        fired_last_epoch = torch.load(state_file, weights_only=False)["fired_last_epoch"]

    weights = {name: tensor.detach().numpy().astype(np.float32) for name, tensor in parameters.items()}
    config = SAEConfig(
        d_in=d_in,
        d_sae=settings.d_sae,
        hook_name=hook_name_for(settings.kind, settings.layer),
        architecture="topk",
        k=settings.k,
        apply_b_dec_to_input=True,
        normalize_activations="none",
        model_name=subject.name,
        extra={"context_size": settings.window_tokens, "prepend_bos": True, "dataset_path": corpus.name},
    )
    # Fold the input scale into the weights: the saved SAE reads raw activations and gives the same latents.
    sae = SparseAutoencoder(
        config,
        weights["W_enc"] * scale,
        weights["b_enc"],
        weights["W_dec"] / scale,
        weights["b_dec"] / scale,
    ).rounded(settings.dtype)
    report = evaluate(sae, held_out, neurons)
    report.dead_share_train = float(1.0 - fired_last_epoch.float().mean())
    report.train_tokens = len(train)
    report.capture_seconds = round(capture_seconds, 1)
    report.train_seconds = round(train_seconds, 1)
    sae.save(home, settings.dtype)
    sae.source = str(home)
    (home / TRAINING_FILE).write_text(
        json.dumps({"settings": asdict(settings), "report": asdict(report), "corpus": corpus.name}, indent=2),
        encoding="utf-8",
    )
    shutil.rmtree(checkpoint, ignore_errors=True)
    return sae, report


def evaluate(sae: SparseAutoencoder, activations: np.ndarray, neurons: np.ndarray | None = None) -> TrainingReport:
    """Reconstruction quality of `sae` on (tokens, d_in) activations, and the neurons' sparsity when given."""
    latents = sae.encode(activations)
    reconstruction = sae.decode(latents)
    deviation = np.square(activations - activations.mean(axis=0)).sum()
    explained = 1.0 - float(np.square(activations - reconstruction).sum() / max(float(deviation), 1e-12))
    active = latents > 0
    neuron_active = neurons > 0 if neurons is not None else np.zeros((len(activations), 0), dtype=bool)
    return TrainingReport(
        explained_variance=round(explained, 4),
        l0=round(float(active.sum(axis=1).mean()), 2),
        dead_share=round(float(1.0 - active.any(axis=0).mean()), 4),
        dead_share_train=float("nan"),
        neuron_l0=round(float(neuron_active.sum(axis=1).mean()), 2) if neuron_active.shape[1] else float("nan"),
        neuron_dead_share=round(float(1.0 - neuron_active.any(axis=0).mean()), 4)
        if neuron_active.shape[1]
        else float("nan"),
        neurons=int(neuron_active.shape[1]),
        d_sae=sae.d_sae,
        train_tokens=0,
        eval_tokens=len(activations),
        capture_seconds=0.0,
        train_seconds=0.0,
    )
