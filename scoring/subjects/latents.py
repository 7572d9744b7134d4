"""SAE latents as units: per-token activations, a corpus index, text search and weight "twins".

A latent is read by capturing the SAE's hook position (`SparseAutoencoder.config`
names it) and encoding. `LatentIndex` is an `ActivationIndex` over one SAE, so a
latent's records (top, random, quantile, near-duplicates merged) come from the
same code as a neuron's and load through `scoring.load_records`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scoring.errors import ScoringInputError
from scoring.shared_types import Progress
from scoring.subjects.corpus import WINDOW_TOKENS, Corpus, chunk_corpus
from scoring.subjects.index import (
    ActivationIndex,
    hashed_directory,
    read_index_files,
    window_batches,
    write_index_files,
)
from scoring.subjects.model import SubjectModel, TextActivations
from scoring.subjects.sae import WEIGHTS_FILE, SparseAutoencoder

logger = logging.getLogger(__name__)

LATENT = "latent"
"""The unit kind of SAE latents (next to ``mlp`` and ``resid``)."""
LATENT_INDEX_FORMAT = 1
LATENT_MAX_WINDOWS = 512
"""Windows a latent index spans by default (only one layer is run, so more than a neuron index)."""


def check_sae_fits(subject: SubjectModel, sae: SparseAutoencoder) -> None:
    """Raise ScoringInputError when the SAE reads a position or width the model does not have."""
    kind, layer = sae.config.hook
    subject.check_unit(layer, kind=kind)
    if subject.width(kind) != sae.config.d_in:
        raise ScoringInputError(
            f"the SAE reads {sae.config.d_in}-wide activations at {sae.config.hook_name}, "
            f"but {subject.name} has {subject.width(kind)} there; was it trained on another model?"
        )


def capture_latents(subject: SubjectModel, sae: SparseAutoencoder, token_ids: np.ndarray) -> np.ndarray:
    """(batch, tokens) ids, BOS included by the caller -> (batch, tokens, d_sae) latent activations."""
    check_sae_fits(subject, sae)
    kind, layer = sae.config.hook
    hooked = subject.capture(token_ids, [layer], kind)[:, 0]
    return sae.encode(hooked)


def latent_activations(subject: SubjectModel, sae: SparseAutoencoder, text: str) -> TextActivations:
    """Per-token activations of every latent on `text` (kind ``latent``, one layer: the SAE's)."""
    if not text:
        raise ScoringInputError("the text is empty; type some text to run the model on")
    tokenized = subject.tokenize(text)
    ids = np.asarray([subject.with_bos(tokenized.token_ids)])
    skip = 1 if subject.bos_token_id is not None else 0
    latents = capture_latents(subject, sae, ids)[:, skip:, :]
    return TextActivations(tokenized.tokens, tokenized.token_ids, [sae.config.layer], LATENT, latents)


_fingerprints: dict[tuple[str, int, int], str] = {}


def sae_fingerprint(sae: SparseAutoencoder) -> str:
    """Hash of the SAE's config and weights (so an index is rebuilt when either changes).

    A loaded SAE's weights file is hashed once per (path, size, mtime), since the
    page asks for the fingerprint on every rerun.
    """
    config = json.dumps(sae.config.to_dict(), sort_keys=True).encode("utf-8")
    weights = Path(sae.source) / WEIGHTS_FILE if sae.source else None
    if weights is not None and weights.is_file():
        status = weights.stat()
        key = (f"{weights.resolve()}\x00{hashlib.sha256(config).hexdigest()}", status.st_size, status.st_mtime_ns)
        if key not in _fingerprints:
            digest = hashlib.sha256(config)
            digest.update(weights.read_bytes())
            _fingerprints[key] = digest.hexdigest()[:16]
        return _fingerprints[key]
    digest = hashlib.sha256(config)
    for array in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class LatentIndex(ActivationIndex):
    """Every latent's maximum per corpus window for one SAE; `records` works as for neurons (kind ``latent``)."""

    sae: SparseAutoencoder | None = None
    """The SAE whose latents are indexed."""

    @property
    def layer(self) -> int:
        return int(self.meta["layer"])

    def _sae(self) -> SparseAutoencoder:
        if self.sae is None:
            raise ScoringInputError("this latent index was opened without its SAE")
        return self.sae

    def window_maxima(self, layer: int, index: int, kind: str = LATENT) -> np.ndarray:
        if kind != LATENT:
            raise ScoringInputError(f"a latent index holds only kind {LATENT!r}, not {kind!r}")
        if layer != self.layer:
            raise ScoringInputError(f"this SAE reads layer {self.layer}, not layer {layer}")
        table = self.maxima[LATENT]
        if not 0 <= index < table.shape[1]:
            raise ScoringInputError(
                f"latent {index} does not exist: the SAE has {table.shape[1]} (0..{table.shape[1] - 1})"
            )
        return np.asarray(table[:, index], dtype=np.float32)

    def check_unit(self, subject: SubjectModel, layer: int, index: int, kind: str) -> None:
        self.window_maxima(layer, index, kind)

    def _capture(self, subject: SubjectModel, batch: np.ndarray, layer: int, kind: str) -> np.ndarray:
        return capture_latents(subject, self._sae(), batch)


def latent_index_directory(
    subject: SubjectModel,
    sae: SparseAutoencoder,
    corpus: Corpus,
    window_tokens: int = WINDOW_TOKENS,
    max_windows: int = LATENT_MAX_WINDOWS,
) -> Path:
    """Where the latent index of this model, SAE, corpus and windowing lives."""
    identity = [LATENT_INDEX_FORMAT, subject.name, sae_fingerprint(sae), corpus.fingerprint, window_tokens, max_windows]
    return hashed_directory(subject, "latent-index", identity)


def open_latent_index(
    subject: SubjectModel,
    sae: SparseAutoencoder,
    corpus: Corpus,
    *,
    window_tokens: int = WINDOW_TOKENS,
    max_windows: int = LATENT_MAX_WINDOWS,
    directory: str | Path | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> LatentIndex:
    """The latent index of `corpus` for `sae`, built with one pass (up to the SAE's layer) when missing."""
    home = (
        Path(directory)
        if directory is not None
        else latent_index_directory(subject, sae, corpus, window_tokens, max_windows)
    )
    if not (home / "meta.json").exists():
        _build_latent_index(subject, sae, corpus, home, window_tokens, max_windows, batch_size, progress)
    return read_latent_index(home, sae)


def _build_latent_index(
    subject: SubjectModel,
    sae: SparseAutoencoder,
    corpus: Corpus,
    home: Path,
    window_tokens: int,
    max_windows: int,
    batch_size: int,
    progress: Progress | None,
) -> None:
    check_sae_fits(subject, sae)
    windows = chunk_corpus(subject, corpus, window_tokens, max_windows)
    n_windows = windows.token_ids.shape[0]
    maxima = np.zeros((n_windows, sae.d_sae), dtype=np.float32)
    skip = 1 if subject.bos_token_id is not None else 0
    logger.info("indexing %d windows of %s with the SAE %s", n_windows, corpus.name, sae.name)
    batches = window_batches(subject, windows, batch_size, progress, "indexing the corpus for the SAE's latents")
    for start, batch in batches:
        maxima[start : start + len(batch)] = capture_latents(subject, sae, batch)[:, skip:, :].max(axis=1)
    meta = {
        "format": LATENT_INDEX_FORMAT,
        "model": subject.name,
        "sae": sae.name,
        "sae_fingerprint": sae_fingerprint(sae),
        "hook_name": sae.config.hook_name,
        "layer": sae.config.layer,
        "d_sae": sae.d_sae,
        "corpus": corpus.name,
        "corpus_fingerprint": corpus.fingerprint,
        "window_tokens": window_tokens,
        "n_windows": n_windows,
    }
    write_index_files(home, windows, {LATENT: maxima}, meta)


def read_latent_index(directory: str | Path, sae: SparseAutoencoder | None = None) -> LatentIndex:
    """A latent index written by `open_latent_index` (maxima memory-mapped)."""
    return LatentIndex(*read_index_files(directory, [LATENT], LATENT_INDEX_FORMAT, "latent index"), sae=sae)


# --------------------------------------------------------------------------- twins


@dataclass
class Twin:
    """An MLP neuron whose output weights point the way a latent's decoder direction does."""

    layer: int
    """The neuron's layer."""
    index: int
    """The neuron's number."""
    cosine: float
    """Cosine between the latent's decoder row and the neuron's column of ``down_proj``."""


def twin_neurons(
    subject: SubjectModel, sae: SparseAutoencoder, latent: int, *, layers: Sequence[int] | None = None, top: int = 10
) -> list[Twin]:
    """The neurons nearest to a latent by weight cosine.

    For an SAE on the residual stream or MLP output, a latent's direction is its
    decoder row (d_model); a neuron writes to the residual stream along its
    column of ``down_proj``, so the two live in one space. By default the
    neurons of the SAE's layer and every earlier layer are compared (the ones
    that can have written what the SAE reads). Signs matter: a neuron that
    writes the opposite direction has cosine near -1 and ranks last.
    """
    import torch

    kind, sae_layer = sae.config.hook
    if kind not in ("resid", "mlp_out"):
        raise ScoringInputError("twins need an SAE on the residual stream or MLP output (d_model directions)")
    if not 0 <= latent < sae.d_sae:
        raise ScoringInputError(f"latent {latent} does not exist: the SAE has {sae.d_sae} (0..{sae.d_sae - 1})")
    check_sae_fits(subject, sae)
    chosen = list(range(sae_layer + 1)) if layers is None else [int(layer) for layer in layers]
    direction = sae.W_dec[latent] / max(float(np.linalg.norm(sae.W_dec[latent])), 1e-12)
    twins: list[Twin] = []
    for layer in chosen:
        subject.check_unit(layer)
        with torch.no_grad():
            columns = subject.layers[layer].mlp.down_proj.weight.detach().to(torch.float32).numpy()
        norms = np.maximum(np.linalg.norm(columns, axis=0), 1e-12)
        cosines = (direction @ columns) / norms
        best = np.argsort(-cosines, kind="stable")[:top]
        twins += [Twin(layer, int(i), float(cosines[i])) for i in best]
    twins.sort(key=lambda twin: (-twin.cosine, twin.layer, twin.index))
    return twins[:top]


DEFAULT_SAE_DIRECTORY = Path(__file__).parent / "data" / "sae" / "gemma-3-270m-L6-resid-topk"
"""The SAE that ships with the repository (trained by `train-sae`, see its training.json)."""


def default_sae_path(subject_name: str = "gemma-3-270m") -> Path | None:
    """The shipped SAE for a subject model, or None when there is none."""
    if subject_name == "gemma-3-270m" and (DEFAULT_SAE_DIRECTORY / WEIGHTS_FILE).is_file():
        return DEFAULT_SAE_DIRECTORY
    return None
