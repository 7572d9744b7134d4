"""A request that once held the scoring loop for minutes (issue 23), shared by its test and its benchmark."""

from __future__ import annotations

import random
import string
from typing import Any


def lexical_attack_body(explanation_words: int = 320, sequences: int = 20, tokens: int = 60) -> dict[str, Any]:
    """About 1 MB: many four-letter words as the explanation, and long tokens of hyphen-joined word pieces.

    Before the fix, `lexical` compared every piece with every explanation word: 33 to 46 CPU-seconds.
    """
    generator = random.Random(3)
    explanation = " ".join(
        "".join(generator.choices(string.ascii_lowercase, k=4)) for _ in range(explanation_words)
    )
    token = " " + "-".join(["wxyz"] * 200)
    return {
        "explanation": explanation,
        "activations": [
            {"tokens": [token] * tokens, "values": [float(index % 7) for index in range(tokens)]}
            for _ in range(sequences)
        ],
    }
