"""Batched forward passes for the embedded models: a shared prompt prefix, then many tails at once.

Prompts of the local simulator, judge and explainer share long openings (worked
examples, the rule). The opening is run once and its key/value cache reused; the
tails (one per sequence or question) run as one padded batch on top of it, padding
masked out and position ids counted per row, so each row sees exactly its own
prompt. Further tokens (teacher-forced word pieces, greedy answer lists) extend the
rows the same way. Call everything with the model's lock held.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from scoring.models import LoadedModel

MAX_PROMPT_TOKENS = 4096
"""Longest prompt a row may have; longer ones fail their sequence with a reason."""

PREFIX_CACHE_ENTRIES = 8
"""Shared openings whose key/value caches are kept per model (an LRU)."""

_prefix_caches: dict[int, OrderedDict[tuple[int, ...], Any]] = {}


def _torch() -> Any:
    import torch

    return torch


def _prefix_cache(lm: LoadedModel, segments: Sequence[Sequence[int]]) -> Any:
    """The key/value cache of the joined `segments` (batch of one), kept in a small LRU.

    Each segment boundary is cached too, so prompts that share their first segments
    (the worked examples) run only what differs (the rule).
    """
    torch = _torch()
    caches = _prefix_caches.setdefault(id(lm), OrderedDict())
    cache = None
    done: tuple[int, ...] = ()
    for segment in segments:
        key = done + tuple(segment)
        found = caches.get(key)
        if found is None:
            start = len(done)
            base = copy.deepcopy(cache) if cache is not None else None
            ids = torch.tensor([list(segment)], device=lm.device)
            with torch.no_grad():
                output = lm.model(
                    input_ids=ids,
                    position_ids=torch.arange(start, start + len(segment), device=lm.device)[None, :],
                    cache=base,
                    use_cache=True,
                    logits_to_keep=1,
                )
            lm.tokens_read += len(segment)
            found = output.cache
            caches[key] = found
            while len(caches) > PREFIX_CACHE_ENTRIES:
                caches.popitem(last=False)
        else:
            caches.move_to_end(key)
        cache, done = found, key
    return cache


@dataclass
class Rows:
    """A batch of prompts that share an opening, run up to their ends, ready to be extended."""

    lm: LoadedModel
    cache: Any
    """Key/value cache of every row (opening + padded tails + extensions)."""
    mask: Any
    """Attention mask over the cached columns, [rows, columns] (0 on padding)."""
    next_position: Any
    """Position id of each row's next token, [rows]."""
    last_logits: Any
    """Next-token logits at each row's end, [rows, vocab] float32."""


def run_rows(
    lm: LoadedModel,
    shared: Sequence[Sequence[int]],
    tails: Sequence[Sequence[int]],
    stems: Sequence[Sequence[int]] | None = None,
) -> Rows:
    """Run the shared opening + each tail (one row per tail) and return the rows with their last logits.

    `shared` is the opening in segments whose caches are kept separately (see `_prefix_cache`);
    empty segments are skipped. `stems`, when given, holds a leading part of each tail that
    later calls are likely to repeat (a text scored against several explanations): the
    llama.cpp runtime keeps the cells of the opening + stem between calls, so a repeated
    stem is not run again. The result is the same with or without `stems`.
    Tails are right-aligned (left-padded after the opening), so every row ends in the
    last column and one logits row per prompt is computed, not one per token.
    """
    torch = _torch()
    segments = [list(segment) for segment in shared if segment]
    opening = [token for segment in segments for token in segment]
    for tail in tails:
        if len(opening) + len(tail) > MAX_PROMPT_TOKENS:
            raise ValueError(
                f"the prompt needs {len(opening) + len(tail)} model tokens but at most {MAX_PROMPT_TOKENS} "
                "are allowed; use shorter sequences"
            )
        if not tail:
            raise ValueError("empty prompt tail")
    if stems is not None:
        if len(stems) != len(tails):
            raise ValueError(f"{len(stems)} stems for {len(tails)} tails")
        pairs = zip(stems, tails, strict=True)
        if any(len(stem) >= len(tail) or list(tail[: len(stem)]) != list(stem) for stem, tail in pairs):
            raise ValueError("each stem must be a proper leading part of its tail")
    if _on_llama(lm):
        from scoring import llama_runtime

        return llama_runtime.run_rows(lm, segments, tails, ROW_EXTENSION_TOKENS, stems)
    rows = len(tails)
    width = max(len(tail) for tail in tails)
    pad = int(lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0)
    ids = torch.full((rows, width), pad, dtype=torch.long)
    tail_mask = torch.zeros((rows, width), dtype=torch.long)
    positions = torch.full((rows, width), len(opening), dtype=torch.long)
    for row, tail in enumerate(tails):
        start = width - len(tail)
        ids[row, start:] = torch.tensor(list(tail), dtype=torch.long)
        tail_mask[row, start:] = 1
        positions[row, start:] = torch.arange(len(opening), len(opening) + len(tail))
    if opening:
        cache = copy.deepcopy(_prefix_cache(lm, segments))
        if rows > 1:
            cache.batch_repeat_interleave(rows)
    else:
        cache = None
    mask = torch.cat([torch.ones((rows, len(opening)), dtype=torch.long), tail_mask], dim=1)
    with torch.no_grad():
        output = lm.model(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            position_ids=positions.to(lm.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    lm.tokens_read += int(tail_mask.sum())
    return Rows(
        lm,
        output.cache,
        mask,
        torch.tensor([len(opening) + len(tail) for tail in tails], dtype=torch.long),
        output.logits[:, -1, :].float().cpu(),
    )


def step(rows: Rows, tokens: Sequence[int]) -> Any:
    """Append one token to each row; returns the next-token logits of every row, [rows, vocab] float32."""
    if _on_llama(rows.lm):
        from scoring import llama_runtime

        return llama_runtime.step(cast(Any, rows), tokens)
    torch = _torch()
    ids = torch.tensor([[token] for token in tokens], dtype=torch.long)
    rows.mask = torch.cat([rows.mask, torch.ones((len(tokens), 1), dtype=torch.long)], dim=1)
    with torch.no_grad():
        output = rows.lm.model(
            input_ids=ids.to(rows.lm.device),
            attention_mask=rows.mask.to(rows.lm.device),
            position_ids=rows.next_position[:, None].to(rows.lm.device),
            cache=rows.cache,
            use_cache=True,
            logits_to_keep=1,
        )
    rows.cache = output.cache
    rows.next_position = rows.next_position + 1
    rows.lm.tokens_read += len(tokens)
    rows.last_logits = output.logits[:, -1, :].float().cpu()
    return rows.last_logits


def keep_rows(rows: Rows, indices: Sequence[int]) -> None:
    """Drop every row but `indices` (in that order), so finished rows cost nothing in later steps."""
    if _on_llama(rows.lm):
        from scoring import llama_runtime

        llama_runtime.keep_rows(cast(Any, rows), indices)
        return
    torch = _torch()
    chosen = torch.tensor(list(indices), dtype=torch.long)
    rows.cache.batch_select_indices(chosen.to(rows.lm.device))
    rows.mask = rows.mask[chosen]
    rows.next_position = rows.next_position[chosen]
    rows.last_logits = rows.last_logits[chosen]


ROW_EXTENSION_TOKENS = 96
"""Tokens a row may grow by after its tail (answer lists, replies): room the llama.cpp runtime keeps per row."""


def row_groups(lm: LoadedModel, opening: int, tails: Sequence[int]) -> list[list[int]]:
    """Rows (by index, in order) split into batches that fit the model's working memory: all at once on torch,
    as many as the llama.cpp context holds (tails plus `ROW_EXTENSION_TOKENS` each) on llama.cpp."""
    if not tails:
        return []
    if not _on_llama(lm):
        return [list(range(len(tails)))]
    budget = max(1, lm.model.row_budget(opening))
    batches: list[list[int]] = [[]]
    used = 0
    for index, length in enumerate(tails):
        cost = length + ROW_EXTENSION_TOKENS
        if batches[-1] and used + cost > budget:
            batches.append([])
            used = 0
        batches[-1].append(index)
        used += cost
    return batches


def _on_llama(lm: LoadedModel) -> bool:
    """True when `lm` runs on llama.cpp (`scoring.llama_runtime`) rather than torch."""
    return bool(getattr(lm.model, "runs_rows", False))


FORCED_ROWS_PER_PASS = 32
"""Teacher-forced continuations run per forward pass (bounds the copied key/value caches)."""


def forced_logprobs(
    rows: Rows, continuations: Sequence[tuple[int, Sequence[int]]], stop_below: float | None = None
) -> list[list[float]]:
    """log p of each continuation's tokens after the end of its row, all but the first token teacher-forced.

    `continuations` holds (row, token ids). The first token's log p comes from the row's
    last logits; the others from passes over copies of the row's cache, many
    continuations per pass. Returns one list of per-token log p per continuation; one whose
    first token's log p is already below `stop_below` is not extended (its list holds that
    first value only: its total can only fall further).
    """
    if _on_llama(rows.lm):
        from scoring import llama_runtime

        return llama_runtime.forced_logprobs(cast(Any, rows), continuations, FORCED_ROWS_PER_PASS, stop_below)
    torch = _torch()
    first = torch.log_softmax(rows.last_logits, dim=-1)
    results: list[list[float]] = [[float(first[row, ids[0]])] for row, ids in continuations]
    longer = continuations_to_extend(continuations, results, stop_below)
    for start in range(0, len(longer), FORCED_ROWS_PER_PASS):
        chunk = longer[start : start + FORCED_ROWS_PER_PASS]
        sources = torch.tensor([continuations[index][0] for index in chunk], dtype=torch.long)
        inputs = [list(continuations[index][1][:-1]) for index in chunk]
        width = max(len(item) for item in inputs)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        extra = torch.zeros((len(chunk), width), dtype=torch.long)
        for position, item in enumerate(inputs):
            ids[position, : len(item)] = torch.tensor(item, dtype=torch.long)
            extra[position, : len(item)] = 1
        cache = _cache_rows(rows.cache, sources.to(rows.lm.device))
        mask = torch.cat([rows.mask[sources], extra], dim=1)
        positions = rows.next_position[sources][:, None] + torch.arange(width)[None, :]
        with torch.no_grad():
            output = rows.lm.model(
                input_ids=ids.to(rows.lm.device),
                attention_mask=mask.to(rows.lm.device),
                position_ids=positions.to(rows.lm.device),
                cache=cache,
                use_cache=True,
            )
        rows.lm.tokens_read += int(extra.sum())
        logprobs = torch.log_softmax(output.logits.float(), dim=-1).cpu()
        for position, index in enumerate(chunk):
            targets = continuations[index][1][1:]
            results[index].extend(float(logprobs[position, offset, token]) for offset, token in enumerate(targets))
    return results


def continuations_to_extend(
    continuations: Sequence[tuple[int, Sequence[int]]], results: list[list[float]], stop_below: float | None
) -> list[int]:
    """Indexes of the continuations that need teacher-forced passes (more than one token, first not too unlikely)."""
    return [
        index
        for index, (_, ids) in enumerate(continuations)
        if len(ids) > 1 and (stop_below is None or results[index][0] >= stop_below)
    ]


def _cache_rows(cache: Any, sources: Any) -> Any:
    """A new key/value cache holding rows `sources` of `cache` (repeats allowed), the original untouched.

    Copies only the chosen rows: a deep copy of the whole cache first would hold every row twice.
    """
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (layer.keys.index_select(0, sources), layer.values.index_select(0, sources)) for layer in cache.layers
        ]
    )


def log_softmax(row: Any) -> np.ndarray:
    """A logits row as log-probabilities (numpy float64)."""
    values = np.asarray(row, dtype=np.float64)
    top = values.max()
    return values - top - np.log(np.exp(values - top).sum())
