"""The packaged Qwen GGUF run as released (Q4_K_M) by llama.cpp's CPU kernels, with many sequences at once.

On a CPU without native bfloat16 (most laptops and cloud machines: AVX2) torch runs
the 1.5B simulator in float32 or int8 at 18 tokens per core-second; ik_llama.cpp's
quantized kernels (the `ik-llama-cpp-python` wheel) read the GGUF file itself at about
twice that, in a third of the memory, with no conversion and no copy of the weights
on disk (docs/local-simulator.md has the measurements). Its logits agree with the
float32 model's (KL 0.0009 nats per token on the list prompts), where the int8 path
reaches 0.018.

`LlamaModel` holds one llama.cpp context whose key/value cells are shared between
*sequences*: a prompt's opening is run once into one sequence and copied (no memory
is copied, cells gain a sequence id) into one sequence per row. `LlamaRows` gives
`scoring.simulators.forward` the same operations as the torch path: run tails,
append a token per row, drop rows, and teacher-force continuations. Only one set
of rows is live per model: each `run_rows` frees the rows of the call before (callers
hold the model's lock for the whole of a call).

The binding is the wheel's ctypes module (pinned in requirements.txt; its contract is
checked by the model tests).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring.simulators.forward import Rows, continuations_to_extend

if TYPE_CHECKING:
    from scoring.models import LoadedModel

logger = logging.getLogger(__name__)

CONTEXT_TOKENS = 24576
"""Key/value cells of the context (about 0.7 GB in float16 for the 1.5B model): openings plus every live row."""

SEQUENCES = 160
"""Sequence ids of the context: kept openings and stems, rows and teacher-forced copies."""

BATCH_TOKENS = 2048
"""Tokens per decode call (longer batches are split)."""

UBATCH_TOKENS = 512
"""Tokens llama.cpp computes at once inside a decode call."""

OPENINGS_KEPT = 8
"""Openings (worked examples, rule) kept in their own sequences between calls, least recently used dropped."""

STEMS_KEPT = 64
"""Stems (opening + a text, `forward.run_rows`) kept between calls, least recently used dropped: a feature's texts
run once and serve every explanation scored on them."""

_bindings: Any = None
_log_callback: Any = None


def bindings() -> Any:
    """The ik_llama.cpp ctypes module, loaded once; raises ImportError or OSError when it cannot run here."""
    global _bindings, _log_callback
    if _bindings is None:
        from ik_llama_cpp import _ctypes_api as api

        lib = api._lib
        lib.llama_kv_cache_seq_cp.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_int32,
        ]
        lib.llama_kv_cache_seq_cp.restype = None
        lib.llama_kv_cache_seq_rm.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
        lib.llama_kv_cache_seq_rm.restype = ctypes.c_bool
        callback_type = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        lib.llama_log_set.argtypes = [callback_type, ctypes.c_void_p]
        lib.llama_log_set.restype = None

        def forward_log(level: int, text: bytes | None, _data: Any) -> None:
            if text and level in (2, 3):  # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR
                logger.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

        _log_callback = callback_type(forward_log)
        lib.llama_log_set(_log_callback, None)
        api.llama_backend_init()
        _bindings = api
    return _bindings


def available() -> bool:
    """True when the ik_llama.cpp runtime is installed and its library loads on this machine."""
    try:
        bindings()
    except (ImportError, OSError, AttributeError) as error:
        logger.debug("llama.cpp runtime not available: %s", error)
        return False
    return True


def default_threads() -> int:
    """$SCORING_THREADS when set, else every CPU this process may use."""
    configured = os.environ.get("SCORING_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LlamaModel:
    """One GGUF model and its context; call everything with the model's lock held."""

    runs_rows = True
    """Marks the runtime for `scoring.simulators.forward`."""

    def __init__(self, gguf: Path, threads: int | None = None, context: int = CONTEXT_TOKENS) -> None:
        api = bindings()
        self.api = api
        self.lib = api._lib
        params = api.llama_model_default_params()
        params.n_gpu_layers = 0
        # No "repack" (Q4_K rows interleaved at load): up to 18% faster prompts in a quiet micro-benchmark and
        # no faster ranking of 5 explanations (96.7 s against 95.8 s), but next-token KL against float32 rose
        # from 0.0009 to 0.015 nats (docs/local-simulator.md).
        params.repack_tensors = False
        self.model = api.llama_model_load_from_file(str(gguf).encode(), params)
        if not self.model:
            raise OSError(f"llama.cpp could not load {gguf}")
        threads = threads or default_threads()
        settings = api.llama_context_default_params()
        settings.n_ctx = context
        settings.n_batch = BATCH_TOKENS
        settings.n_ubatch = UBATCH_TOKENS
        settings.n_seq_max = SEQUENCES
        settings.n_threads = threads
        settings.n_threads_batch = threads
        settings.flash_attn = False
        self.context = api.llama_init_from_model(self.model, settings)
        if not self.context:
            raise OSError(f"llama.cpp could not make a context of {context} tokens for {gguf}")
        self.vocab_size = int(api.llama_vocab_n_tokens(api.llama_model_get_vocab(self.model)))
        self.capacity = context
        self.threads = threads
        self._free = list(range(SEQUENCES - 1, -1, -1))
        self._openings: OrderedDict[tuple[int, ...], tuple[int, int]] = OrderedDict()
        """Kept openings: tokens -> (sequence id, cells)."""
        self._stems: OrderedDict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, int]] = OrderedDict()
        """Kept stems: (opening tokens, stem tokens) -> (sequence id, the stem's own cells)."""
        self._live: list[int] = []
        """Sequences of the current rows and their copies (freed by the next `run_rows`)."""
        self._live_cells = 0

    # ------------------------------------------------------------------ sequences and cells

    def _take(self, live: bool = True) -> int:
        """A free sequence id; `live` ones are freed by the next `reserve` (openings are not)."""
        if not self._free:
            raise ValueError(f"more than {SEQUENCES} sequences at once; run fewer rows per call")
        sequence = self._free.pop()
        if live:
            self._live.append(sequence)
        return sequence

    def _drop(self, sequence: int) -> None:
        self.lib.llama_kv_cache_seq_rm(self.context, sequence, -1, -1)
        if sequence in self._live:
            self._live.remove(sequence)
        self._free.append(sequence)

    def _drop_oldest(self, kept: OrderedDict[Any, tuple[int, int]]) -> None:
        """Drop the least recently used entry of `kept` (openings or stems) and free its sequence."""
        _, (sequence, _) = kept.popitem(last=False)
        self._drop(sequence)

    def _copy(self, source: int, target: int) -> None:
        self.lib.llama_kv_cache_seq_cp(self.context, source, target, -1, -1)

    def used_cells(self) -> int:
        kept = sum(cells for _, cells in self._openings.values()) + sum(cells for _, cells in self._stems.values())
        return kept + self._live_cells

    def row_budget(self, opening: int) -> int:
        """Cells one call's rows may take beside an opening of `opening` tokens (half the context: the other
        half keeps openings between calls)."""
        return self.capacity // 2 - opening

    def reserve(self, cells: int) -> None:
        """Make room for `cells` more cells: frees earlier rows, then kept openings, or says what is too long."""
        for sequence in list(self._live):
            self._drop(sequence)
        self._live_cells = 0
        room = self.capacity - 2 * UBATCH_TOKENS  # a batch needs contiguous free cells: keep a margin
        while self._stems and self.used_cells() + cells > room:
            self._drop_oldest(self._stems)
        while self._openings and self.used_cells() + cells > room:
            self._drop_oldest(self._openings)
        if self.used_cells() + cells > room:
            raise ValueError(
                f"this call needs {cells} model tokens of working memory but the local model holds "
                f"{self.capacity}; score fewer or shorter sequences at once"
            )
        self._live_cells = cells

    # ------------------------------------------------------------------ decoding

    def decode(
        self, tokens: Sequence[int], positions: Sequence[int], sequences: Sequence[int], wanted: Sequence[bool]
    ) -> np.ndarray:
        """Run tokens (each in its sequence at its position); the logits of the `wanted` ones, [n, vocab] float32."""
        api = self.api
        outputs: list[np.ndarray] = []
        for start in range(0, len(tokens), BATCH_TOKENS):
            stop = min(len(tokens), start + BATCH_TOKENS)
            count = stop - start
            batch = api.llama_batch_init(count, 0, 1)
            try:
                batch.n_tokens = count
                marks = []
                for offset in range(count):
                    index = start + offset
                    batch.token[offset] = int(tokens[index])
                    batch.pos[offset] = int(positions[index])
                    batch.n_seq_id[offset] = 1
                    batch.seq_id[offset][0] = int(sequences[index])
                    batch.logits[offset] = 1 if wanted[index] else 0
                    if wanted[index]:
                        marks.append(offset)
                code = api.llama_decode(self.context, batch)
                if code != 0:
                    raise RuntimeError(f"llama.cpp could not run the batch (code {code}); the context may be full")
                for offset in marks:
                    pointer = api.llama_get_logits_ith(self.context, offset)
                    row = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))
                    outputs.append(np.ctypeslib.as_array(row, shape=(self.vocab_size,)).copy())
            finally:
                api.llama_batch_free(batch)
        if not outputs:
            return np.zeros((0, self.vocab_size), dtype=np.float32)
        return np.stack(outputs)

    def opening(self, segments: Sequence[Sequence[int]]) -> tuple[int, int, int]:
        """The sequence holding the joined `segments`, its length and the tokens run now (kept in an LRU).

        Each segment boundary is kept too, so openings that share their first segments
        (the worked examples) run only what differs (the rule).
        """
        done: tuple[int, ...] = ()
        found: tuple[int, int] | None = None
        run = 0
        for segment in segments:
            key = done + tuple(segment)
            kept = self._openings.get(key)
            if kept is None:
                sequence = self._take(live=False)
                if found is not None:
                    self._copy(found[0], sequence)
                positions = range(len(done), len(key))
                self.decode(list(segment), list(positions), [sequence] * len(segment), [False] * len(segment))
                run += len(segment)
                kept = (sequence, len(segment))
                self._openings[key] = kept
                while len(self._openings) > OPENINGS_KEPT:
                    self._drop_oldest(self._openings)
            else:
                self._openings.move_to_end(key)
            found, done = (kept[0], len(key)), key
        if found is None:
            raise ValueError("empty opening")
        return found[0], found[1], run

    def stems(
        self, opening: tuple[int, ...], source: int | None, stems: Sequence[Sequence[int]]
    ) -> tuple[list[int], int]:
        """The sequence holding opening + each stem (kept in an LRU, new ones run as one batch) and the tokens run.

        Call `trim_stems` once the rows have copied them.
        """
        found: dict[tuple[int, ...], int] = {}
        tokens: list[int] = []
        positions: list[int] = []
        owners: list[int] = []
        for stem in stems:
            key = tuple(stem)
            if key in found:
                continue
            kept = self._stems.get((opening, key))
            if kept is not None:
                self._stems.move_to_end((opening, key))
                found[key] = kept[0]
                continue
            sequence = self._take(live=False)
            if source is not None:
                self._copy(source, sequence)
            self._stems[(opening, key)] = (sequence, len(key))
            found[key] = sequence
            tokens.extend(key)
            positions.extend(range(len(opening), len(opening) + len(key)))
            owners.extend([sequence] * len(key))
        self.decode(tokens, positions, owners, [False] * len(tokens))
        return [found[tuple(stem)] for stem in stems], len(tokens)

    def forget(self) -> None:
        """Drop every kept opening and stem and the live rows (the next call runs everything again)."""
        for kept in (self._openings, self._stems):
            while kept:
                self._drop_oldest(kept)
        for sequence in list(self._live):
            self._drop(sequence)
        self._live_cells = 0

    def trim_stems(self) -> None:
        """Drop the least recently used stems beyond `STEMS_KEPT` (rows that copied one keep their cells)."""
        while len(self._stems) > STEMS_KEPT:
            self._drop_oldest(self._stems)


@dataclass
class LlamaRows(Rows):
    """`forward.Rows` on a `LlamaModel`: each row is a sequence of the context (`cache` and `mask` unused)."""

    sequences: list[int] = field(default_factory=list)


def run_rows(
    lm: LoadedModel,
    shared: Sequence[Sequence[int]],
    tails: Sequence[Sequence[int]],
    extension: int,
    stems: Sequence[Sequence[int]] | None = None,
) -> LlamaRows:
    """The opening once, then every tail in its own sequence, as one batch; `extension` cells kept per row.

    With `stems` (a leading part of each tail), opening + stem is kept between calls
    (`LlamaModel.stems`) and each row runs only the rest of its tail.
    """
    model: LlamaModel = lm.model
    segments = [list(segment) for segment in shared if segment]
    opening = sum(len(segment) for segment in segments)
    model.reserve(opening + sum(len(tail) + extension for tail in tails))
    source, length, run = model.opening(segments) if segments else (None, 0, 0)
    if length != opening:
        raise RuntimeError("kept opening has the wrong length")
    lm.tokens_read += run
    starts = [0] * len(tails)
    sources: list[int | None] = [source] * len(tails)
    if stems is not None:
        opening_key = tuple(token for segment in segments for token in segment)
        stem_sequences, stem_run = model.stems(opening_key, source, stems)
        lm.tokens_read += stem_run
        sources = list(stem_sequences)
        starts = [len(stem) for stem in stems]
    sequences = []
    tokens: list[int] = []
    positions: list[int] = []
    owners: list[int] = []
    wanted: list[bool] = []
    for tail, start, origin in zip(tails, starts, sources, strict=True):
        sequence = model._take()
        if origin is not None:
            model._copy(origin, sequence)
        sequences.append(sequence)
        rest = tail[start:]
        tokens.extend(rest)
        positions.extend(range(opening + start, opening + len(tail)))
        owners.extend([sequence] * len(rest))
        wanted.extend([False] * (len(rest) - 1) + [True])
    logits = model.decode(tokens, positions, owners, wanted)
    model.trim_stems()
    lm.tokens_read += len(tokens)
    ends = np.array([opening + len(tail) for tail in tails], dtype=np.int64)
    return LlamaRows(lm, None, None, ends, logits, sequences)


def step(rows: LlamaRows, tokens: Sequence[int]) -> np.ndarray:
    """Append one token to each row; the next-token logits of every row."""
    model: LlamaModel = rows.lm.model
    rows.last_logits = model.decode(list(tokens), rows.next_position.tolist(), rows.sequences, [True] * len(tokens))
    rows.next_position = rows.next_position + 1
    rows.lm.tokens_read += len(tokens)
    return rows.last_logits


def keep_rows(rows: LlamaRows, indices: Sequence[int]) -> None:
    """Drop every row but `indices` (in that order); the dropped rows' cells are freed."""
    chosen = list(indices)
    kept = set(chosen)
    for position, sequence in enumerate(rows.sequences):
        if position not in kept:
            rows.lm.model._drop(sequence)
    rows.sequences = [rows.sequences[index] for index in chosen]
    rows.next_position = rows.next_position[chosen]
    rows.last_logits = rows.last_logits[chosen]


def forced_logprobs(
    rows: LlamaRows, continuations: Sequence[tuple[int, Sequence[int]]], per_pass: int, stop_below: float | None
) -> list[list[float]]:
    """log p of each continuation's tokens after its row (see `forward.forced_logprobs`)."""
    model: LlamaModel = rows.lm.model
    first = _log_softmax_rows(rows.last_logits)
    results: list[list[float]] = [[float(first[row, ids[0]])] for row, ids in continuations]
    longer = continuations_to_extend(continuations, results, stop_below)
    for start in range(0, len(longer), per_pass):
        chunk = longer[start : start + per_pass]
        copies: list[int] = []
        tokens: list[int] = []
        positions: list[int] = []
        owners: list[int] = []
        for index in chunk:
            row, ids = continuations[index]
            copy = model._take()
            model._copy(rows.sequences[row], copy)
            copies.append(copy)
            base = int(rows.next_position[row])
            tokens.extend(ids[:-1])
            positions.extend(range(base, base + len(ids) - 1))
            owners.extend([copy] * (len(ids) - 1))
        logits = _log_softmax_rows(model.decode(tokens, positions, owners, [True] * len(tokens)))
        rows.lm.tokens_read += len(tokens)
        offset = 0
        for index in chunk:
            targets = continuations[index][1][1:]
            results[index].extend(float(logits[offset + place, token]) for place, token in enumerate(targets))
            offset += len(targets)
        for copy in copies:
            model._drop(copy)
    return results


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    values = logits.astype(np.float64)
    top = values.max(axis=1, keepdims=True)
    return values - top - np.log(np.exp(values - top).sum(axis=1, keepdims=True))
