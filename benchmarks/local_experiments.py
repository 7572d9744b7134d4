"""Compare the methods tried for the `local` simulator on the dev puzzles and the OpenAI puzzles.

The model is run once per (method, prompt variant, puzzle set); its raw per-token outputs
(log-probabilities for the contrastive method, digit distributions for the slots method) are
saved under --raw-dir, so post-processing variants and ensembles are recomputed without the model.

    python benchmarks/local_experiments.py                          # dev set, every method
    python benchmarks/local_experiments.py --sets dev,openai        # also the test set (report only)
    python benchmarks/local_experiments.py --only contrastive --sets dev

Tune on dev only; the OpenAI puzzles are the test set.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import prompts  # noqa: E402
from scoring.simulators import local  # noqa: E402

MODEL = os.environ.get("LOCAL_MODEL", "gemma-3-270m")
"""The packaged model the experiments run (session 1 and 2 figures: Gemma; LOCAL_MODEL=smollm2 for the other)."""

SETS = {
    "dev": ROOT / "benchmarks" / "dev_puzzles.json",
    "dev2": ROOT / "benchmarks" / "dev_puzzles_2.json",
    "openai": ROOT.parent / "shared" / "benchmarks" / "openai-puzzles" / "puzzles.json",
}

# Prompt variants of the contrastive method: (topic prefix, neutral prefix).
CONTRASTIVE_PREFIXES = {
    "about": (prompts.LOCAL_TOPIC_PREFIX, prompts.LOCAL_NEUTRAL_PREFIX),  # the shipped one
    "topic": ("Topic: {explanation}\nText: ", "Topic: general\nText: "),
    "full-of": ("A passage full of {explanation}:\n\n", "A passage:\n\n"),
}


def load_puzzles(path: Path) -> dict[str, dict]:
    puzzles = {}
    for key, puzzle in json.loads(path.read_text()).items():
        sequences = []
        for sentence in puzzle["sentences"]:
            tokens = [item if isinstance(item, str) else item[0] for item in sentence]
            values = [0.0 if isinstance(item, str) else float(item[1]) for item in sentence]
            sequences.append((tokens, values))
        puzzles[key] = {
            "explanations": [puzzle["explanation"], *puzzle["false_explanations"]],
            "sequences": sequences,
        }
    return puzzles


def pearson(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0 or not np.isfinite(y).all():
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def pairwise(scores: dict[str, list[float]]) -> float:
    wins = total = 0
    for values in scores.values():
        true, *false = values
        for other in false:
            total += 1
            wins += (not math.isnan(true)) and (math.isnan(other) or true > other)
    return wins / total


# ----------------------------------------------------------------------------- raw collection


def collect_contrastive(model: local._LoadedModel, puzzles: dict, variant: str) -> dict:
    """Per puzzle, per explanation, per sequence: (owner, topic logprobs, neutral logprobs)."""
    topic_template, neutral_text = CONTRASTIVE_PREFIXES[variant]
    neutral = model.bos + model.tokenize(neutral_text)
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        aligned = [local._AlignedTokens(model, tokens) for tokens, _ in puzzle["sequences"]]
        neutral_lp = [local._sequence_logprobs(model, neutral, a) for a in aligned]
        per_expl = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            cleaned = " ".join(explanation.split()).rstrip(".")
            topic = model.bos + model.tokenize(topic_template.format(explanation=cleaned))
            per_expl.append([(a.owner, local._sequence_logprobs(model, topic, a), n)
                             for a, n in zip(aligned, neutral_lp, strict=True)])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per_expl
        print(f"    {variant} {key}", flush=True)
    return raw


def collect_slots(model: local._LoadedModel, puzzles: dict, placeholder: str) -> dict:
    """Per puzzle, per explanation, per sequence: digit distributions (n_tokens x 10)."""
    digit_ids = [model.tokenize(str(digit))[0] for digit in range(10)]
    raw: dict = {"seconds": []}
    original = prompts.LOCAL_SLOTS_PLACEHOLDER
    prompts.LOCAL_SLOTS_PLACEHOLDER = placeholder
    try:
        for key, puzzle in puzzles.items():
            per_expl = []
            for explanation in puzzle["explanations"]:
                started = time.perf_counter()
                per_seq = []
                for tokens, _ in puzzle["sequences"]:
                    ids, slots = list(model.bos), []
                    for kind, text in prompts.local_slots_prompt(explanation, tokens):
                        if kind == "slot":
                            slots.append(len(ids) - 1)
                        ids.extend(model.tokenize(text))
                    logits = model.logits_at(ids, slots)
                    rows = np.array([logits[p][digit_ids] for p in slots])
                    rows = np.exp(rows - rows.max(axis=1, keepdims=True))
                    per_seq.append(rows / rows.sum(axis=1, keepdims=True))
                per_expl.append(per_seq)
                raw["seconds"].append(time.perf_counter() - started)
            raw[key] = per_expl
            print(f"    slots-{placeholder} {key}", flush=True)
    finally:
        prompts.LOCAL_SLOTS_PLACEHOLDER = original
    return raw


MEMBERSHIP_PREFIXES = {
    "examples": (prompts.LOCAL_LIST_PREFIX, prompts.LOCAL_LIST_NEUTRAL_PREFIX),  # the shipped one
}


def unique_words(sequences: list[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for tokens in sequences:
        for group in words_of(tokens):
            word = "".join(tokens[i] for i in group).strip()
            if word and any(ch.isalnum() for ch in word):
                seen.setdefault(word, None)
    return list(seen)


def list_logprobs(model: local._LoadedModel, prefix: list[int], words: list[str]) -> dict[str, float]:
    """Sum of log p of each word's tokens when the words follow `prefix` as a comma-separated list."""
    return dict(zip(words, local._list_logprobs(model, prefix, words), strict=True))


def collect_membership(model: local._LoadedModel, puzzles: dict, variant: str) -> dict:
    """Per puzzle, per explanation: word -> (topic logprob, neutral logprob) in a list of the text's words."""
    topic_template, neutral_text = MEMBERSHIP_PREFIXES[variant]
    raw: dict = {"seconds": []}
    neutral_prefix = model.bos + model.tokenize(neutral_text)
    for key, puzzle in puzzles.items():
        # One list per sequence, so a sequence's values never depend on the other sequences.
        word_lists = [unique_words([tokens]) for tokens, _ in puzzle["sequences"]]
        neutral = [list_logprobs(model, neutral_prefix, words) for words in word_lists]
        per_expl = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            cleaned = " ".join(explanation.split()).rstrip(".")
            prefix = model.bos + model.tokenize(topic_template.format(explanation=cleaned))
            tables = []
            for words, neutral_table in zip(word_lists, neutral, strict=True):
                topic = list_logprobs(model, prefix, words)
                tables.append({w: (topic[w], neutral_table[w]) for w in words})
            per_expl.append(tables)
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per_expl
        print(f"    membership-{variant} {key}", flush=True)
    return raw


def collect_baseline(spec: str, puzzles: dict) -> dict:
    from scoring.simulators import get_simulator

    simulator = get_simulator(spec)
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        per_expl = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            sequences = [tokens for tokens, _ in puzzle["sequences"]]
            batch = asyncio.run(simulator.simulate(explanation, sequences))
            per_expl.append([np.asarray(s.activations if s.ok else [math.nan] * len(t), float)
                             for s, (t, _) in zip(batch.sequences, puzzle["sequences"], strict=True)])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per_expl
    return raw


# ----------------------------------------------------------------------------- post-processing


def words_of(tokens: list[str]) -> list[list[int]]:
    """Token indices grouped into words (a piece with no leading space continues a word)."""
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        starts = (not groups or token[:1].isspace() or not token[:1].isalnum()
                  or not previous[-1:].isalnum())
        if starts:
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups


def contrastive_values(owner, topic_lp, neutral_lp, tokens, pool="sum", norm="none", word="none", scale=1.0):
    gain = topic_lp - neutral_lp
    if norm == "surprisal":
        gain = gain / np.maximum(1.0, -neutral_lp)
    elif norm == "prob":
        gain = np.exp(topic_lp) - np.exp(neutral_lp)
    values = np.zeros(len(tokens))
    if pool == "sum":
        np.add.at(values, owner, gain)
    elif pool == "max":
        values[:] = -np.inf
        np.maximum.at(values, owner, gain)
        values[~np.isfinite(values)] = 0.0
    elif pool == "first":
        seen = set()
        for j, o in enumerate(owner):
            if o not in seen:
                values[o] = gain[j]
                seen.add(o)
    values = np.maximum(values, 0.0)
    if word != "none":
        for group in words_of(tokens):
            values[group] = values[group].max() if word == "max" else values[group].sum()
    return np.minimum(values * scale, 10.0)


def membership_values(table: dict[str, tuple[float, float]], tokens: list[str]) -> np.ndarray:
    values = np.zeros(len(tokens))
    for group in words_of(tokens):
        word = "".join(tokens[i] for i in group).strip()
        if word in table:
            topic, neutral = table[word]
            values[group] = min(10.0, 2.0 * max(0.0, topic - neutral))
    return values


def slots_values(rows: np.ndarray, mode: str = "ev") -> np.ndarray:
    if mode == "ev":
        return rows @ np.arange(10) * 10 / 9
    return (1 - rows[:, 0]) * 10


def zscore(values: list[np.ndarray]) -> list[np.ndarray]:
    flat = np.concatenate(values) if values else np.zeros(0)
    spread = flat.std() or 1.0
    return [(v - flat.mean()) / spread for v in values]


def evaluate(puzzles: dict, simulate: Callable[[str, int, list[list[str]]], list[np.ndarray]]) -> float:
    scores = {}
    for key, puzzle in puzzles.items():
        real = [v for _, values in puzzle["sequences"] for v in values]
        tokens = [t for t, _ in puzzle["sequences"]]
        scores[key] = []
        for index in range(len(puzzle["explanations"])):
            simulated = simulate(key, index, tokens)
            scores[key].append(pearson(real, [float(v) for s in simulated for v in s]))
    return pairwise(scores)


def time_20x64(methods: list[str]) -> None:
    """Seconds for one score of 20 sequences x 64 tokens (dev-set tokens, cycled), cold and warm.

    Cold: first explanation on these records (the explanation-free baseline passes run too).
    Warm: a second explanation on the same records (baselines come from the in-process cache).
    """
    pool = [t for p in load_puzzles(SETS["dev"]).values() for tokens, _ in p["sequences"] for t in tokens]
    sequences = [[pool[(s * 64 + i) % len(pool)] for i in range(64)] for s in range(20)]
    local.load_model(MODEL)
    for method in methods:
        simulator = local.LocalSimulator(model=MODEL, method=method)
        local.load_model(MODEL).neutral_cache.clear()
        timings = []
        for explanation in ("words about food and cooking", "verbs in the past tense"):
            started = time.perf_counter()
            batch = simulator.simulate_sync(explanation, sequences)
            timings.append(time.perf_counter() - started)
            assert all(s.ok for s in batch.sequences)
        print(f"{method:12s} 20x64 score: cold {timings[0]:6.1f} s, warm {timings[1]:6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="dev")
    parser.add_argument("--only", default="", help="comma list of raw collections to (re)run or load")
    parser.add_argument("--raw-dir", default=str(ROOT / "cache" / "local_experiments"))
    parser.add_argument("--timing", default="", help="comma list of local methods to time on one 20x64 score")
    args = parser.parse_args()
    if args.timing:
        time_20x64(args.timing.split(","))
        return
    raw_dir = Path(args.raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    collections = {
        "contrastive-about": lambda m, p: collect_contrastive(m, p, "about"),
        "contrastive-topic": lambda m, p: collect_contrastive(m, p, "topic"),
        "contrastive-full-of": lambda m, p: collect_contrastive(m, p, "full-of"),
        "membership-examples": lambda m, p: collect_membership(m, p, "examples"),
        "slots-unknown": lambda m, p: collect_slots(m, p, "unknown"),
        "slots-zero": lambda m, p: collect_slots(m, p, "0"),
        "lexical": lambda m, p: collect_baseline("lexical", p),
        "embedding": lambda m, p: collect_baseline("embedding", p),
    }
    wanted = [name for name in args.only.split(",") if name] or list(collections)
    model = None
    for set_name in args.sets.split(","):
        puzzles = load_puzzles(SETS[set_name])
        raws = {}
        for name in wanted:
            path = raw_dir / f"{set_name}-{name}.pkl"
            if path.exists():
                raws[name] = pickle.loads(path.read_bytes())
                continue
            needs_model = name.startswith(("contrastive", "slots", "membership"))
            if needs_model and model is None:
                model = local.load_model(MODEL)
            print(f"  collecting {name} on {set_name}", flush=True)
            raws[name] = collections[name](model, puzzles)
            path.write_bytes(pickle.dumps(raws[name]))
        table = rows_for(puzzles, raws)
        print(f"\n{set_name}: {len(puzzles)} puzzles, "
              f"{sum(len(p['explanations']) - 1 for p in puzzles.values())} true-vs-false pairs")
        print(f"{'method':58s} {'pairwise':>8s} {'s/score':>8s}")
        for name, accuracy, seconds in table:
            print(f"{name:58s} {accuracy:8.3f} {seconds:8.2f}")


def rows_for(puzzles: dict, raws: dict) -> list[tuple[str, float, float]]:
    """(label, pairwise accuracy, seconds per score) for every variant and ensemble of the raws."""

    def seconds(*names: str) -> float:
        return float(sum(np.mean(raws[n]["seconds"]) for n in names))

    def contrastive_fn(name: str, **options: str) -> Callable:
        def simulate(key, index, tokens):
            return [contrastive_values(o, t, n, toks, **options)
                    for (o, t, n), toks in zip(raws[name][key][index], tokens, strict=True)]
        return simulate

    def slots_fn(name: str, mode: str = "ev") -> Callable:
        def simulate(key, index, tokens):
            return [slots_values(rows, mode) for rows in raws[name][key][index]]
        return simulate

    def membership_fn(name: str) -> Callable:
        def simulate(key, index, tokens):
            return [membership_values(table, toks)
                    for table, toks in zip(raws[name][key][index], tokens, strict=True)]
        return simulate

    def plain_fn(name: str) -> Callable:
        def simulate(key, index, tokens):
            return [np.nan_to_num(v) for v in raws[name][key][index]]
        return simulate

    def ensemble(parts: list[Callable], fixed: bool) -> Callable:
        def simulate(key, index, tokens):
            total = [np.zeros(len(t)) for t in tokens]
            for fn in parts:
                values = fn(key, index, tokens)
                if not fixed:
                    values = zscore(values)
                total = [a + v for a, v in zip(total, values, strict=True)]
            return total
        return simulate

    candidates: dict[str, tuple[Callable, tuple[str, ...]]] = {}
    signals: dict[str, Callable] = {}
    for name in raws:
        if name.startswith("contrastive"):
            for pool in ("sum", "first", "max"):
                for norm in ("none", "surprisal", "prob"):
                    for word in ("none", "max"):
                        label = f"{name} pool={pool} norm={norm} word={word}"
                        candidates[label] = (contrastive_fn(name, pool=pool, norm=norm, word=word), (name,))
            signals[name] = contrastive_fn(name, pool="sum", norm="none", word="none", scale=2.0)
        elif name.startswith("slots"):
            for mode in ("ev", "p-active"):
                candidates[f"{name} {mode}"] = (slots_fn(name, mode), (name,))
            signals[name] = slots_fn(name)
        elif name.startswith("membership"):
            signals[name] = candidates[name] = membership_fn(name)
            candidates[name] = (signals[name], (name,))
        else:
            signals[name] = plain_fn(name)
            candidates[name] = (signals[name], (name,))
    # Ensembles: sums of z-scored signals (per explanation, over all its tokens), equal weights.
    names = sorted(signals)
    for size in range(2, len(names) + 1):
        for combo in itertools.combinations(names, size):
            parts = [signals[n] for n in combo]
            candidates["z-ensemble " + " + ".join(combo)] = (ensemble(parts, False), combo)
            candidates["sum " + " + ".join(combo)] = (ensemble(parts, True), combo)
    return [(label, evaluate(puzzles, fn), seconds(*used)) for label, (fn, used) in candidates.items()]


if __name__ == "__main__":
    main()
