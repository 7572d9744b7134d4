"""Experiments behind the `pointer` method of the local simulator (see LOCAL_NOTES.md).

marks (--variants star): worked examples in which a highlighter put a mark right after every word
that fits a rule, then the rule and the unmarked text; a token's value is p(mark after it).
pointer (--pointer, --pointer2, --pointer3, --words): the model reads the rule and the whole text,
then "Words that fit:"; a word's value is how likely the model is to name it there.
  --pointer   first model token of each word, one answer slot, with a neutral-rule pass
  --pointer2  greedy answer list up to SLOTS (env, default 4) slots, first model token
  --pointer3  as --pointer2 with ten worked examples instead of six
  --words w1  whole-word log-probabilities, six examples: the shipped method (w3: ten examples)

    python benchmarks/local_marks.py --sets dev,dev2 --variants star
    python benchmarks/local_marks.py --sets dev,dev2 --words w1
    SLOTS=1 python benchmarks/local_marks.py --sets dev,dev2 --pointer3

Raw outputs are kept under cache/local_marks/ (delete a .pkl to re-run it). Tune on dev and dev2
only; the OpenAI puzzles are the test set.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from local_experiments import evaluate, load_puzzles  # noqa: E402

from scoring import prompts  # noqa: E402
from scoring.simulators import local  # noqa: E402

SETS = {
    "dev": ROOT / "benchmarks" / "dev_puzzles.json",
    "dev2": ROOT / "benchmarks" / "dev_puzzles_2.json",
    "openai": ROOT.parent / "shared" / "benchmarks" / "openai-puzzles" / "puzzles.json",
}

EXAMPLES = [
    ("names of vegetables",
     "We bought carrots{m} and a cabbage{m} at the market, then a lamp and some onions{m}."),
    ("the word \"light\" when it means not heavy",
     "Turn on the light, please; this box is light{m} enough to carry, but the lamp light is dim."),
    ("numbers larger than one hundred",
     "She paid 40 dollars for 250{m} stickers and gave 3 of them to 1200{m} fans."),
    ("the word right after \"the\"",
     "Then the cat{m} sat on the mat{m} while a dog watched the door{m}."),
    ("instances of the words \"blue\" and \"cold\"",
     "The blue{m} car was cold{m} inside, and the red one was warm."),
]

VARIANTS = {
    # name: (header, mark)
    "star": ("A highlighter marked each word that fits the rule with a * right after it.\n\n", "*"),
    "hash": ("A highlighter marked each word that fits the rule with a # right after it.\n\n", "#"),
}


def prompt_prefix(variant: str, explanation: str, n_examples: int = 5) -> str:
    header, mark = VARIANTS[variant]
    parts = [header]
    for rule, text in EXAMPLES[:n_examples]:
        parts.append(f"Rule: {rule}\nText: {text.format(m=mark)}\n\n")
    cleaned = " ".join(explanation.split()).rstrip(".")
    parts.append(f"Rule: {cleaned}\nText:")
    return "".join(parts)


def neutral_prefix(variant: str) -> str:
    return prompt_prefix(variant, "words that matter")


def mark_logprobs(model: local._LoadedModel, prefix_ids: list[int], tokens: list[str], mark_id: int) -> np.ndarray:
    """log p(mark) right after each input token (after its last model token); -inf for empty tokens."""
    ids = list(prefix_ids)
    ends: list[int | None] = []
    for token in tokens:
        piece = model.tokenize(token) if token else []
        # the first token of the text follows "Text:" directly; input tokens carry their own space
        ids.extend(piece)
        ends.append(len(ids) - 1 if piece else None)
    wanted = [e for e in ends if e is not None]
    logits = model.logits_at(ids, wanted)
    out = np.full(len(tokens), -np.inf)
    for index, end in enumerate(ends):
        if end is not None:
            out[index] = local._log_softmax_at(logits[end], mark_id)
    return out


def collect(model, puzzles, variant: str) -> dict:
    _, mark = VARIANTS[variant]
    mark_id = model.tokenize(mark)[0]
    raw: dict = {"seconds": []}
    neutral = model.bos + model.tokenize(neutral_prefix(variant))
    for key, puzzle in puzzles.items():
        seqs = puzzle["sequences"]
        neutral_lp = [mark_logprobs(model, neutral, list(t), mark_id) for t, _ in seqs]
        per = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            prefix = model.bos + model.tokenize(prompt_prefix(variant, explanation))
            per.append([(mark_logprobs(model, prefix, list(t), mark_id), n)
                        for (t, _), n in zip(seqs, neutral_lp, strict=True)])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per
        print(f"  {variant} {key}", flush=True)
    return raw


def values_from(lp: np.ndarray, neutral: np.ndarray, mode: str) -> np.ndarray:
    finite = np.isfinite(lp)
    if mode == "prob":
        v = np.where(finite, np.exp(lp), 0.0)
    elif mode == "logodds":
        p = np.clip(np.exp(lp), 1e-9, 1 - 1e-9)
        v = np.where(finite, np.log(p / (1 - p)), -20.0)
    elif mode == "gain":
        v = np.where(finite, np.clip(lp - neutral, 0, None), 0.0)
    elif mode == "gainprob":
        v = np.where(finite, np.clip(np.exp(lp) - np.exp(neutral), 0, None), 0.0)
    else:
        raise ValueError(mode)
    return v


def score_raw(puzzles: dict, raw: dict, values) -> float:
    """Pairwise accuracy when each sequence's saved raw output becomes activations through `values`."""
    return evaluate(puzzles, lambda key, index, tokens: [values(item) for item in raw[key][index]])


def load_or_collect(raw_dir: Path, set_name: str, name: str, collect) -> tuple[dict, dict]:
    """The set's puzzles and the raw outputs of `collect(model, puzzles)`, saved once under raw_dir."""
    puzzles = load_puzzles(SETS[set_name])
    path = raw_dir / f"{set_name}-{name}.pkl"
    if path.exists():
        return puzzles, pickle.loads(path.read_bytes())
    model = local.load_model("gemma-3-270m")
    with model.lock:
        raw = collect(model, puzzles)
    path.write_bytes(pickle.dumps(raw))
    return puzzles, raw


def report(set_name: str, name: str, raw: dict, scores: dict[str, float]) -> None:
    line = " ".join(f"{mode}={score:.3f}" for mode, score in scores.items())
    print(f"{set_name:7s} {name} {line}  s/score={np.mean(raw['seconds']):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="dev")
    parser.add_argument("--variants", default="star")
    parser.add_argument("--raw-dir", default=str(ROOT / "cache" / "local_marks"))
    parser.add_argument("--pointer", action="store_true")
    parser.add_argument("--pointer2", action="store_true")
    parser.add_argument("--pointer3", action="store_true")
    parser.add_argument("--words", default="", help="w1 or w3: pointer with whole-word log-probs (shipped: w1)")
    args = parser.parse_args()
    raw_dir = Path(args.raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    if args.pointer:
        run_pointer(args.sets, raw_dir)
        return
    if args.pointer2:
        run_pointer2(args.sets, raw_dir)
        return
    if args.pointer3:
        run_pointer2(args.sets, raw_dir, "pointer3", pointer3_prefix)
        return
    if args.words:
        examples = {"w1": prompts.LOCAL_POINTER_EXAMPLES, "w3": POINTER3_EXAMPLES}[args.words]
        run_words(args.sets, raw_dir, args.words, examples)
        return
    for set_name in args.sets.split(","):
        for variant in args.variants.split(","):
            puzzles, raw = load_or_collect(raw_dir, set_name, variant, lambda m, p, v=variant: collect(m, p, v))
            report(set_name, variant, raw, {
                mode: score_raw(puzzles, raw, lambda item, mode=mode: values_from(*item, mode))
                for mode in ("prob", "logodds", "gain", "gainprob")
            })


# ----------------------------------------------------------------------------- pointer method
# The model reads the rule and the whole text, then names the words of the text that fit:
# one next-token distribution per sequence gives every word's probability of being named.

def pointer_prefix(explanation: str, examples=prompts.LOCAL_POINTER_EXAMPLES) -> str:
    return prompts.local_pointer_examples(examples) + prompts.local_pointer_rule(explanation)


def pointer_ids(model, prefix_text: str, tokens: list[str]) -> list[int]:
    """Prompt ids up to the answer cue (one pass, no fixed segments: how the first experiments ran)."""
    return (model.bos + model.tokenize(prefix_text) + model.tokenize(prompts.local_pointer_text(tokens))
            + model.tokenize(prompts.LOCAL_POINTER_ANSWER))


def word_index(tokens: list[str]) -> tuple[list[str], list[int]]:
    """The distinct words of a text and each token's word index (-1 for blanks)."""
    words: list[str] = []
    owner = [-1] * len(tokens)
    for word, indices in local.word_groups(tokens):
        if not word:
            continue
        if word not in words:
            words.append(word)
        for i in indices:
            owner[i] = words.index(word)
    return words, owner


def answer_logprobs(model, ids: list[int]) -> np.ndarray:
    """log-softmax of the next-token logits after `ids`."""
    logits = model.logits_at(ids, [len(ids) - 1])[len(ids) - 1]
    top = logits.max()
    return logits - (top + np.log(np.exp(logits - top).sum()))


def pointer_logprobs(model, explanation: str, tokens: list[str]) -> tuple[np.ndarray, float]:
    """Per input token: log p(the model names the word it belongs to first); plus log p(none)."""
    row = answer_logprobs(model, pointer_ids(model, pointer_prefix(explanation), tokens))
    out = np.full(len(tokens), -np.inf)
    for word, indices in local.word_groups(tokens):
        if any(c.isalnum() for c in word):
            out[indices] = row[model.tokenize(" " + word)[0]]
    return out, float(row[model.tokenize(" none")[0]])


def collect_pointer(model, puzzles) -> dict:
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        per = []
        neutral = [pointer_logprobs(model, "words", list(t)) for t, _ in puzzle["sequences"]]
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            per.append([(*pointer_logprobs(model, explanation, list(t)), n)
                        for (t, _), n in zip(puzzle["sequences"], neutral, strict=False)])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per
    return raw


def pointer_values(lp, none, neutral, mode):
    finite = np.isfinite(lp)
    p = np.where(finite, np.exp(lp), 0.0)
    if mode == "prob":
        return p
    if mode == "log":
        return np.where(finite, lp, -30.0)
    if mode == "gain":
        n_lp = neutral[0]
        return np.where(finite, np.clip(lp - n_lp, 0, None), 0.0)
    if mode == "share":  # probability among the text's words and "none"
        return p / (p.sum() + math.exp(none))
    raise ValueError(mode)


def run_pointer(sets: str, raw_dir: Path) -> None:
    for set_name in sets.split(","):
        puzzles, raw = load_or_collect(raw_dir, set_name, "pointer", collect_pointer)
        report(set_name, "pointer", raw, {m: score_raw(puzzles, raw, lambda item, m=m: pointer_values(*item, m))
                                          for m in ("prob", "log", "gain", "share")})


def pointer_slots(model, explanation: str, tokens: list[str], slots: int = int(os.environ.get("SLOTS", "4")),
                  prefix_text: str | None = None) -> tuple[list[str], list[int], list[dict[str, float]]]:
    """Greedy answer list restricted to the text's words: per slot, log p of every candidate word and of none.

    Returns the words, each input token's word index (-1 for blanks), and per slot {word: logp, "<none>": logp}.
    """
    ids = pointer_ids(model, prefix_text if prefix_text is not None else pointer_prefix(explanation), tokens)
    words, owner = word_index(tokens)
    first = [model.tokenize(" " + w)[0] for w in words]
    none_id = model.tokenize(" none")[0]
    comma = model.tokenize(",")
    per_slot: list[dict[str, float]] = []
    named: set[int] = set()
    for slot in range(slots):
        logprobs = answer_logprobs(model, ids)
        row = {w: float(logprobs[f]) for w, f in zip(words, first, strict=True)}
        row["<none>"] = float(logprobs[none_id])
        per_slot.append(row)
        if slot == slots - 1:
            break
        best = max((i for i in range(len(words)) if i not in named), key=lambda i: row[words[i]], default=None)
        if best is None or row["<none>"] > row[words[best]]:
            break
        named.add(best)
        ids = ids + model.tokenize(" " + words[best]) + comma
    return words, owner, per_slot


def collect_pointer2(model, puzzles, prefix_fn=None) -> dict:
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        per = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            pre = prefix_fn(explanation) if prefix_fn else None
            per.append([pointer_slots(model, explanation, list(t), prefix_text=pre) for t, _ in puzzle["sequences"]])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per
    return raw


def pointer2_values(words, owner, per_slot, mode: str) -> np.ndarray:
    n_slots = {"s1": 1, "s2": 2, "s4": 4}[mode.split("-")[0]]
    agg = mode.split("-")[1]
    slots = per_slot[:n_slots]
    word_value = []
    for w in words:
        lps = [row[w] for row in slots]
        if agg == "maxp":
            word_value.append(max(math.exp(v) for v in lps))
        elif agg == "sump":
            word_value.append(sum(math.exp(v) for v in lps))
        elif agg == "maxlog":
            word_value.append(max(lps))
        elif agg == "share":
            first = slots[0]
            total = sum(math.exp(first[x]) for x in words) + math.exp(first["<none>"])
            word_value.append(max(math.exp(r[w]) for r in slots) / total)
    floor = min(word_value) if agg == "maxlog" and word_value else 0.0
    return np.array([word_value[o] if o >= 0 else floor for o in owner])


POINTER2_MODES = ("s1-maxp", "s1-maxlog", "s2-maxp", "s4-maxp", "s4-sump", "s4-maxlog", "s4-share")


def run_pointer2(sets: str, raw_dir: Path, name: str = "pointer2", prefix_fn=None) -> None:
    for set_name in sets.split(","):
        puzzles, raw = load_or_collect(raw_dir, set_name, name, lambda m, p: collect_pointer2(m, p, prefix_fn))
        report(set_name, name, raw, {m: score_raw(puzzles, raw, lambda item, m=m: pointer2_values(*item, m))
                                     for m in POINTER2_MODES})


POINTER3_EXAMPLES = [
    ("names of vegetables",
     "We bought carrots and a cabbage at the market, then a lamp.", "carrots, cabbage"),
    ("even numbers",
     "She paid 40 dollars for 25 stickers and gave 3 of them to 12 friends.", "40, 12"),
    ("names of vegetables",
     "The train left the station at noon and nobody waved.", "none"),
    ("the word right after \"the\"",
     "Then the cat sat on a mat while a dog watched.", "cat"),
    ("instances of the words \"blue\" and \"cold\"",
     "The blue car was cold inside, and the red one was warm.", "blue, cold"),
    ("words expressing regret",
     "I wish I had called her; I am sorry it was my fault.", "wish, sorry"),
    ("misspelled words",
     "The wether was beautifull when we arrived.", "wether, beautifull"),
    ("animals that swim but do not fly",
     "A heron flew over the pond where a frog and a trout were hiding.", "frog, trout"),
    ("words expressing regret",
     "The picnic was lovely and everyone laughed.", "none"),
    ("the word \"light\" when it means not heavy",
     "This bag is light enough to carry.", "light"),
]


def pointer3_prefix(explanation: str) -> str:
    return pointer_prefix(explanation, POINTER3_EXAMPLES)


def pointer_words(model, explanation: str, tokens: list[str], examples):
    """Whole-word log-probs as the shipped simulator computes them: (words, owner, pieces, none).

    `none` (log p of answering "none") is not computed here: nan. Pickles saved before the shipped
    function existed hold it, and come from one unsegmented pass (numbers differ in the 3rd decimal).
    """
    found = local.pointer_logprobs(model, explanation, tokens, examples)
    words = list(found)
    owner = [-1] * len(tokens)
    for position, (indices, _) in enumerate(found.values()):
        for index in indices:
            owner[index] = position
    return words, owner, {word: pieces for word, (_, pieces) in found.items()}, math.nan


def collect_words(model, puzzles, examples) -> dict:
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        per = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            per.append([pointer_words(model, explanation, list(t), examples) for t, _ in puzzle["sequences"]])
            raw["seconds"].append(time.perf_counter() - started)
        raw[key] = per
    return raw


def word_logprob(pieces: list[float], how: str) -> float:
    if how == "first":  # the word's first model token only
        return pieces[0]
    if how == "sum":  # the whole word (shipped)
        return sum(pieces)
    return float(np.mean(pieces))  # "mean" per model token


def words_values(words, owner, pieces, none, how: str, floor: float) -> np.ndarray:
    """Shipped mapping: log-probability `floor` -> 0, 0 -> 10, linear, clipped; blanks 0."""
    value = [min(10.0, max(0.0, 10.0 * (1.0 - word_logprob(pieces[w], how) / floor))) for w in words]
    return np.array([value[o] if o >= 0 else 0.0 for o in owner])


def run_words(sets: str, raw_dir: Path, name: str, examples) -> None:
    for set_name in sets.split(","):
        puzzles, raw = load_or_collect(raw_dir, set_name, name, lambda m, p: collect_words(m, p, examples))
        report(set_name, name, raw, {
            f"{how}{floor:g}": score_raw(puzzles, raw, lambda item, h=how, f=floor: words_values(*item, h, f))
            for how in ("first", "sum", "mean") for floor in (-10.0, -15.0, -20.0)
        })


if __name__ == "__main__":
    main()
