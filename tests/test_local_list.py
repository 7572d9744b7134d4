"""The list methods' constrained decoding (`local.ListDecoder`), on a stand-in model with fixed preferences.

No model is loaded: the stand-in tokenizes text into short pieces and prefers
tokens by a fixed table, so what the decoder may and may not write is checked
exactly. The real models run in tests/test_local_simulator.py (marked `model`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from scoring.simulators import local
from scoring.words import word_groups

PIECE = re.compile(r" ?[A-Za-z]{1,4}|\n\n|\n|<\|im_end\|>|[^A-Za-z\s]| ")
VOCABULARY = 4096


class _Tokenizer:
    eos_token_id = 0


class StandIn:
    """What `ListDecoder` uses of a loaded model: encode and the tokenizer's end-of-text id."""

    def __init__(self) -> None:
        self.tokenizer = _Tokenizer()
        self.ids: dict[str, int] = {"</s>": 0}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(piece, len(self.ids)) for piece in PIECE.findall(text)]

    def row(self, preferences: dict[str, float]) -> np.ndarray:
        """Fixed next-token logits: the preferred pieces at their logit, everything else at -20."""
        logits = np.full(VOCABULARY, -20.0)
        for text, logit in preferences.items():
            for token in self.encode(text):
                logits[token] = logit
        return logits


TEXT = ["Buy", " apples", ",", " watermelon", " and", " a", " lamp", "."]


def _listed(preferences: dict[str, float], tokens: Sequence[str] = TEXT, chat: bool = False) -> list[str]:
    model = StandIn()
    # The text's words get their ids first, so on equal logits a word wins over " none" (lower id).
    pieces = {word: model.encode(" " + word) for word, _ in word_groups(tokens) if word}
    decoder = local.ListDecoder(model, chat)  # type: ignore[arg-type]
    state = local._ListState(pieces)
    row = model.row(preferences)
    written: list[int] = []
    while (token := decoder.choose(state, row)) is not None:
        written.append(token)
    assert len(written) <= local.LIST_MAX_STEPS
    return state.listed


def test_only_words_of_the_text_are_listed_each_once() -> None:
    # " banana" is preferred most but is not in the text; " appl" is preferred again after "apples".
    listed = _listed({" bana": 9.0, " appl": 8.0, "es": 7.0, " wate": 6.0, ",": 5.0, "\n": 1.0})
    assert listed[:2] == ["apples", "watermelon"]
    assert "banana" not in listed and len(listed) == len(set(listed))


def test_a_word_of_several_pieces_is_listed_whole() -> None:
    assert _listed({" wate": 9.0, "rmel": 8.0, "on": 8.0, "\n": 5.0, ",": 1.0}) == ["watermelon"]


def test_the_model_ends_the_list_when_it_prefers_the_line_break() -> None:
    assert _listed({" appl": 9.0, "es": 9.0, "\n": 6.0, ",": 2.0}) == ["apples"]
    assert _listed({" appl": 9.0, "es": 9.0, "\n": 2.0, ",": 6.0, " lamp": 3.0})[:2] == ["apples", "lamp"]


def test_none_first_gives_an_empty_list() -> None:
    assert _listed({" none": 9.0, " appl": 5.0}) == []


def test_none_is_not_an_answer_after_a_word() -> None:
    listed = _listed({" appl": 9.0, "es": 9.0, ",": 8.0, " none": 7.0, "\n": 1.0})
    assert listed[0] == "apples" and "none" not in listed


def test_the_list_stops_at_the_word_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "LIST_MAX_WORDS", 2)
    assert len(_listed({",": 9.0})) == 2


def test_every_word_listed_ends_the_answer() -> None:
    # Separators preferred over the end: the decoder lists every word once and stops by itself.
    words = {word for word, _ in word_groups(TEXT) if word}
    assert set(_listed({",": 9.0})) == words


def test_the_chat_form_ends_at_the_end_of_turn() -> None:
    assert _listed({" lamp": 9.0, "<|im_end|>": 8.0, ",": 1.0, "\n": 0.0}, chat=True) == ["lamp"]


def test_no_words_no_list() -> None:
    assert _listed({" appl": 9.0}, tokens=[" ", "\n"]) == []


def _shares(rows: list[dict[str, float]], tokens: Sequence[str] = TEXT) -> list[float]:
    model = StandIn()
    pieces = {word: model.encode(" " + word) for word, _ in word_groups(tokens) if word}
    decoder = local.ListDecoder(model, chat=True)  # type: ignore[arg-type]
    logits = np.stack([model.row(preferences) for preferences in rows])
    return decoder.word_shares(logits, [pieces] * len(rows))


def test_word_share_is_the_chance_that_the_answer_names_a_word_rather_than_none() -> None:
    # Only the tokens allowed first count: the first pieces of the text's words and " none"; " bana" is not
    # in the text and its high logit changes nothing.
    equal, sure_none, sure_word, two_words = _shares(
        [
            {" none": 5.0, " appl": 5.0, " bana": 30.0},
            {" none": 9.0, " appl": 1.0},
            {" none": 1.0, " appl": 9.0},
            {" none": 5.0, " appl": 5.0, " lamp": 5.0},
        ]
    )
    assert equal == pytest.approx(0.5, abs=1e-6)  # the other words' first pieces sit at -20
    assert sure_none < 0.001 < 0.999 < sure_word
    assert two_words == pytest.approx(2.0 / 3.0, abs=1e-6)


def test_a_word_that_is_none_itself_counts_as_none_and_a_row_without_words_is_not_weighed() -> None:
    (with_none,) = _shares([{" none": 5.0, " appl": 5.0}], tokens=["none", " of", " the", " apples"])
    assert with_none == pytest.approx(0.5, abs=1e-6)
    model = StandIn()
    decoder = local.ListDecoder(model, chat=True)  # type: ignore[arg-type]
    assert decoder.word_shares(np.stack([model.row({" none": 9.0})]), [{}]) == [1.0]
