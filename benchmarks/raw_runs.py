"""The command line shared by the experiment scripts that collect a model's raw outputs once and score mappings.

`list_decode.py` and `word_judge.py` each collect raw outputs per (puzzle, explanation,
sequence) with a model, cache them under cache/<script>/<model>[-chat]-<set>.pkl, then score
several ways of turning them into activations, without the model, as pairwise wins.
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from local_experiments import SETS, load_puzzles
from pointer_calibration import cases, pairwise_wins

from scoring.simulators import local

Mapping = Callable[[Any, int], np.ndarray]
"""(one sequence's raw entry, number of tokens) -> simulated activations."""


Entry = Callable[[local._LoadedModel, str, list[str], bool], Any]
"""(loaded model, explanation, tokens, chat) -> one sequence's raw entry; called with the model's lock held."""


def collect(model_key: str, puzzles: dict, chat: bool, entry: Entry) -> dict:
    """`entry` for every (puzzle, explanation, sequence) of `puzzles`, with the model loaded once."""
    model = local.load_model(model_key)
    raw: dict = {}
    with model.lock:
        for index, explanation, tokens in cases(puzzles):
            raw[index] = entry(model, explanation, tokens, chat)
    return raw


def run(doc: str, cache: Path, entry: Entry, table: dict[str, Mapping], shown: Callable[[Any], Any]) -> None:
    """Parse --model/--sets/--chat/--only/--show, collect (or load) each set's raw outputs and print the wins."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--model", default="smollm2", choices=list(local.MODELS))
    parser.add_argument("--sets", default="dev,dev2")
    parser.add_argument("--chat", action="store_true", help="ChatML turns (instruction models)")
    parser.add_argument("--only", help="comma list of mappings to score (default: all)")
    parser.add_argument("--show", type=int, default=0, help="print the first N raw entries per set")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(table)
    unknown = set(chosen) - set(table)
    if unknown:
        parser.error(f"unknown mapping(s) {sorted(unknown)}; choose from {', '.join(table)}")
    cache.mkdir(parents=True, exist_ok=True)
    for name in args.sets.split(","):
        puzzles = load_puzzles(SETS[name])
        path = cache / f"{args.model}{'-chat' if args.chat else ''}-{name}.pkl"
        if path.exists():
            raw = pickle.loads(path.read_bytes())
        else:
            started = time.perf_counter()
            raw = collect(args.model, puzzles, args.chat, entry)
            path.write_bytes(pickle.dumps(raw))
            print(f"{name}: collected in {time.perf_counter() - started:.0f} s", flush=True)
        for index in list(raw)[: args.show]:
            print(index, shown(raw[index]))
        for mapping in chosen:
            wins, total = pairwise_wins(
                puzzles, lambda index, tokens, values=table[mapping], raw=raw: values(raw[index], len(tokens))
            )
            print(f"{name:6s} {mapping:22s} {wins:3d}/{total} = {wins / total:.3f}", flush=True)
