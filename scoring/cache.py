"""The one on-disk cache of simulations, judgments and generated explanations (diskcache).

A key is the sha256 of the canonical JSON of everything that changes a
result: for a simulation the simulator name, model, prompt version, options,
explanation and the sequence's tokens; for a judgment (a yes/no answer) the
same simulator fields, the question's kind, prompt version, explanation and
content. Generated explanations share the store under keys of their own kind
(simulator, model, explain prompt version and options, seed, attempt and the
records shown), and so do the replies to protocol chat requests (simulator,
model, options, and the whole request: messages, parameters, run number). A
prompt edit bumps its version and so never serves a stale result. Only
successes are stored; an entry that cannot be read or does not fit is a miss,
never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import diskcache

from scoring.errors import ScoringInputError
from scoring.shared_types import (
    ChatJudge,
    ChatRequest,
    Explainer,
    ExplanationExample,
    Judge,
    JudgeQuestion,
    SequenceSimulation,
    Simulator,
)
from scoring.userconfig import user_cache_root

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _digest(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def simulation_key(simulator: Simulator, explanation: str, tokens: Sequence[str]) -> str:
    return _digest({
        "format": CACHE_FORMAT,
        "simulator": simulator.name,
        "model": simulator.model,
        "prompt_version": simulator.prompt_version,
        "options": simulator.options(),
        "explanation": explanation,
        "tokens": list(tokens),
    })


def judgment_key(judge: Judge, question: JudgeQuestion) -> str:
    return _digest({
        "format": CACHE_FORMAT,
        "entry": "judgment",
        "simulator": judge.name,
        "model": judge.model,
        "options": judge.options(),
        "kind": question.kind,
        "prompt_version": question.prompt_version,
        "explanation": question.explanation,
        "content": question.content,
    })


def chat_key(judge: ChatJudge, request: ChatRequest) -> str:
    """Key of one protocol chat reply: who answered, with which options, to which request (run included)."""
    return _digest(
        {
            "format": CACHE_FORMAT,
            "entry": "chat",
            "simulator": judge.name,
            "model": judge.model,
            "options": judge.options(),
            **request.key_fields(),
        }
    )


def explanation_key(
    explainer: Explainer, examples: Sequence[ExplanationExample], attempt: int, seed: int
) -> str:
    """Key of one generated explanation: who wrote it, how, and from which records."""
    return _digest(
        {
            "format": CACHE_FORMAT,
            "kind": "explanation",
            "simulator": explainer.name,
            "model": explainer.model,
            "prompt_version": explainer.explain_prompt_version,
            "options": explainer.explain_options(),
            "attempt": attempt,
            "seed": seed,
            "examples": [[list(example.tokens), list(example.activations)] for example in examples],
        }
    )


class SimulationCache:
    """Per-sequence simulation results on disk, safe across threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._store = diskcache.Cache(str(self.directory))

    def _read(self, key: str, again: str) -> Any:
        """The stored entry, or None when absent or unreadable (logged: "unreadable, <again> again")."""
        try:
            return self._store.get(key)
        except Exception as exc:  # a corrupt entry must never stop a score or a generation
            logger.warning("cache entry %s unreadable, %s again: %s", key[:12], again, exc)
            return None

    def _write(self, key: str, entry: dict[str, Any]) -> None:
        try:
            self._store.set(key, entry)
        except Exception as exc:  # a full or read-only disk loses the cache entry, not the result
            logger.warning("could not write cache entry %s: %s", key[:12], exc)

    def get(self, key: str, n_tokens: int) -> list[float] | None:
        """The stored values of a sequence of `n_tokens` tokens, or None (absent, unreadable or not fitting)."""
        simulation = self.get_simulation(key, n_tokens)
        return None if simulation is None else simulation.activations

    def get_simulation(self, key: str, n_tokens: int) -> SequenceSimulation | None:
        """The stored simulation (values and, when the simulator gave it, `applies`), or None."""
        entry = self._read(key, "simulating")
        if entry is None:
            return None
        values = entry.get("activations") if isinstance(entry, dict) else None
        applies = entry.get("applies") if isinstance(entry, dict) else None
        if (
            not isinstance(values, list)
            or len(values) != n_tokens
            or not all(_is_number(v) for v in values)
            or not (applies is None or (_is_number(applies) and 0.0 <= applies <= 1.0))
        ):
            logger.warning("cache entry %s does not fit its sequence, simulating again", key[:12])
            return None
        return SequenceSimulation([float(v) for v in values], applies=None if applies is None else float(applies))

    def set(
        self,
        key: str,
        activations: Sequence[float],
        meta: dict[str, Any] | None = None,
        applies: float | None = None,
    ) -> None:
        entry: dict[str, Any] = {"activations": [float(v) for v in activations], "meta": meta or {}}
        if applies is not None:
            entry["applies"] = float(applies)
        self._write(key, entry)

    def get_judgment(self, key: str) -> float | None:
        """The cached P(yes) of a question, or None (a miss) when absent or unusable."""
        entry = self._read(key, "judging")
        if entry is None:
            return None
        value = entry.get("p_yes") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            logger.warning("cache entry %s is not a probability, judging again", key[:12])
            return None
        return float(value)

    def set_judgment(self, key: str, p_yes: float, meta: dict[str, Any] | None = None) -> None:
        self._write(key, {"p_yes": float(p_yes), "meta": meta or {}})

    def get_text(self, key: str) -> str | None:
        """A stored generated explanation, or None (a miss) when absent or unreadable."""
        entry = self._read(key, "generating")
        text = entry.get("text") if isinstance(entry, dict) else None
        return text if isinstance(text, str) and text.strip() else None

    def set_text(self, key: str, text: str, meta: dict[str, Any] | None = None) -> None:
        self._write(key, {"text": text, "meta": meta or {}})

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()


_open_caches: dict[Path, SimulationCache] = {}
_open_lock = threading.Lock()


def default_cache_directory() -> Path:
    """``$SCORING_CACHE_DIR``, else ``simulations`` in the platform's user cache folder (`scoring.userconfig`)."""
    configured = os.environ.get("SCORING_CACHE_DIR", "").strip()
    return Path(configured).expanduser() if configured else user_cache_root() / "simulations"


def open_cache(directory: str | Path | None = None) -> SimulationCache:
    """The shared cache object for a directory (the default one when None)."""
    path = Path(directory).expanduser().resolve() if directory is not None else default_cache_directory().resolve()
    with _open_lock:
        if path not in _open_caches:
            _open_caches[path] = _new_cache(path)
        return _open_caches[path]


def _new_cache(path: Path) -> SimulationCache:
    """A cache in `path`; ScoringInputError says what to fix when the folder cannot hold one."""
    if path.exists() and not path.is_dir():
        raise ScoringInputError(f"the cache folder {path} is a file; name a folder (--cache-dir, SCORING_CACHE_DIR)")
    try:
        return SimulationCache(path)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScoringInputError(
            f"cannot keep a cache in {path} ({reason}); name a folder you may write to (--cache-dir, "
            "SCORING_CACHE_DIR), or turn the cache off (--no-cache)"
        ) from None

