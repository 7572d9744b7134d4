"""Tokens joined into the words they form: the one rule every word-level simulator uses.

A token starts a new word unless it begins with a letter or digit and the token
before it ends with one, so " sh" + "elled" is the word "shelled" and "don" + "'t"
are two words. Spaces around a word are dropped from its text.
"""

from __future__ import annotations

from collections.abc import Sequence


def word_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(word without outer spaces, the indices of its tokens), in order; whitespace-only tokens give ""."""
    groups: list[tuple[str, list[int]]] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        continues = bool(groups) and token[:1].isalnum() and previous[-1:].isalnum()
        if continues:
            word, indices = groups[-1]
            groups[-1] = (word + token, [*indices, index])
        else:
            groups.append((token, [index]))
    return [(word.strip(), indices) for word, indices in groups]


def word_of_token(tokens: Sequence[str]) -> list[int]:
    """For each token, the index of its word in `word_groups`."""
    owners = [0] * len(tokens)
    for number, (_, indices) in enumerate(word_groups(tokens)):
        for index in indices:
            owners[index] = number
    return owners
