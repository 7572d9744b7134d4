"""Tokens joined into the words they form: the one rule every word-level simulator uses.

A token starts a new word unless it begins with a letter or digit and the token
before it ends with one, so " sh" + "elled" is the word "shelled" and "don" + "'t"
are two words. Spaces around a word are dropped from its text.
"""

from __future__ import annotations

from collections.abc import Sequence


def word_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(word without outer spaces, the indices of its tokens), in order; whitespace-only tokens give "".

    Linear in the text's length: a word of thousands of tokens costs no more than thousands of words.
    """
    parts: list[list[str]] = []
    members: list[list[int]] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else ""
        if parts and token[:1].isalnum() and previous[-1:].isalnum():
            parts[-1].append(token)
            members[-1].append(index)
        else:
            parts.append([token])
            members.append([index])
    return [("".join(part).strip(), indices) for part, indices in zip(parts, members, strict=True)]


def word_of_token(tokens: Sequence[str]) -> list[int]:
    """For each token, the index of its word in `word_groups`."""
    owners = [0] * len(tokens)
    for number, (_, indices) in enumerate(word_groups(tokens)):
        for index in indices:
            owners[index] = number
    return owners
