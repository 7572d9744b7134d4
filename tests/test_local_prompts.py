"""Prompt text of the local simulator's methods, exactly (no model needed)."""

from __future__ import annotations

from scoring import prompts
from scoring.words import word_groups


def test_pointer_prefix_exact_text() -> None:
    prefix = prompts.local_pointer_examples() + prompts.local_pointer_rule("  names of  birds. ")
    assert prefix.startswith("For each text, list the words of the text that fit the rule, or none.\n\n"
                             "Rule: names of vegetables\n"
                             "Text: We bought carrots and a cabbage at the market, then a lamp.\n"
                             "Words that fit: carrots, cabbage\n\n")
    assert "Text: The train left the station at noon and nobody waved.\nWords that fit: none\n\n" in prefix
    assert prefix.endswith("Words that fit: blue, cold\n\nRule: names of birds\nText:")
    assert prefix.count("Rule:") == len(prompts.LOCAL_POINTER_EXAMPLES) + 1


def test_pointer_text_is_one_line_with_a_leading_space() -> None:
    assert prompts.local_pointer_text(["Hello", " world", "\n", "Bye"]) == " Hello world Bye"
    assert prompts.local_pointer_text([" already", " spaced"]) == " already spaced"


def test_word_groups_join_pieces_and_split_punctuation() -> None:
    tokens = ["The", " sh", "elled", " peas", ",", " 16", "87", " <", "div", ">"]
    assert word_groups(tokens) == [
        ("The", [0]), ("shelled", [1, 2]), ("peas", [3]), (",", [4]), ("1687", [5, 6]),
        ("<", [7]), ("div", [8]), (">", [9]),
    ]


def test_pointer_chat_prompt_exact_text() -> None:
    examples = prompts.local_pointer_chat_examples()
    assert examples.startswith(
        "<|im_start|>system\nYou list the words of a text that fit a rule, or answer none.<|im_end|>\n"
        "<|im_start|>user\nRule: names of vegetables\n"
        "Text: We bought carrots and a cabbage at the market, then a lamp.<|im_end|>\n"
        "<|im_start|>assistant\nWords that fit: carrots, cabbage<|im_end|>\n"
    )
    assert examples.count("<|im_start|>assistant\n") == len(prompts.LOCAL_POINTER_EXAMPLES)
    query = (
        prompts.local_pointer_chat_rule(" names of birds. ")
        + prompts.local_pointer_text(["A", " crow", " sang"])
        + prompts.LOCAL_POINTER_CHAT_ANSWER
    )
    assert query == (
        "<|im_start|>user\nRule: names of birds\nText: A crow sang<|im_end|>\n"
        "<|im_start|>assistant\nWords that fit:"
    )
