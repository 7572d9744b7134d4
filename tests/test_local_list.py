"""The list methods' constrained decoding (`local.answer_list`), on a stand-in model with fixed preferences.

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

PIECE = re.compile(r" ?[A-Za-z]{1,4}|\n\n|\n|<\|im_end\|>|[^A-Za-z\s]| ")
VOCABULARY = 4096


class _Llm:
    def token_eos(self) -> int:
        return 0


class StandIn:
    """What `answer_list` uses of a loaded model: tokenize, logits_at, bos, llm.token_eos."""

    bos: list[int] = []

    def __init__(self, preferences: dict[str, float]) -> None:
        self.llm = _Llm()
        self.ids: dict[str, int] = {"</s>": 0}
        self.preferences = preferences
        self.calls: list[list[int]] = []

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return [self.ids.setdefault(piece, len(self.ids)) for piece in PIECE.findall(text)]

    def logits_at(
        self, tokens: list[int], positions: Sequence[int], boundaries: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        self.calls.append(list(tokens))
        row = np.full(VOCABULARY, -20.0)
        for text, logit in self.preferences.items():
            for token in self.tokenize(text):
                row[token] = logit
        return {position: row for position in positions}


TEXT = ["Buy", " apples", ",", " watermelon", " and", " a", " lamp", "."]


def _listed(preferences: dict[str, float], tokens: Sequence[str] = TEXT, chat: bool = False) -> list[str]:
    model = StandIn(preferences)
    return [word for word, _ in local.answer_list(model, "fruit", tokens, chat=chat)]  # type: ignore[arg-type]


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
    words = {word for word, _ in local.word_groups(TEXT) if word}
    assert set(_listed({",": 9.0})) == words


def test_the_chat_form_ends_at_the_end_of_turn() -> None:
    assert _listed({" lamp": 9.0, "<|im_end|>": 8.0, ",": 1.0, "\n": 0.0}, chat=True) == ["lamp"]


def test_answer_tokens_follow_the_prompt_without_changing_it() -> None:
    model = StandIn({" appl": 9.0, "es": 9.0, ",": 8.0, " lamp": 7.0, "\n": 1.0})
    local.answer_list(model, "fruit", TEXT)  # type: ignore[arg-type]
    prompt, _ = local.pointer_prompt(model, "fruit", TEXT)  # type: ignore[arg-type]
    assert all(call[: len(prompt)] == prompt for call in model.calls)
    expected = model.tokenize(" apples, lamp,")
    assert model.calls[-1][len(prompt) : len(prompt) + len(expected)] == expected


def test_no_words_no_list() -> None:
    assert _listed({" appl": 9.0}, tokens=[" ", "\n"]) == []
