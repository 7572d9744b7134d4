"""How good must a simulator be to rank a true explanation above a literal decoy? (session 6)

Many puzzles' decoys name words the neuron fires on: "instances of the words X, Y and Z".
A simulator that follows such a decoy perfectly puts a value on every occurrence of X, Y and Z,
and that simulation already correlates with the real activations. This script measures, per
puzzle with such a decoy, the correlation of that perfect literal simulation (every token of a
named word, tokens joined into words as the local simulator joins them), and the pairs a
*degraded oracle* of the true explanation wins against it: the real activations, of which each
firing token is kept with probability `recall` and each silent token gets the puzzle's top value
with probability `false_alarm` (200 seeded draws per cell; a pair counts as won in the share of
draws where the oracle's correlation is higher). No model runs; the puzzles are only read.

    python benchmarks/ceiling.py                      # OpenAI's puzzles
    python benchmarks/ceiling.py --set dev2
    python benchmarks/ceiling.py --results benchmarks/results_local_large_openai.json

--results adds, per puzzle, the correlations a saved `bench --json` run gave the true explanation
and the literal decoy, beside the perfect literal simulation's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from local_experiments import SETS, load_puzzles, pearson  # noqa: E402

from scoring.simulators.local import word_groups  # noqa: E402

LITERAL = re.compile(r"^(instances of the (words|years|numbers|letters)|the sequences of digits) ")
RECALLS = (1.0, 0.8, 0.6)
FALSE_ALARMS = (0.0, 0.01, 0.02, 0.05, 0.1)
DRAWS = 200


def literal_words(explanation: str) -> list[str] | None:
    """The words a literal decoy names (quoted, or bare numbers), or None when it is not one."""
    if not LITERAL.match(explanation):
        return None
    named = re.findall(r'"([^"]+)"|\b(\d+)\b', explanation)
    return [quoted or number for quoted, number in named]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="openai", choices=list(SETS))
    parser.add_argument("--results", type=Path, help="a saved `bench --json` output on the same set")
    args = parser.parse_args()
    puzzles = load_puzzles(SETS[args.set])
    saved = json.loads(args.results.read_text())["puzzles"] if args.results else {}
    rng = np.random.default_rng(0)
    wins = {(r, f): 0.0 for r in RECALLS for f in FALSE_ALARMS}
    pairs = 0
    print(f"{'puzzle':14s} {'firing':>6s} {'tokens':>6s} {'literal':>7s}" + (" run: true / literal" if saved else ""))
    for key, puzzle in puzzles.items():
        decoys = [
            (e, words)
            for e, text in enumerate(puzzle["explanations"][1:], 1)
            if (words := literal_words(text)) is not None
        ]
        if not decoys:
            continue
        tokens = [token for sequence, _ in puzzle["sequences"] for token in sequence]
        real = np.array([value for _, values in puzzle["sequences"] for value in values])
        firing = real > 0
        for e, words in decoys:
            literal = np.zeros(len(tokens))
            for word, indices in word_groups(tokens):
                if word in words:
                    literal[indices] = 10.0
            literal_r = pearson(real.tolist(), literal.tolist())
            pairs += 1
            line = f"{key:14s} {int(firing.sum()):6d} {len(tokens):6d} {literal_r:7.2f}"
            if key in saved:
                text = puzzle["explanations"][e]
                line += f"  {saved[key]['true_score']:.2f} / {saved[key]['false_scores'].get(text, float('nan')):.2f}"
            print(line)
            for r in RECALLS:
                for f in FALSE_ALARMS:
                    won = 0
                    for _ in range(DRAWS):
                        kept = firing & (rng.random(len(real)) < r)
                        alarms = ~firing & (rng.random(len(real)) < f)
                        oracle = np.where(kept, real, 0.0) + np.where(alarms, real.max(), 0.0)
                        won += pearson(real.tolist(), oracle.tolist()) > literal_r
                    wins[(r, f)] += won / DRAWS
    print(f"\nshare of the {pairs} literal-decoy pairs a degraded oracle of the true explanation wins")
    print("recall \\ false alarms " + " ".join(f"{f:>6.0%}" for f in FALSE_ALARMS))
    for r in RECALLS:
        print(f"{r:>21.0%} " + " ".join(f"{wins[(r, f)] / pairs:6.2f}" for f in FALSE_ALARMS))


if __name__ == "__main__":
    main()
