"""Corpora the subject model is run over, cut into fixed windows of tokens.

The default corpus ships in the repository (``data/world-factbook.jsonl.gz``,
public domain, see ``data/SOURCE.md``), so it works after ``pip install`` alone.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scoring.errors import ScoringInputError
from scoring.subjects.model import SubjectModel

WINDOW_TOKENS = 64
MAX_WINDOWS = 256
DEFAULT_CORPUS_FILE = Path(__file__).parent / "data" / "world-factbook.jsonl.gz"
DEFAULT_CORPUS_NAME = "world-factbook (CIA World Factbook country profiles, public domain)"


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


def default_corpus() -> Corpus:
    """The bundled corpus: prose of the CIA World Factbook's country profiles (public domain).

    261 documents (one per country or territory, ~2.3 MB): history, economy,
    government, environment, geography. See data/SOURCE.md for where it comes from.
    """
    with gzip.open(DEFAULT_CORPUS_FILE, "rt", encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    return Corpus(DEFAULT_CORPUS_NAME, [f"{entry['title']}\n\n{entry['text']}" for entry in entries])


def corpus_from_texts(texts: Sequence[str], name: str = "pasted texts") -> Corpus:
    """A corpus of texts a user typed or uploaded (blank ones dropped)."""
    documents = [text for text in texts if text and text.strip()]
    if not documents:
        raise ScoringInputError("no text to index: paste or upload at least one non-empty text")
    return Corpus(name, documents)


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
