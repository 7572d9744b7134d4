"""One neuron or SAE latent as an object that knows its corpus density, its records and its activations.

A face that shows or exports units (the Explore page, the ``activations``,
``neurons`` and ``records`` commands) should not have to know that a latent is
read by encoding the residual stream with an SAE while a neuron is read by a
hook, or that their corpus indexes live apart. Two kinds of `Units` hold that
knowledge:

- `Neurons`: the MLP neurons (or residual dimensions) of a subject model, every
  layer, indexed together (`open_index`);
- `Latents`: the latents of one SAE on a subject model, at the SAE's layer
  (`open_latent_index`).

Both know their layers and width, where their corpus index lives, whether it is
built, what building it costs and how to run the model on a text.
``units.unit(layer, number)`` gives one `Unit`, which answers the same
questions whatever its kind:

    units = Latents(subject, sae, corpus)            # or Neurons(subject, corpus)
    unit = units.unit(sae.config.layer, 1347)
    unit.density()                                   # share of corpus windows where it fires
    records = unit.records(top=20, random=10)        # diverse top windows + samples
    feature = unit.feature_json(records)             # Neuronpedia format, read by scoring.load_records
    unit.activations("My favorite color is red.")    # tokens and per-token values
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import scoring.subjects.index as index_module
from scoring.errors import ScoringInputError
from scoring.shared_types import Progress
from scoring.subjects.corpus import MAX_WINDOWS, WINDOW_TOKENS, Corpus, default_corpus
from scoring.subjects.index import (
    ActivationIndex,
    NeuronRecord,
    feature_json,
    index_directory,
    indexing_seconds,
    open_index,
    window_density,
)
from scoring.subjects.latents import (
    LATENT,
    LATENT_MAX_WINDOWS,
    Twin,
    latent_activations,
    latent_index_directory,
    open_latent_index,
    twin_neurons,
)
from scoring.subjects.model import SubjectModel, TextActivations
from scoring.subjects.sae import SparseAutoencoder

DEDUP_CHOICES = ("embedding", "lexical", "none")
"""How near-duplicate top windows are merged: same peak token and similar context embeddings (MiniLM), shared
context or words only, or not at all (see `ActivationIndex.records`)."""


@dataclass(frozen=True)
class UnitActivations:
    """One unit's activation on every token of a text."""

    tokens: list[str]
    """Readable tokens of the text (``"".join(tokens)`` is the text)."""
    values: list[float]
    """The unit's activation per token."""

    @property
    def peak(self) -> float:
        """The largest activation (0.0 for a text without tokens)."""
        return max(self.values, default=0.0)


@dataclass(frozen=True)
class CorpusStats:
    """A unit on the indexed corpus windows."""

    window_maxima: np.ndarray
    """float32 (windows,): the unit's maximum in each window."""
    density: float
    """Share of the windows where it fires (maximum > 0)."""
    peak: float
    """Its largest window maximum."""
    windows: int
    """Windows indexed."""


class Units(ABC):
    """The units of one kind on a subject model, with the corpus their index spans."""

    kind: str
    """The search's name for this kind: ``neuron`` or ``latent`` (`SearchHit.unit`)."""

    def __init__(
        self,
        subject: SubjectModel,
        corpus: Corpus | None = None,
        *,
        window_tokens: int = WINDOW_TOKENS,
        max_windows: int,
    ) -> None:
        self.subject = subject
        self._corpus = corpus
        self.window_tokens = window_tokens
        self.max_windows = max_windows
        self._index: ActivationIndex | None = None

    @property
    def corpus(self) -> Corpus:
        """The corpus the index spans (the bundled one unless another was given)."""
        if self._corpus is None:
            self._corpus = default_corpus()
        return self._corpus

    # ----------------------------------------------------------------- what each kind says

    @property
    @abstractmethod
    def label(self) -> str:
        """Their name in a list of kinds: 'MLP neurons', 'SAE latents'."""

    @property
    @abstractmethod
    def described(self) -> str:
        """Them in a sentence: 'the neurons', "the SAE's latents"."""

    @property
    @abstractmethod
    def noun(self) -> str:
        """One of them: 'neuron', 'latent'."""

    @property
    @abstractmethod
    def index_kind(self) -> str:
        """Their kind in the corpus index and in feature files: ``mlp``, ``resid`` or ``latent``."""

    @property
    @abstractmethod
    def layers(self) -> range:
        """The layers they are read at."""

    @property
    @abstractmethod
    def width(self) -> int:
        """How many there are per layer."""

    @property
    @abstractmethod
    def indexed_up_to(self) -> int:
        """The last layer that building their index runs the model through."""

    @property
    def sae_name(self) -> str | None:
        """The SAE they belong to (None for neurons)."""
        return None

    @property
    def has_twins(self) -> bool:
        """Whether `Unit.twins` can name neurons whose weights point the same way."""
        return False

    @abstractmethod
    def index_directory(self) -> Path:
        """Where their corpus index lives (built when it holds meta.json)."""

    @abstractmethod
    def _open_index(self, progress: Progress | None) -> ActivationIndex:
        """Their corpus index, read, or built first when missing (`index` keeps it)."""

    @abstractmethod
    def text_activations(self, text: str, layer: int) -> TextActivations:
        """Every one of them at `layer`, per token of `text`."""

    @abstractmethod
    def title(self, layer: int, number: int) -> str:
        """A heading for one of them: 'Neuron #3 of layer 6', 'Latent #1347 of <SAE>'."""

    @abstractmethod
    def name(self, layer: int, number: int) -> str:
        """One of them named in full, model included (a command's heading)."""

    def twins(self, number: int, top: int) -> list[Twin]:
        """The neurons whose output weights point the way unit `number` writes (only latents have them)."""
        raise ScoringInputError(f"only SAE latents have weight twins, not {self.described}")

    # ----------------------------------------------------------------- the same for every kind

    def index_exists(self) -> bool:
        """Whether their corpus index is built (`index` then opens it at once instead of building it)."""
        return (self.index_directory() / "meta.json").exists()

    def index(self, progress: Progress | None = None) -> ActivationIndex:
        """Their corpus index, built with one pass of the model (reported to `progress`) when missing."""
        if self._index is None:
            self._index = self._open_index(progress)
        return self._index

    def indexing_seconds(self) -> str:
        """A rough time, in words, that building their index takes (on the 2 CPU cores it was measured on)."""
        return indexing_seconds(self.subject, self.max_windows, self.indexed_up_to)

    def unit(self, layer: int, number: int) -> Unit:
        """One of them; ScoringInputError when there is no such unit."""
        self._check(layer, number)
        return Unit(self, layer, number)

    @abstractmethod
    def _check(self, layer: int, number: int | None) -> None:
        """Raise ScoringInputError when `layer` (and unit `number`) does not exist."""


class Neurons(Units):
    """The MLP neurons (``kind="mlp"``) or residual dimensions (``kind="resid"``) of a subject model."""

    kind = "neuron"

    def __init__(
        self,
        subject: SubjectModel,
        corpus: Corpus | None = None,
        *,
        kind: str = "mlp",
        window_tokens: int = WINDOW_TOKENS,
        max_windows: int = MAX_WINDOWS,
    ) -> None:
        subject.width(kind)  # an unknown kind is refused here, before any index is opened
        super().__init__(subject, corpus, window_tokens=window_tokens, max_windows=max_windows)
        self._kind = kind

    @property
    def label(self) -> str:
        return "MLP neurons" if self._kind == "mlp" else "residual dimensions"

    @property
    def described(self) -> str:
        return "the neurons" if self._kind == "mlp" else "the residual dimensions"

    @property
    def noun(self) -> str:
        return "neuron" if self._kind == "mlp" else "residual dimension"

    @property
    def index_kind(self) -> str:
        return self._kind

    @property
    def layers(self) -> range:
        return range(self.subject.n_layers)

    @property
    def width(self) -> int:
        return self.subject.width(self._kind)

    @property
    def indexed_up_to(self) -> int:
        return self.subject.n_layers - 1

    def _check(self, layer: int, number: int | None) -> None:
        self.subject.check_unit(layer, number, self._kind)

    def index_directory(self) -> Path:
        return index_directory(self.subject, self.corpus, self.window_tokens, self.max_windows)

    def _open_index(self, progress: Progress | None) -> ActivationIndex:
        return open_index(
            self.subject,
            self.corpus,
            window_tokens=self.window_tokens,
            max_windows=self.max_windows,
            progress=progress,
        )

    def text_activations(self, text: str, layer: int) -> TextActivations:
        return self.subject.activations(text, [layer], self._kind)

    def title(self, layer: int, number: int) -> str:
        return f"{self.noun.capitalize()} #{number} of layer {layer}"

    def name(self, layer: int, number: int) -> str:
        return f"{self.subject.name} layer {layer} {self._kind} {number}"


class Latents(Units):
    """The latents of one SAE on a subject model (read at the SAE's hook, so at one layer)."""

    kind = "latent"
    label = "SAE latents"
    described = "the SAE's latents"
    noun = "latent"
    index_kind = LATENT

    def __init__(
        self,
        subject: SubjectModel,
        sae: SparseAutoencoder,
        corpus: Corpus | None = None,
        *,
        window_tokens: int = WINDOW_TOKENS,
        max_windows: int = LATENT_MAX_WINDOWS,
    ) -> None:
        super().__init__(subject, corpus, window_tokens=window_tokens, max_windows=max_windows)
        self.sae = sae

    @property
    def layers(self) -> range:
        return range(self.sae.config.layer, self.sae.config.layer + 1)

    @property
    def width(self) -> int:
        return self.sae.d_sae

    @property
    def indexed_up_to(self) -> int:
        return self.sae.config.layer

    @property
    def sae_name(self) -> str:
        return self.sae.name

    @property
    def has_twins(self) -> bool:
        return True

    def _check(self, layer: int, number: int | None) -> None:
        if layer != self.sae.config.layer:
            raise ScoringInputError(f"the SAE {self.sae.name} reads layer {self.sae.config.layer}, not layer {layer}")
        if number is not None and not 0 <= number < self.width:
            raise ScoringInputError(
                f"latent {number} does not exist: the SAE has {self.width} (0..{self.width - 1})"
            )

    def index_directory(self) -> Path:
        return latent_index_directory(self.subject, self.sae, self.corpus, self.window_tokens, self.max_windows)

    def _open_index(self, progress: Progress | None) -> ActivationIndex:
        return open_latent_index(
            self.subject,
            self.sae,
            self.corpus,
            window_tokens=self.window_tokens,
            max_windows=self.max_windows,
            progress=progress,
        )

    def text_activations(self, text: str, layer: int) -> TextActivations:
        self._check(layer, None)
        return latent_activations(self.subject, self.sae, text)

    def title(self, layer: int, number: int) -> str:
        return f"Latent #{number} of {self.sae.name}"

    def name(self, layer: int, number: int) -> str:
        return f"{self.subject.name} {self.sae.config.hook_name} latent {number} ({self.sae.name})"

    def twins(self, number: int, top: int) -> list[Twin]:
        return twin_neurons(self.subject, self.sae, number, top=top)


@dataclass(frozen=True)
class Unit:
    """One neuron or latent: its density and window maxima on the corpus, its records, its activations."""

    units: Units
    """The kind it is one of (with the subject model, the SAE if any, and the corpus)."""
    layer: int
    """The layer it is read at."""
    number: int
    """Its number within the layer (or the SAE)."""

    @property
    def title(self) -> str:
        """'Neuron #3 of layer 6', 'Latent #1347 of <SAE>'."""
        return self.units.title(self.layer, self.number)

    @property
    def name(self) -> str:
        """Named in full, model included: 'gemma-3-270m layer 6 mlp 3'."""
        return self.units.name(self.layer, self.number)

    @property
    def identity(self) -> tuple[str, str, str, str, int, int]:
        """Everything its records and feature file depend on, for a cache key: (index folder, corpus name, SAE
        name or '', kind, layer, number). The folder's name hashes the model, the SAE's weights, the corpus's
        texts and the windowing; the names are written into the feature file."""
        units = self.units
        return (
            str(units.index_directory()),
            units.corpus.name,
            units.sae_name or "",
            units.index_kind,
            self.layer,
            self.number,
        )

    def window_maxima(self) -> np.ndarray:
        """float32 (windows,): its maximum in each corpus window (the index is built first when missing)."""
        return self.units.index().window_maxima(self.layer, self.number, self.units.index_kind)

    def density(self) -> float:
        """Share of the corpus windows where it fires (maximum > 0)."""
        return float(window_density(self.window_maxima()))

    def corpus_stats(self) -> CorpusStats:
        """Its window maxima with their density, peak and count."""
        maxima = self.window_maxima()
        peak = float(maxima.max()) if maxima.size else 0.0
        return CorpusStats(maxima, float(window_density(maxima)), peak, int(maxima.size))

    def records(
        self,
        *,
        top: int = 20,
        random: int = 10,
        quantiles: int = 0,
        per_quantile: int = 2,
        dedup: str = "embedding",
        seed: int = 0,
    ) -> list[NeuronRecord]:
        """Its top corpus windows (near-duplicates merged as `dedup` says, see `DEDUP_CHOICES`), then `random`
        and `quantile` samples, with exact per-token values (`ActivationIndex.records`)."""
        if dedup not in DEDUP_CHOICES:
            raise ScoringInputError(f"dedup must be one of {', '.join(DEDUP_CHOICES)}, got {dedup!r}")
        return self.units.index().records(
            self.units.subject,
            self.layer,
            self.number,
            kind=self.units.index_kind,
            top=top,
            random=random,
            quantiles=quantiles,
            per_quantile=per_quantile,
            diverse=dedup != "none",
            embed=index_module.embedding_similarity() if dedup == "embedding" else None,
            seed=seed,
        )

    def feature_json(self, records: list[NeuronRecord]) -> dict[str, Any]:
        """Its `records` as a Neuronpedia-format feature (`feature_json`), read back by `scoring.load_records`."""
        return feature_json(
            records,
            model=self.units.subject.name,
            layer=self.layer,
            index=self.number,
            kind=self.units.index_kind,
            corpus=self.units.corpus.name,
            sae=self.units.sae_name,
        )

    def activations(self, text: str) -> UnitActivations:
        """Its activation on every token of `text`."""
        captured = self.units.text_activations(text, self.layer)
        return UnitActivations(captured.tokens, captured.unit(self.layer, self.number))

    def twins(self, top: int = 10) -> list[Twin]:
        """The neurons whose output weights point the way this latent's decoder row does (`twin_neurons`); only
        latents have them (`Units.has_twins`)."""
        return self.units.twins(self.number, top)


def units_to_explore(
    subject: SubjectModel,
    corpus: Corpus | None = None,
    sae: SparseAutoencoder | None = None,
    *,
    latent_windows: int = LATENT_MAX_WINDOWS,
) -> dict[str, Units]:
    """The kinds of unit of `subject` by their `Units.kind`: the SAE's latents first when there is an SAE, then the
    MLP neurons (the default window counts)."""
    kinds: list[Units] = [Neurons(subject, corpus)]
    if sae is not None:
        kinds.insert(0, Latents(subject, sae, corpus, max_windows=latent_windows))
    return {units.kind: units for units in kinds}
