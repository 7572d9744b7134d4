"""The activation index: every unit's maximum per corpus window, on disk, and the records built from it.

One pass over the corpus stores every unit's maximum per window
(`ActivationIndex`), so the top windows of any unit come back at once; the
per-token values of the chosen windows are then recomputed exactly.
`ActivationIndex.records` picks diverse top windows (near-duplicates dropped),
random and quantile samples, and `feature_json` writes them in the Neuronpedia
format `scoring.load_records` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scoring.errors import ScoringInputError
from scoring.shared_types import Progress
from scoring.subjects.corpus import MAX_WINDOWS, WINDOW_TOKENS, Corpus, Windows, chunk_corpus, default_corpus
from scoring.subjects.model import KINDS, SubjectModel, subjects_directory

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
DUPLICATE_COSINE = 0.9
"""Contexts of the same top token whose all-MiniLM-L6-v2 embeddings are at least this similar are merged."""
EMBED_CONTEXT = 8
"""Tokens either side of the peak that are embedded for the near-duplicate test."""

Embedder = Callable[[Sequence[str]], np.ndarray]
"""texts -> (len(texts), dim) embeddings."""


@dataclass
class NeuronRecord:
    """One corpus window with the per-token activations of one unit."""

    window: int
    """Window number in the index."""
    tokens: list[str]
    """Readable tokens of the window."""
    values: list[float]
    """The unit's activation per token."""
    sample: str
    """Why it was chosen: 'top', 'random' or 'quantile <q>'."""
    duplicates: int = 0
    """Near-duplicate top windows merged into this one (not shown separately)."""

    @property
    def max_value(self) -> float:
        return max(self.values) if self.values else 0.0


@dataclass
class ActivationIndex:
    """Every unit's maximum activation in every window of a corpus, kept on disk."""

    directory: Path
    """Folder holding meta.json, token_ids.npy, tokens.json and <kind>_max.npy."""
    meta: dict[str, Any]
    """model, corpus, corpus_fingerprint, window_tokens, n_windows, n_layers, widths, format."""
    token_ids: np.ndarray
    """int64 (windows, window_tokens)."""
    tokens: list[list[str]]
    """Readable tokens per window."""
    maxima: dict[str, np.ndarray] = field(default_factory=dict)
    """kind -> float32 (windows, layers, units): the unit's max over the window's tokens."""

    @property
    def n_windows(self) -> int:
        return int(self.token_ids.shape[0])

    def window_maxima(self, layer: int, index: int, kind: str = "mlp") -> np.ndarray:
        if kind not in self.maxima:
            raise ScoringInputError(f"unknown unit kind {kind!r}; choose one of {', '.join(KINDS)}")
        table = self.maxima[kind]
        if not 0 <= layer < table.shape[1]:
            raise ScoringInputError(f"layer {layer} does not exist: the index has layers 0..{table.shape[1] - 1}")
        if not 0 <= index < table.shape[2]:
            raise ScoringInputError(f"{kind} unit {index} does not exist: layer {layer} has {table.shape[2]}")
        return np.asarray(table[:, layer, index], dtype=np.float32)

    def ranked_windows(self, layer: int, index: int, kind: str = "mlp") -> list[int]:
        """All windows, the unit's strongest first (ties by window number, so the order is reproducible)."""
        maxima = self.window_maxima(layer, index, kind)
        return [int(window) for window in np.lexsort((np.arange(len(maxima)), -maxima))]

    def records(
        self,
        subject: SubjectModel,
        layer: int,
        index: int,
        *,
        kind: str = "mlp",
        top: int = 20,
        random: int = 10,
        quantiles: int = 0,
        per_quantile: int = 2,
        diverse: bool = True,
        embed: Embedder | None = None,
        seed: int = 0,
    ) -> list[NeuronRecord]:
        """Top windows (where the unit fires, near-duplicates merged and counted when `diverse`), then random
        and quantile samples.

        With `embed` (e.g. `embedding_similarity()`), windows whose top token is the
        same and whose contexts embed alike also count as near-duplicates
        (see `merge_near_duplicates` for the thresholds).

        Random and quantile windows are drawn, with `seed`, from the windows not
        already chosen; quantile q of `quantiles` spans that share of the windows
        ranked by the unit's maximum.
        """
        if min(top, random, quantiles, per_quantile) < 0:
            raise ScoringInputError("--top, --random, --quantiles and --per-quantile must not be negative")
        self.check_unit(subject, layer, index, kind)
        ranked = self.ranked_windows(layer, index, kind)
        computed: dict[int, np.ndarray] = {}

        def compute(windows: Sequence[int]) -> None:
            missing = [window for window in windows if window not in computed]
            if missing:
                computed.update(zip(missing, self._window_values(subject, missing, layer, index, kind), strict=True))

        merged: dict[int, int] = {}
        # A window where the unit never fires is not one of its top activations, however few windows fire.
        maxima = self.window_maxima(layer, index, kind)
        firing = [window for window in ranked if maxima[window] > 0]
        if diverse and top:
            chosen: list[int] = []
            examined = 0
            # Candidates are recomputed a chunk at a time until `top` windows survive de-duplication.
            while len(chosen) < top and examined < len(firing):
                examined = min(len(firing), examined + 2 * top + 8)
                compute(firing[:examined])
                peaks = {window: int(np.argmax(computed[window])) for window in firing[:examined]}
                groups = merge_near_duplicates(firing[:examined], self.tokens, peaks, top, embed=embed)
                chosen = [window for window, _ in groups]
                merged = dict(groups)
        else:
            chosen = firing[:top]
        plan = [(window, "top") for window in chosen]
        rng = np.random.default_rng(seed)
        chosen_set = set(chosen)
        rest = [window for window in ranked if window not in chosen_set]
        if random and rest:
            picks = rng.choice(len(rest), size=min(random, len(rest)), replace=False)
            plan += [(rest[int(i)], "random") for i in sorted(picks)]
        if quantiles:
            taken = {window for window, _ in plan}
            remaining = [window for window in ranked if window not in taken]
            for quantile, stratum in enumerate(np.array_split(np.asarray(remaining[::-1], dtype=int), quantiles)):
                if len(stratum) == 0:
                    continue
                picks = rng.choice(len(stratum), size=min(per_quantile, len(stratum)), replace=False)
                plan += [(int(stratum[int(i)]), f"quantile {quantile + 1}/{quantiles}") for i in sorted(picks)]
        compute([window for window, _ in plan])
        return [
            NeuronRecord(
                window,
                list(self.tokens[window]),
                [float(v) for v in computed[window]],
                sample,
                merged.get(window, 0) if sample == "top" else 0,
            )
            for window, sample in plan
        ]

    def check_unit(self, subject: SubjectModel, layer: int, index: int, kind: str) -> None:
        """Raise ScoringInputError when the unit does not exist."""
        subject.check_unit(layer, index, kind)

    def _window_values(
        self, subject: SubjectModel, windows: Sequence[int], layer: int, index: int, kind: str, batch_size: int = 16
    ) -> np.ndarray:
        """(len(windows), window_tokens): the unit's exact per-token values, recomputed up to `layer`."""
        self.check_unit(subject, layer, index, kind)
        rows = []
        skip = 1 if subject.bos_token_id is not None else 0
        for start in range(0, len(windows), batch_size):
            batch = [subject.with_bos(self.token_ids[w].tolist()) for w in windows[start : start + batch_size]]
            rows.append(self._capture(subject, np.asarray(batch), layer, kind)[:, skip:, index])
        width = self.token_ids.shape[1]
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, width), dtype=np.float32)

    def _capture(self, subject: SubjectModel, batch: np.ndarray, layer: int, kind: str) -> np.ndarray:
        """(batch, tokens) ids, BOS included -> (batch, tokens, units): every unit of `kind` at `layer`."""
        return subject.capture(batch, [layer], kind)[:, 0]


def window_density(window_maxima: np.ndarray) -> np.ndarray:
    """Share of the windows in which a unit fires (its window maximum > 0): (windows, ...) -> (...), one value
    per unit. The one definition of a unit's density: the Explore page, the search's filter and its
    specificity all read it."""
    return np.asarray((np.asarray(window_maxima) > 0).mean(axis=0), dtype=np.float64)


def merge_near_duplicates(
    ranked: Sequence[int],
    tokens: Sequence[Sequence[str]],
    peaks: dict[int, int],
    k: int,
    *,
    embed: Embedder | None = None,
    context: int = 3,
    max_overlap: float = 0.6,
    min_cosine: float = DUPLICATE_COSINE,
    embed_context: int = EMBED_CONTEXT,
) -> list[tuple[int, int]]:
    """The first `k` distinct windows of `ranked`, each with how many later near-duplicates were merged into it.

    A window is a near-duplicate of an earlier kept one when any of these holds:

    - the tokens around their peaks (`context` either side, case- and space-insensitive) are the same;
    - the share of distinct tokens they have in common (Jaccard) is at least `max_overlap`;
    - with `embed`: their peak tokens are the same word (case- and space-insensitive) and the texts
      around the peaks (`embed_context` tokens either side) have cosine similarity >= `min_cosine`.

    Windows without a known peak are compared by overlap only. Only windows ranked
    before the `k`-th kept one are examined, so a count says how many of the
    strongest windows repeated that one (examination stops at the first distinct window past `k`).
    """
    words_of = {window: [token.strip().lower() for token in tokens[window]] for window in ranked}
    vectors: dict[int, np.ndarray] = {}
    if embed is not None:
        texts = []
        with_peak = [window for window in ranked if window in peaks]
        for window in with_peak:
            peak = peaks[window]
            texts.append("".join(tokens[window][max(0, peak - embed_context) : peak + embed_context + 1]))
        if texts:
            matrix = np.asarray(embed(texts), dtype=np.float32)
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            vectors = dict(zip(with_peak, matrix, strict=True))
    kept: list[int] = []
    counts: dict[int, int] = {}
    contexts: dict[tuple[str, ...], int] = {}
    vocabularies: list[set[str]] = []
    for window in ranked:
        words = words_of[window]
        around = None
        if window in peaks:
            peak = peaks[window]
            around = tuple(words[max(0, peak - context) : peak + context + 1])
        vocabulary = {word for word in words if word}
        twin = contexts.get(around) if around is not None else None
        if twin is None:
            twin = next(
                (kept[i] for i, other in enumerate(vocabularies) if _jaccard(vocabulary, other) >= max_overlap), None
            )
        if twin is None and window in vectors:
            peak_word = words[peaks[window]]
            twin = next(
                (
                    other
                    for other in kept
                    if other in vectors
                    and words_of[other][peaks[other]] == peak_word
                    and float(vectors[window] @ vectors[other]) >= min_cosine
                ),
                None,
            )
        if twin is not None:
            counts[twin] += 1
            continue
        if len(kept) >= k:
            break
        kept.append(window)
        counts[window] = 0
        vocabularies.append(vocabulary)
        if around is not None:
            contexts.setdefault(around, window)
    return [(window, counts[window]) for window in kept]


def embedding_similarity() -> Embedder:
    """Embeds texts with the packaged all-MiniLM-L6-v2 (offline; loaded once per process)."""
    from scoring.simulators.embedding import load_model

    model = load_model()

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False))

    return embed


def _jaccard(first: set[str], second: set[str]) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 1.0


INDEXING_SECONDS_PER_WINDOW_LAYER = 0.031
"""Seconds one 64-token window takes per layer run when indexing Gemma 3 270M on 2 shared CPU cores
(measured: 128 windows up to layer 6 in 27.9 s, docs/explorer.md)."""


def indexing_seconds(subject: SubjectModel, n_windows: int, up_to_layer: int) -> str:
    """A rough time, in words, for indexing `n_windows` windows through layers 0..`up_to_layer` of `subject`."""
    del subject  # one subject model is shipped; its measured rate is the estimate
    seconds = INDEXING_SECONDS_PER_WINDOW_LAYER * n_windows * (up_to_layer + 1)
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {seconds / 60:.0f} min"


def index_directory(
    subject: SubjectModel, corpus: Corpus, window_tokens: int = WINDOW_TOKENS, max_windows: int = MAX_WINDOWS
) -> Path:
    """Where the index of this model, corpus and windowing lives (it exists when meta.json does)."""
    identity = [INDEX_FORMAT, subject.name, corpus.fingerprint, window_tokens, max_windows]
    return hashed_directory(subject, "index", identity)


def hashed_directory(subject: SubjectModel, folder: str, identity: list[Any]) -> Path:
    """``<subjects>/<model>/<folder>/<digest of identity>``: one folder per distinct index."""
    digest = hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode("utf-8")).hexdigest()[:16]
    return subjects_directory() / subject.name / folder / digest


def open_index(
    subject: SubjectModel,
    corpus: Corpus | None = None,
    *,
    window_tokens: int = WINDOW_TOKENS,
    max_windows: int = MAX_WINDOWS,
    directory: str | Path | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> ActivationIndex:
    """The activation index of `corpus` (default: `default_corpus()`), built with one pass when missing."""
    corpus = corpus or default_corpus()
    home = Path(directory) if directory is not None else index_directory(subject, corpus, window_tokens, max_windows)
    if (home / "meta.json").exists():
        return read_index(home)
    return build_index(
        subject,
        corpus,
        home,
        window_tokens=window_tokens,
        max_windows=max_windows,
        batch_size=batch_size,
        progress=progress,
    )


def build_index(
    subject: SubjectModel,
    corpus: Corpus,
    directory: str | Path,
    *,
    window_tokens: int = WINDOW_TOKENS,
    max_windows: int = MAX_WINDOWS,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> ActivationIndex:
    """One pass of the model over the corpus windows, storing each unit's per-window maximum."""
    windows = chunk_corpus(subject, corpus, window_tokens, max_windows)
    layers = list(range(subject.n_layers))
    n_windows = windows.token_ids.shape[0]
    maxima = {kind: np.zeros((n_windows, subject.n_layers, subject.widths[kind]), dtype=np.float32) for kind in KINDS}
    skip = 1 if subject.bos_token_id is not None else 0
    logger.info("indexing %d windows of %s with %s", n_windows, corpus.name, subject.name)
    for start, batch in window_batches(subject, windows, batch_size, progress, "indexing the corpus"):
        captured = subject.capture_kinds(batch, layers, KINDS)
        for kind in KINDS:
            maxima[kind][start : start + len(batch)] = captured[kind][:, :, skip:, :].max(axis=2)
    meta = {
        "format": INDEX_FORMAT,
        "model": subject.name,
        "corpus": corpus.name,
        "corpus_fingerprint": corpus.fingerprint,
        "window_tokens": window_tokens,
        "n_windows": n_windows,
        "n_layers": subject.n_layers,
        "widths": dict(subject.widths),
    }
    home = Path(directory)
    write_index_files(home, windows, maxima, meta)
    return read_index(home)


def window_batches(
    subject: SubjectModel, windows: Windows, batch_size: int, progress: Progress | None, what: str
) -> Iterator[tuple[int, np.ndarray]]:
    """(first window, (batch, tokens) ids with BOS) over all `windows`, reporting progress after each batch."""
    n_windows = windows.token_ids.shape[0]
    if progress:
        progress(0, n_windows, what)
    for start in range(0, n_windows, batch_size):
        rows = windows.token_ids[start : start + batch_size]
        yield start, np.asarray([subject.with_bos(row.tolist()) for row in rows])
        done = min(n_windows, start + batch_size)
        if progress:
            progress(done, n_windows, f"indexed {done}/{n_windows} windows")


def write_index_files(home: Path, windows: Windows, maxima: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write an index into `home` through a ``.partial`` folder, so a crash never leaves half an index."""
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "token_ids.npy", windows.token_ids)
    for kind, table in maxima.items():
        np.save(partial / f"{kind}_max.npy", table)
    (partial / "tokens.json").write_text(json.dumps(windows.tokens, ensure_ascii=False), encoding="utf-8")
    (partial / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)


def read_index_files(
    directory: str | Path, kinds: Sequence[str], index_format: int, what: str
) -> tuple[Path, dict[str, Any], np.ndarray, list[list[str]], dict[str, np.ndarray]]:
    """(home, meta, token_ids, tokens, maxima memory-mapped) of an index written by `write_index_files`."""
    home = Path(directory)
    meta = json.loads((home / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != index_format:
        raise ScoringInputError(f"the {what} in {home} has an old format; delete that folder to rebuild it")
    return (
        home,
        meta,
        np.load(home / "token_ids.npy"),
        json.loads((home / "tokens.json").read_text(encoding="utf-8")),
        {kind: np.load(home / f"{kind}_max.npy", mmap_mode="r") for kind in kinds},
    )


def read_index(directory: str | Path) -> ActivationIndex:
    """An index written by `build_index` (maxima memory-mapped, so opening is instant)."""
    return ActivationIndex(*read_index_files(directory, KINDS, INDEX_FORMAT, "index"))


def feature_json(
    records: Sequence[NeuronRecord],
    *,
    model: str,
    layer: int,
    index: int,
    kind: str = "mlp",
    corpus: str = "",
    sae: str | None = None,
) -> dict[str, Any]:
    """A Neuronpedia-style feature export of the records (read back by `scoring.load_records`).

    A latent's ``layer`` is ``<layer>-<sae name>``, as Neuronpedia names an SAE's
    layer; a neuron's is ``<layer>-<kind>``. ``duplicates`` counts the near-duplicate
    top windows merged into each one.
    """
    return {
        "modelId": model,
        "layer": f"{layer}-{sae}" if sae else f"{layer}-{kind}",
        "index": str(index),
        "unit": "latent" if sae else "neuron",
        "source": "scoring.subjects",
        "corpus": corpus,
        "activations": [
            {
                "tokens": record.tokens,
                "values": record.values,
                "maxValue": record.max_value,
                "maxValueTokenIndex": int(np.argmax(record.values)) if record.values else 0,
                "sample": record.sample,
                "window": record.window,
                "duplicates": record.duplicates,
            }
            for record in records
        ],
    }
