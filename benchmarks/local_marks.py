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

from local_experiments import load_puzzles, pairwise, pearson  # noqa: E402

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


def evaluate(puzzles, raw, mode: str) -> float:
    scores = {}
    for key, puzzle in puzzles.items():
        real = np.concatenate([v for _, v in puzzle["sequences"]])
        scores[key] = []
        for per_seq in raw[key]:
            sim = np.concatenate([values_from(lp, n, mode) for lp, n in per_seq])
            scores[key].append(pearson(list(real), list(sim)))
    return pairwise(scores)


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
        run_words(args.sets, raw_dir, args.words, {"w1": pointer_prefix, "w3": pointer3_prefix}[args.words])
        return
    model = local.load_model("gemma-3-270m")
    for set_name in args.sets.split(","):
        puzzles = load_puzzles(SETS[set_name])
        for variant in args.variants.split(","):
            path = raw_dir / f"{set_name}-{variant}.pkl"
            if path.exists():
                raw = pickle.loads(path.read_bytes())
            else:
                with model.lock:
                    raw = collect(model, puzzles, variant)
                path.write_bytes(pickle.dumps(raw))
            secs = float(np.mean(raw["seconds"]))
            line = " ".join(f"{mode}={evaluate(puzzles, raw, mode):.3f}"
                            for mode in ("prob", "logodds", "gain", "gainprob"))
            print(f"{set_name:7s} {variant:8s} {line}  s/score={secs:.2f}", flush=True)




# ----------------------------------------------------------------------------- pointer method
# The model reads the rule and the whole text, then names the words of the text that fit:
# one next-token distribution per sequence gives every word's probability of being named.

POINTER_EXAMPLES = [
    ("names of vegetables",
     "We bought carrots and a cabbage at the market, then a lamp.", "carrots, cabbage"),
    ("the word \"light\" when it means not heavy",
     "Turn on the light, please; this box is light enough to carry.", "light"),
    ("numbers larger than one hundred",
     "She paid 40 dollars for 250 stickers and gave 3 of them away.", "250"),
    ("names of vegetables",
     "The train left the station at noon and nobody waved.", "none"),
    ("the word right after \"the\"",
     "Then the cat sat on a mat while a dog watched.", "cat"),
    ("instances of the words \"blue\" and \"cold\"",
     "The blue car was cold inside, and the red one was warm.", "blue, cold"),
]

POINTER_HEADER = "For each text, list the words of the text that fit the rule, or none.\n\n"


def pointer_prefix(explanation: str, examples=POINTER_EXAMPLES) -> str:
    parts = [POINTER_HEADER]
    for rule, text, answer in examples:
        parts.append(f"Rule: {rule}\nText: {text}\nWords that fit: {answer}\n\n")
    cleaned = " ".join(explanation.split()).rstrip(".")
    parts.append(f"Rule: {cleaned}\nText:")
    return "".join(parts)


def pointer_logprobs(model, explanation: str, tokens: list[str]) -> tuple[np.ndarray, float]:
    """Per input token: log p(the model names the word it belongs to first); plus log p(none)."""
    ids = model.bos + model.tokenize(pointer_prefix(explanation))
    text = "".join(tokens)
    if not text[:1].isspace():
        text = " " + text
    ids += model.tokenize(text.replace("\n", " ")) + model.tokenize("\nWords that fit:")
    logits = model.logits_at(ids, [len(ids) - 1])[len(ids) - 1]
    top = logits.max()
    logz = top + np.log(np.exp(logits - top).sum())
    out = np.full(len(tokens), -np.inf)
    for word, indices in local.word_groups(tokens):
        if not any(c.isalnum() for c in word):
            continue
        first = model.tokenize(" " + word)[0]
        out[indices] = logits[first] - logz
    none = float(logits[model.tokenize(" none")[0]] - logz)
    return out, none


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


def evaluate_pointer(puzzles, raw, mode: str) -> float:
    scores = {}
    for key, puzzle in puzzles.items():
        real = np.concatenate([v for _, v in puzzle["sequences"]])
        scores[key] = [pearson(list(real), list(np.concatenate([pointer_values(lp, none, n, mode)
                                                                 for lp, none, n in per_seq])))
                       for per_seq in raw[key]]
    return pairwise(scores)


def run_pointer(sets: str, raw_dir: Path) -> None:
    model = local.load_model("gemma-3-270m")
    for set_name in sets.split(","):
        puzzles = load_puzzles(SETS[set_name])
        path = raw_dir / f"{set_name}-pointer.pkl"
        if path.exists():
            raw = pickle.loads(path.read_bytes())
        else:
            with model.lock:
                raw = collect_pointer(model, puzzles)
            path.write_bytes(pickle.dumps(raw))
        line = " ".join(f"{m}={evaluate_pointer(puzzles, raw, m):.3f}" for m in ("prob", "log", "gain", "share"))
        print(f"{set_name:7s} pointer {line}  s/score={np.mean(raw['seconds']):.2f}", flush=True)


def pointer_slots(model, explanation: str, tokens: list[str], slots: int = int(os.environ.get("SLOTS", "4")),
                  prefix_text: str | None = None) -> tuple[list[str], list[int], list[dict[str, float]]]:
    """Greedy answer list restricted to the text's words: per slot, log p of every candidate word and of none.

    Returns the words, each input token's word index (-1 for blanks), and per slot {word: logp, "<none>": logp}.
    """
    ids = model.bos + model.tokenize(prefix_text if prefix_text is not None else pointer_prefix(explanation))
    text = "".join(tokens)
    if not text[:1].isspace():
        text = " " + text
    ids += model.tokenize(text.replace("\n", " ")) + model.tokenize("\nWords that fit:")
    groups = local.word_groups(tokens)
    words: list[str] = []
    owner = [-1] * len(tokens)
    for word, indices in groups:
        if not word:
            continue
        if word not in words:
            words.append(word)
        for i in indices:
            owner[i] = words.index(word)
    first = [model.tokenize(" " + w)[0] for w in words]
    none_id = model.tokenize(" none")[0]
    comma = model.tokenize(",")
    per_slot: list[dict[str, float]] = []
    named: set[int] = set()
    for slot in range(slots):
        logits = model.logits_at(ids, [len(ids) - 1])[len(ids) - 1]
        top = logits.max()
        logz = top + np.log(np.exp(logits - top).sum())
        row = {w: float(logits[f] - logz) for w, f in zip(words, first, strict=False)}
        row["<none>"] = float(logits[none_id] - logz)
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


def evaluate_pointer2(puzzles, raw, mode: str) -> float:
    scores = {}
    for key, puzzle in puzzles.items():
        real = np.concatenate([v for _, v in puzzle["sequences"]])
        scores[key] = [pearson(list(real), list(np.concatenate([pointer2_values(*s, mode) for s in per_seq])))
                       for per_seq in raw[key]]
    return pairwise(scores)


def run_pointer2(sets: str, raw_dir: Path, name: str = "pointer2", prefix_fn=None) -> None:
    model = local.load_model("gemma-3-270m")
    for set_name in sets.split(","):
        puzzles = load_puzzles(SETS[set_name])
        path = raw_dir / f"{set_name}-{name}.pkl"
        if path.exists():
            raw = pickle.loads(path.read_bytes())
        else:
            with model.lock:
                raw = collect_pointer2(model, puzzles, prefix_fn)
            path.write_bytes(pickle.dumps(raw))
        line = " ".join(f"{m}={evaluate_pointer2(puzzles, raw, m):.3f}" for m in POINTER2_MODES)
        print(f"{set_name:7s} {name} {line}  s/score={np.mean(raw['seconds']):.2f}", flush=True)


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



def pointer_words(model, tokens: list[str], prefix_text: str):
    """Slot-1 log-probs of every word of the text, each word's model tokens teacher-forced in turn."""
    ids = model.bos + model.tokenize(prefix_text)
    text = "".join(tokens)
    if not text[:1].isspace():
        text = " " + text
    ids += model.tokenize(text.replace("\n", " ")) + model.tokenize("\nWords that fit:")
    words: list[str] = []
    owner = [-1] * len(tokens)
    for word, indices in local.word_groups(tokens):
        if not word:
            continue
        if word not in words:
            words.append(word)
        for i in indices:
            owner[i] = words.index(word)
    last = len(ids) - 1
    first_row = model.logits_at(ids, [last])[last]
    top = first_row.max()
    logz = top + np.log(np.exp(first_row - top).sum())
    pieces: dict[str, list[float]] = {}
    for w in words:
        wid = model.tokenize(" " + w)
        lps = [float(first_row[wid[0]] - logz)]
        if len(wid) > 1:
            rows = model.logits_at(ids + wid[:-1], range(len(ids), len(ids) + len(wid) - 1))
            lps += [local._log_softmax_at(rows[len(ids) + j], wid[j + 1]) for j in range(len(wid) - 1)]
        pieces[w] = lps
    none = float(first_row[model.tokenize(" none")[0]] - logz)
    return words, owner, pieces, none


def collect_words(model, puzzles, prefix_fn) -> dict:
    raw: dict = {"seconds": []}
    for key, puzzle in puzzles.items():
        per = []
        for explanation in puzzle["explanations"]:
            started = time.perf_counter()
            pre = prefix_fn(explanation)
            per.append([pointer_words(model, list(t), pre) for t, _ in puzzle["sequences"]])
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


def evaluate_words(puzzles, raw, how: str, floor: float) -> float:
    scores = {}
    for key, puzzle in puzzles.items():
        real = np.concatenate([v for _, v in puzzle["sequences"]])
        scores[key] = [pearson(list(real), list(np.concatenate([words_values(*s, how, floor) for s in per_seq])))
                       for per_seq in raw[key]]
    return pairwise(scores)


def run_words(sets: str, raw_dir: Path, name: str, prefix_fn) -> None:
    model = local.load_model("gemma-3-270m")
    for set_name in sets.split(","):
        puzzles = load_puzzles(SETS[set_name])
        path = raw_dir / f"{set_name}-{name}.pkl"
        if path.exists():
            raw = pickle.loads(path.read_bytes())
        else:
            with model.lock:
                raw = collect_words(model, puzzles, prefix_fn)
            path.write_bytes(pickle.dumps(raw))
        line = " ".join(f"{how}{floor:g}={evaluate_words(puzzles, raw, how, floor):.3f}"
                        for how in ("first", "sum", "mean") for floor in (-10.0, -15.0, -20.0))
        print(f"{set_name:7s} {name} {line}  s/score={np.mean(raw['seconds']):.2f}", flush=True)


if __name__ == "__main__":
    main()
