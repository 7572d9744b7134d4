"""How hard is each dev puzzle for a literal reader? Checks a puzzle file's shape and its literal decoys.

A literal decoy names the surface words a neuron fires on ("instances of the words "X", "Y" and
"Z""). A simulator that follows it perfectly puts 10 on every token of every occurrence of a
named word (tokens joined into words as `benchmarks/ceiling.py` joins them, compared without
case) and 0 elsewhere. This script prints, per puzzle, the Pearson correlation of that literal
simulation with the real activations over all the puzzle's tokens (the best of its literal decoys
when it has several), and the median over the puzzles that have one. A puzzle is hard in the
intended way when the literal decoy correlates 0.5-0.7: it names most firing words, and those
words also occur where the rule does not hold. No model runs.

It also checks the shape each dev puzzle should have: 3-4 false explanations, 6-12 sentences of
10-40 tokens, activations in 0..10, and every word a literal decoy names occurring, some of them
inactive.

    python benchmarks/dev_check.py                        # benchmarks/dev_puzzles_3.json
    python benchmarks/dev_check.py benchmarks/dev_puzzles_2.json --json
    python -m scoring bench benchmarks/dev_puzzles_3.json --simulator embedding --json > run.json
    python benchmarks/dev_check.py --results run.json     # + pairs that run won against literal decoys and others
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "benchmarks" / "dev_puzzles_3.json"

LITERAL = re.compile(r'^(instances of )?the (words?|numbers|years|names|tokens|letters) "')
TARGET = (0.5, 0.7)
SENTENCES = (6, 12)
TOKENS = (10, 40)
FALSE_EXPLANATIONS = (3, 4)


def word_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Tokens joined into words: (word without outer spaces, token indices).

    A token that starts with a space or a non-alphanumeric character, or that follows one ending
    in a non-alphanumeric character, starts a new word (as the local simulator and ceiling.py join them).
    """
    groups: list[tuple[str, list[int]]] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        starts = not groups or token[:1].isspace() or not token[:1].isalnum() or not previous[-1:].isalnum()
        if starts:
            groups.append((token, [index]))
        else:
            word, indices = groups[-1]
            groups[-1] = (word + token, [*indices, index])
    return [(word.strip(), indices) for word, indices in groups]


def literal_words(explanation: str) -> list[str] | None:
    """The quoted words a literal decoy names, or None when the explanation is not one."""
    if not LITERAL.match(explanation):
        return None
    return re.findall(r'"([^"]+)"', explanation)


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def sentences_of(puzzle: dict[str, Any]) -> list[tuple[list[str], list[float]]]:
    return [
        (
            [item if isinstance(item, str) else item[0] for item in sentence],
            [0.0 if isinstance(item, str) else float(item[1]) for item in sentence],
        )
        for sentence in puzzle["sentences"]
    ]


def literal_simulation(tokens: Sequence[str], words: Sequence[str]) -> list[float]:
    """A perfectly followed literal decoy: 10 on every token of a named word, else 0."""
    wanted = {word.lower() for word in words}
    simulated = [0.0] * len(tokens)
    for word, indices in word_groups(tokens):
        if word.lower() in wanted:
            for index in indices:
                simulated[index] = 10.0
    return simulated


def check_puzzle(key: str, puzzle: dict[str, Any]) -> dict[str, Any]:
    """Shape problems and literal-decoy figures of one puzzle."""
    sequences = sentences_of(puzzle)
    tokens = [token for sequence, _ in sequences for token in sequence]
    real = [value for _, values in sequences for value in values]
    problems = []
    n_false = len(puzzle["false_explanations"])
    if not FALSE_EXPLANATIONS[0] <= n_false <= FALSE_EXPLANATIONS[1]:
        problems.append(f"{n_false} false explanations")
    if not SENTENCES[0] <= len(sequences) <= SENTENCES[1]:
        problems.append(f"{len(sequences)} sentences")
    for number, (sequence, values) in enumerate(sequences):
        if not TOKENS[0] <= len(sequence) <= TOKENS[1]:
            problems.append(f"sentence {number} has {len(sequence)} tokens")
        if any(not 0 <= value <= 10 for value in values):
            problems.append(f"sentence {number} has an activation outside 0..10")
    if not any(real):
        problems.append("nothing fires")
    decoys = []
    for text in puzzle["false_explanations"]:
        words = literal_words(text)
        if words is None:
            continue
        simulated = literal_simulation(tokens, words)
        fired: dict[str, list[bool]] = {word.lower(): [] for word in words}
        for sequence, values in sequences:
            for word, indices in word_groups(sequence):
                if word.lower() in fired:
                    fired[word.lower()].append(any(values[index] > 0 for index in indices))
        for word, flags in fired.items():
            if not flags:
                problems.append(f"decoy word {word!r} never occurs")
        if not any(flag is False for flags in fired.values() for flag in flags):
            problems.append(f"no word of the decoy {text!r} occurs inactive")
        decoys.append({"explanation": text, "correlation": pearson(real, simulated), "occurrences": fired})
    correlations = [decoy["correlation"] for decoy in decoys if not math.isnan(decoy["correlation"])]
    return {
        "key": key,
        "sentences": len(sequences),
        "tokens": len(tokens),
        "firing_tokens": sum(value > 0 for value in real),
        "literal_correlation": max(correlations) if correlations else None,
        "decoys": [
            {
                "explanation": decoy["explanation"],
                "correlation": None if math.isnan(decoy["correlation"]) else round(decoy["correlation"], 3),
                "active_occurrences": {
                    word: f"{sum(flags)}/{len(flags)}" for word, flags in decoy["occurrences"].items()
                },
            }
            for decoy in decoys
        ],
        "problems": problems,
    }


def check_file(path: Path) -> dict[str, Any]:
    puzzles = json.loads(path.read_text(encoding="utf-8"))
    rows = [check_puzzle(key, puzzle) for key, puzzle in puzzles.items()]
    literal = [row["literal_correlation"] for row in rows if row["literal_correlation"] is not None]
    return {
        "file": str(path),
        "puzzles": len(rows),
        "pairs": sum(len(puzzle["false_explanations"]) for puzzle in puzzles.values()),
        "with_literal_decoy": len(literal),
        "literal_median": statistics.median(literal) if literal else None,
        "literal_in_target": sum(TARGET[0] <= value <= TARGET[1] for value in literal),
        "problems": sum(len(row["problems"]) for row in rows),
        "rows": rows,
    }


def _won(true_score: float | None, false_score: float | None) -> bool:
    """As `scoring.bench` counts a pair: a missing (NaN) true score loses, a missing false score loses."""
    return true_score is not None and (false_score is None or true_score > false_score)


def split_results(path: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """Pairs a saved `bench --json` run won against literal decoys and against the other false explanations."""
    puzzles = json.loads(path.read_text(encoding="utf-8"))
    counts = {"literal_pairs_won": 0, "literal_pairs": 0, "other_pairs_won": 0, "other_pairs": 0}
    for key, entry in saved["puzzles"].items():
        if key not in puzzles:
            raise SystemExit(f"the saved run has puzzle {key!r}, which {path} does not: give a run on the same file")
        for text, false_score in entry["false_scores"].items():
            kind = "literal" if literal_words(text) is not None else "other"
            counts[f"{kind}_pairs"] += 1
            counts[f"{kind}_pairs_won"] += _won(entry["true_score"], false_score)
    return {"simulator": saved.get("simulator"), "scorer": saved.get("scorer"), **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("puzzles", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--results", type=Path, help="a saved `python -m scoring bench FILE --json` run on this file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = check_file(args.puzzles)
    if args.results:
        report["results"] = split_results(args.puzzles, json.loads(args.results.read_text(encoding="utf-8")))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'puzzle':26s} {'sent':>4s} {'tok':>4s} {'fire':>4s} {'literal':>7s}  decoy words (active/all)")
    for row in report["rows"]:
        value = row["literal_correlation"]
        words = "; ".join(
            ", ".join(f"{word} {count}" for word, count in decoy["active_occurrences"].items())
            for decoy in row["decoys"]
        )
        print(
            f"{row['key']:26s} {row['sentences']:4d} {row['tokens']:4d} {row['firing_tokens']:4d} "
            f"{'-' if value is None else f'{value:7.2f}':>7s}  {words}"
        )
        for problem in row["problems"]:
            print(f"    problem: {problem}")
    median = report["literal_median"]
    print(
        f"\n{report['puzzles']} puzzles, {report['pairs']} pairs; literal decoy in {report['with_literal_decoy']}, "
        f"median correlation {'-' if median is None else f'{median:.2f}'}, "
        f"{report['literal_in_target']} in {TARGET[0]}-{TARGET[1]}; {report['problems']} shape problems"
    )
    if "results" in report:
        run = report["results"]
        print(
            f"saved run ({run['simulator']}, {run['scorer']}): won {run['literal_pairs_won']} of "
            f"{run['literal_pairs']} pairs against literal decoys, {run['other_pairs_won']} of {run['other_pairs']} "
            "against the other false explanations"
        )
    if report["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
