"""Each word of a text judged on its own: "Word: w / Fits: yes|no" after the rule and the text (session 6).

The shipped pointer method reads which word the model would name *first*, so the words of a text
compete for one probability: under a broad rule each fitting word gets a share, and a literal
decoy ("instances of the words X and Y") concentrates it. Here every distinct word of the text
is asked about separately: worked examples (the pointer method's own invented ones, each turned
into one "yes" and one "no" question) then the rule, the whole text, "Word: <w>" and "Fits:";
the value comes from the next-token logits of " yes" against " no". The rule and the text are
decoded once per sequence (KV cache), each word adds a few tokens.

Raw margins (logit of " yes" minus " no", per distinct word) are cached under cache/word_judge/
and scored with several mappings without the model:

  p-yes            10 x P(yes), P(yes) = sigmoid(margin)
  margin-A         the margin mapped linearly from -A (0) to +A (10), clipped
  p-yes-gap        10 x P(yes) minus the sequence's median word's, clipped at 0

    python benchmarks/word_judge.py --model smollm2 --sets dev,dev2
    python benchmarks/word_judge.py --model qwen2.5-coder-1.5b --chat --sets dev,dev2
    python benchmarks/word_judge.py --model smollm2 --sets openai --only p-yes

Choose on dev and dev2 only; the OpenAI puzzles are the test set (--only restricts what is
scored there, so the choice is made before any test number is seen).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from raw_runs import run  # noqa: E402

from scoring import prompts  # noqa: E402
from scoring.simulators import local  # noqa: E402

CACHE = ROOT / "cache" / "word_judge"

HEADER = "For each text, say whether the word fits the rule.\n\n"


def _examples() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The pointer prompt's worked examples as (rule, text, [(word, yes|no)]): a fitting word and one that is not."""
    out = []
    for rule, text, answer in prompts.LOCAL_POINTER_EXAMPLES:
        fitting = [] if answer == "none" else [word.strip() for word in answer.split(",")]
        words = [word.strip(".,;:!?") for word in text.split()]
        others = [word for word in words if word and word not in fitting and len(word) > 2]
        questions = [(fitting[0], "yes")] if fitting else []
        # a word that does not fit: the longest one, so that it is a content word (deterministic)
        questions.append((max(others, key=len), "no"))
        if len(fitting) > 1:
            questions.append((fitting[1], "yes"))
        out.append((rule, text, questions))
    return out


def prompt_parts(explanation: str, tokens: list[str], chat: bool) -> tuple[str, str, str]:
    """(worked examples, the rule and text of the query, the question format with {word})."""
    rule = " ".join(explanation.split()).rstrip(".")
    text = prompts.local_pointer_text(tokens)
    if chat:
        parts = ["<|im_start|>system\nYou judge whether a word of a text fits a rule. Answer yes or no.<|im_end|>\n"]
        for example_rule, example_text, questions in _examples():
            for word, answer in questions:
                parts.append(f"<|im_start|>user\nRule: {example_rule}\nText: {example_text}\nWord: {word}<|im_end|>\n")
                parts.append(f"<|im_start|>assistant\nFits: {answer}<|im_end|>\n")
        query = f"<|im_start|>user\nRule: {rule}\nText:{text}"
        return "".join(parts), query, "\nWord: {word}<|im_end|>\n<|im_start|>assistant\nFits:"
    parts = [HEADER]
    for example_rule, example_text, questions in _examples():
        parts.append(f"Rule: {example_rule}\nText: {example_text}\n")
        parts.extend(f"Word: {word}\nFits: {answer}\n" for word, answer in questions)
        parts.append("\n")
    return "".join(parts), f"Rule: {rule}\nText:{text}\n", "Word: {word}\nFits:"


def word_margins(model: local._LoadedModel, explanation: str, tokens: list[str], chat: bool) -> dict:
    """Per distinct word of the text: (token indices, logit(" yes") - logit(" no")). Call with `model.lock` held."""
    words: dict[str, list[int]] = {}
    for word, indices in local.word_groups(tokens):
        if word and any(character.isalnum() for character in word):
            words.setdefault(word, []).extend(indices)
    if not words:
        return {}
    examples, query, question = prompt_parts(explanation, tokens, chat)
    prefix = model.bos + model.tokenize(examples, special=chat)
    shared = prefix + model.tokenize(query, special=chat)
    yes, no = model.tokenize(" yes")[0], model.tokenize(" no")[0]
    out = {}
    for word, indices in words.items():
        ids = shared + model.tokenize(question.format(word=word), special=chat)
        row = model.logits_at(ids, [len(ids) - 1], (len(prefix), len(shared)))[len(ids) - 1]
        out[word] = (indices, float(row[yes] - row[no]))
    return out


def mappings() -> dict[str, Callable[[dict, int], np.ndarray]]:
    def p_yes(margins: dict, n_tokens: int) -> np.ndarray:
        out = np.zeros(n_tokens)
        for indices, margin in margins.values():
            out[indices] = 10.0 / (1.0 + math.exp(-margin))
        return out

    def linear(span: float) -> Callable[[dict, int], np.ndarray]:
        def values(margins: dict, n_tokens: int) -> np.ndarray:
            out = np.zeros(n_tokens)
            for indices, margin in margins.values():
                out[indices] = min(10.0, max(0.0, 5.0 + 5.0 * margin / span))
            return out

        return values

    def gap(margins: dict, n_tokens: int) -> np.ndarray:
        out = p_yes(margins, n_tokens)
        if margins:
            median = float(np.median([10.0 / (1.0 + math.exp(-m)) for _, m in margins.values()]))
            for indices, _ in margins.values():
                out[indices] = np.maximum(out[indices] - median, 0.0)
        return out

    table: dict[str, Callable[[dict, int], np.ndarray]] = {"p-yes": p_yes, "p-yes-gap": gap}
    for span in (2.0, 5.0, 10.0):
        table[f"margin-{span:g}"] = linear(span)
    return table


def main() -> None:
    run(__doc__, CACHE, word_margins, mappings(), lambda entry: {word: round(m, 2) for word, (_, m) in entry.items()})


if __name__ == "__main__":
    main()
