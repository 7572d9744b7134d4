"""The subject model at work: tokens, forward hooks and per-token activations of its units.

Forward hooks capture, per token:

- ``mlp``: an MLP neuron, the input of ``layers[i].mlp.down_proj``
  (``act(gate_proj(x)) * up_proj(x)``, ``intermediate_size`` of them per layer);
- ``resid``: a dimension of the residual stream after layer ``i`` (``hidden_size``);
- ``mlp_out``: the output of ``layers[i].mlp`` (``hidden_size``), a position SAEs are trained on.

How the model is obtained lives in `scoring.subjects.loading`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoring.cache import default_cache_directory
from scoring.errors import ScoringInputError
from scoring.userconfig import user_cache_root

logger = logging.getLogger(__name__)


KINDS = ("mlp", "resid")
"""Unit kinds that are indexed: mlp (MLP neurons, input of down_proj); resid (residual dimensions after a layer)."""

CAPTURE_KINDS = (*KINDS, "mlp_out")
"""Every position a hook can read; ``mlp_out`` (the MLP block's output) is where some SAEs read."""


def subjects_directory() -> Path:
    """Where activation indexes live: $SCORING_SUBJECT_DIR, else ``subjects`` in $SCORING_CACHE_DIR when that is
    set, else ``subjects`` in the platform's user cache folder (beside the simulation cache)."""
    configured = os.environ.get("SCORING_SUBJECT_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("SCORING_CACHE_DIR", "").strip():
        return default_cache_directory() / "subjects"
    return user_cache_root() / "subjects"


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

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "custom",
        threads: int | None = None,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        self.model = model.eval()
        self.threads = threads if threads is not None else default_threads()
        self.tokenizer = tokenizer
        self.name = name
        config = model.config
        self.n_layers = int(config.num_hidden_layers)
        self.widths = {
            "mlp": int(config.intermediate_size),
            "resid": int(config.hidden_size),
            "mlp_out": int(config.hidden_size),
        }
        self.bos_token_id = tokenizer.bos_token_id
        self._lock = lock or threading.Lock()
        """Held around every forward pass: the hooks must see only this model's own passes."""

    @property
    def layers(self) -> Any:
        return self.model.base_model.layers

    def width(self, kind: str) -> int:
        self._check_kind(kind)
        return self.widths[kind]

    def _check_kind(self, kind: str) -> None:
        if kind not in CAPTURE_KINDS:
            raise ScoringInputError(f"unknown unit kind {kind!r}; choose one of {', '.join(CAPTURE_KINDS)}")

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
            elif kind == "mlp_out":
                handles.append(
                    self.layers[layer].mlp.register_forward_hook(
                        lambda _module, _args, output, layer=layer: remember("mlp_out", layer, output)
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
