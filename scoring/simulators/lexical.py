"""`lexical`: a fast baseline with no model.

Content words of the explanation (and any quoted strings in it) are stemmed
and matched against whole words of the text. Tokens are first joined into the
words they form (a token with no leading space continues the previous word),
so a token is judged with its word around it: " she" inside " shelled" is the
word "shelled", which "female pronouns" does not match. Every token of a
matching word gets the match's strength.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from scoring.simulators.base import Capabilities, SequenceSimulation, SimulationBatch, Usage
from scoring.words import word_groups

# Generic English function words and words that describe explanations
# themselves rather than what a neuron responds to.
STOP_WORDS = frozenset(
    """
    a an the and or but nor of in on at to for from by with without into onto about as is are was were be been
    being it its this that these those there their them they we you i me my our your not no
    any all some each every other such than then so very just also only more most less least many much
    can could would should may might will shall do does did done has have had having if when where which who
    whom whose what while after before during up down out over under again further once here both few own same
    too s t word words token tokens text texts phrase phrases mention mentions mentioned reference references
    referring refers related relating relates concept concepts term terms instance instances occurrence
    occurrences usage use used uses like including include includes especially particularly typically often
    usually various different certain kind kinds type types thing things something context contexts part parts
    form forms within between across among appear appears appearing specific general generally
    """.split()
)

_SUFFIXES = ("ational", "ization", "ations", "ation", "ness", "ments", "ment", "ings", "ing", "ies", "ied",
             "ers", "er", "est", "ed", "ly", "es", "s")

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def stem(word: str) -> str:
    """A light suffix-stripping stem (keeps at least 3 letters)."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                base += "y"
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base
    return word


def explanation_terms(explanation: str) -> tuple[set[str], set[str]]:
    """(stems of content words, exact quoted strings) of an explanation."""
    lowered = explanation.lower()
    quoted = {q.strip() for q in re.findall(r"[\"'“‘]([^\"'”’]{1,40})[\"'”’]", lowered) if q.strip()}
    stems = {stem(word) for word in _WORD.findall(lowered) if word not in STOP_WORDS and len(word) > 1}
    return stems, quoted


MIN_PREFIX = 4
"""A stem and a word piece that start alike over at least this many letters are a partial match."""

_END = ""
"""The key that marks, in a node of `_Terms.trie`, that a stem ends there."""


class _Terms:
    """An explanation's terms, looked up in time linear in the word piece (never piece x term).

    The stems sit in a trie; walking a piece's stem down it tells in one pass whether the piece is a stem
    (10), a stem starts the piece, or the piece starts a stem, over MIN_PREFIX letters or more (6).
    """

    def __init__(self, explanation: str) -> None:
        self.stems, self.quoted = explanation_terms(explanation)
        self.trie: dict[str, Any] = {}
        for target in self.stems:
            node = self.trie
            for letter in target:
                node = node.setdefault(letter, {})
            node[_END] = {}
        self.piece_strength: dict[str, float] = {}

    def piece(self, piece: str) -> float:
        """10 for a piece whose stem is a term, 6 when it and a term start alike (4+ letters), else 0."""
        known = self.piece_strength.get(piece)
        if known is None:
            known = self.piece_strength[piece] = self._walk(stem(piece))
        return known

    def _walk(self, piece_stem: str) -> float:
        node = self.trie
        for depth, letter in enumerate(piece_stem):
            if depth >= MIN_PREFIX and _END in node:
                return 6.0  # a term is the start of the piece
            child = node.get(letter)
            if child is None:
                return 0.0
            node = child
        if _END in node:
            return 10.0
        return 6.0 if len(piece_stem) >= MIN_PREFIX else 0.0  # the piece is the start of a longer term

    def word(self, word: str) -> float:
        if not word:
            return 0.0
        if word in self.quoted:
            return 10.0
        best = 0.0
        for piece in _WORD.findall(word):
            best = max(best, self.piece(piece))
            if best == 10.0:
                break
        return best


class LexicalSimulator:
    name = "lexical"
    model = "stem-match"
    prompt_version = "lexical-1"
    capabilities = Capabilities(max_sequences_per_call=64, max_concurrency=1, cheap=True)

    def options(self) -> dict[str, Any]:
        return {}

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        terms = _Terms(explanation)
        results = []
        for tokens in sequences:
            values = [0.0] * len(tokens)
            for word, indices in word_groups(tokens):
                strength = terms.word(word.lower())
                for index in indices:
                    values[index] = strength
            results.append(SequenceSimulation(values))
            # This runs on the caller's event loop: between sequences, let other requests' work run and let a
            # deadline (a cancelled task) stop this one.
            await asyncio.sleep(0)
        return SimulationBatch(results, Usage())
