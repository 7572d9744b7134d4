"""Every prompt text the simulators send, each with a version string that enters the cache key.

Each section is headed by the simulator that uses it. Editing a prompt means bumping its version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from scoring.shared_types import JudgeQuestion

# ---------------------------------------------------------------------------
# API simulators (scoring/simulators/openai_backend.py)
#
# Written for this project. Two layouts share one design: a short fixed prefix
# (identical across requests, so servers can cache it), then the explanation,
# then several sequences in one request. Both ask the model to read a whole
# sequence before rating a token, so that a surface match out of context
# (a fragment inside a longer word, a word in another sense) scores low.
# ---------------------------------------------------------------------------

API_CHAT_PROMPT_VERSION = "api-chat-1"
"""Version of the chat layout (JSON reply; read with or without generated-token logprobs)."""

API_CHAT_SYSTEM = """\
You predict how strongly one neuron of a language model fires on each token of some texts, \
given a short explanation of what the neuron responds to.

Scale: integers 0 to 10. 0 means no activation (most tokens); 10 means the clearest case of \
what the explanation describes; values in between mean a weaker or partial match.

Read each sequence as a whole before rating it. Rate a token by what it means where it stands, \
not by how it looks: a fragment of a longer word, a word used in another sense, or a match of \
spelling alone gets 0, unless the explanation itself is about spelling or word pieces. When the \
explanation names a context (a topic, a construction, a position), rate the tokens inside it.

Input: the explanation, then numbered sequences. Each gives its token count, then its tokens \
separated by "|" (leading spaces kept, a line break written as \\n).

Reply with only a JSON object that maps each sequence number to a list of integers, one per \
token, in order, each list exactly as long as the stated token count. Example of the shape: \
{"1": [0, 0, 7, 0], "2": [3, 0]}"""
"""Shared system message of the chat layout; identical for every request."""

API_CHAT_RETRY = """\
That reply could not be used: {problems}
Reply again with only the JSON object, one integer from 0 to 10 per token."""
"""Follow-up user message after an invalid reply; `{problems}` lists what was wrong."""

API_TOKEN_SEPARATOR = "|"
"""Joins tokens in the chat layout; a literal "|" inside a token is shown as "¦"."""


def api_token_text(token: str) -> str:
    """A token as the API prompts show it: line breaks and tabs escaped, separators replaced."""
    return (
        token.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace(API_TOKEN_SEPARATOR, "¦")
    )


def api_chat_user_message(explanation: str, sequences: list[list[str]]) -> str:
    """The per-request part of the chat layout: the explanation and numbered sequences."""
    lines = [f"Explanation: {explanation.strip()}", ""]
    for number, tokens in enumerate(sequences, start=1):
        shown = API_TOKEN_SEPARATOR.join(api_token_text(token) for token in tokens)
        lines.append(f"{number} ({len(tokens)} tokens): {shown}")
    return "\n".join(lines)


API_ECHO_PROMPT_VERSION = "api-echo-1"
"""Version of the one-pass layout read through prompt-token logprobs."""

API_ECHO_SLOT = "?"
"""Placeholder written in every slot; the model's distribution at the slot is the prediction."""

API_ECHO_HEADER = """\
A neuron of a language model is described by an explanation. For each text below, the text is \
shown whole, then each of its tokens on its own line, a tab, and the neuron's activation on that \
token from 0 (none, most tokens) to 10 (strongest). A token is rated by its meaning in context: \
a fragment of a longer word or a word used in another sense gets 0.

Explanation: animals
Text: The cat walked past a category sign.
The\t0
 cat\t10
 walked\t0
 past\t0
 a\t0
 cat\t0
egory\t0
 sign\t0
.\t0

"""
"""Fixed opening of every one-pass prompt (the cacheable prefix), with one worked example."""


def api_echo_prompt(explanation: str, sequences: list[list[str]]) -> tuple[str, list[list[int]]]:
    """The one-pass prompt and, per sequence, the character offset of each token's slot.

    Each token line ends in `API_ECHO_SLOT`; the caller reads the distribution the model
    assigns at that offset over the tokens "0".."10".
    """
    parts = [API_ECHO_HEADER, f"Explanation: {explanation.strip()}\n"]
    length = sum(len(part) for part in parts)
    slots: list[list[int]] = []
    for tokens in sequences:
        shown_text = "".join(tokens).replace("\r", " ").replace("\n", " ").strip()
        text_line = f"Text: {shown_text}\n"
        parts.append(text_line)
        length += len(text_line)
        sequence_slots = []
        for token in tokens:
            prefix = f"{api_token_text(token)}\t"
            sequence_slots.append(length + len(prefix))
            line = f"{prefix}{API_ECHO_SLOT}\n"
            parts.append(line)
            length += len(line)
        slots.append(sequence_slots)
        parts.append("\n")
        length += 1
    return "".join(parts), slots


# ---------------------------------------------------------------------------
# Local simulator (scoring/simulators/local.py)
#
# Written for this project. The pointer prompt shows invented worked examples of
# "Rule / Text / Words that fit", then the explanation as the rule and the
# sequence; the model's answer names the words that fit. The worked examples
# share no topic with any benchmark.
# ---------------------------------------------------------------------------

LOCAL_LIST_SEPARATOR = ","
"""Separator between the words of an answer list."""

LOCAL_POINTER_PROMPT_VERSION = "local-pointer-1"
"""Version of the worked examples and layout of the pointer method (the local default)."""

LOCAL_POINTER_HEADER = "For each text, list the words of the text that fit the rule, or none.\n\n"
"""Opening of every pointer prompt."""

LOCAL_POINTER_EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("names of vegetables", "We bought carrots and a cabbage at the market, then a lamp.", "carrots, cabbage"),
    ("the word \"light\" when it means not heavy", "Turn on the light, please; this box is light enough to carry.",
     "light"),
    ("numbers larger than one hundred", "She paid 40 dollars for 250 stickers and gave 3 of them away.", "250"),
    ("names of vegetables", "The train left the station at noon and nobody waved.", "none"),
    ("the word right after \"the\"", "Then the cat sat on a mat while a dog watched.", "cat"),
    ("instances of the words \"blue\" and \"cold\"", "The blue car was cold inside, and the red one was warm.",
     "blue, cold"),
)
"""Worked examples: (rule, text, the words of the text that fit it). Invented; no benchmark topic."""

LOCAL_LIST_DECODE_VERSION = "list-2"
"""Version of how the list methods decode the pointer prompt's whole answer (local.answer_list); list-2 also
reports each text's chance that the answer names a word rather than "none" (`SequenceSimulation.applies`)."""

LOCAL_ANSWER_GATE_VERSION = "none-gate-1"
"""Version of how ``gate=on`` weighs a text's values by the chance that its answer names a word rather than
"none" (local.ListDecoder.word_shares)."""

LOCAL_POINTER_ANSWER = "\nWords that fit:"
"""Written after the text; the model's next words are read from here."""


def local_pointer_examples(examples: Sequence[tuple[str, str, str]] = LOCAL_POINTER_EXAMPLES) -> str:
    """The part of every pointer prompt that does not depend on the explanation (other examples: experiments)."""
    parts = [LOCAL_POINTER_HEADER]
    for rule, text, answer in examples:
        parts.append(f"Rule: {rule}\nText: {text}{LOCAL_POINTER_ANSWER} {answer}\n\n")
    return "".join(parts)


def local_rule(explanation: str) -> str:
    """The explanation as a rule line: whitespace collapsed, trailing full stop dropped."""
    return "Rule: " + " ".join(explanation.split()).rstrip(".")


def local_pointer_rule(explanation: str) -> str:
    """The explanation as the rule, then "Text:"."""
    return f"{local_rule(explanation)}\nText:"


LOCAL_POINTER_CHAT_PROMPT_VERSION = "local-pointer-chat-1"
"""Version of the chat form of the pointer prompt (same worked examples, as ChatML turns)."""

LOCAL_POINTER_CHAT_SYSTEM = "You list the words of a text that fit a rule, or answer none."
"""System turn of the pointer prompt in chat form (``method=pointer-chat``, for ChatML instruction models)."""


def chatml(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def local_pointer_chat_examples(
    examples: Sequence[tuple[str, str, str]] = LOCAL_POINTER_EXAMPLES, text_first: bool = False
) -> str:
    """The explanation-independent part of the chat-form pointer prompt: system turn and worked examples as turns
    (with `text_first`, each example's text before its rule)."""
    parts = [chatml("system", LOCAL_POINTER_CHAT_SYSTEM)]
    for rule, text, answer in examples:
        question = f"Text: {text}\nRule: {rule}" if text_first else f"Rule: {rule}\nText: {text}"
        parts.append(chatml("user", question))
        parts.append(chatml("assistant", f"{LOCAL_POINTER_ANSWER.strip()} {answer}"))
    return "".join(parts)


def local_pointer_chat_rule(explanation: str) -> str:
    """Opens the user turn of the query: the explanation as the rule, then "Text:"."""
    return "<|im_start|>user\n" + local_pointer_rule(explanation)


LOCAL_POINTER_CHAT_ANSWER = "<|im_end|>\n<|im_start|>assistant\n" + LOCAL_POINTER_ANSWER.strip()
"""Closes the user turn after the text and opens the answer; the model's next words are read from here."""


LOCAL_TEXT_FIRST_CHAT_PROMPT_VERSION = "local-text-first-chat-1"
"""Version of the text-first chat prompt (``method=text-first-chat``): the same worked examples with each text
before its rule, so a text's key/value cells serve every explanation scored on it."""


def local_text_first_chat_examples(examples: Sequence[tuple[str, str, str]] = LOCAL_POINTER_EXAMPLES) -> str:
    """Everything before a text in the text-first chat prompt: system turn, worked examples (text, then rule), and
    the query's "Text:" (nothing here depends on the explanation or the text)."""
    return local_pointer_chat_examples(examples, text_first=True) + "<|im_start|>user\nText:"


def local_text_first_chat_rule(explanation: str) -> str:
    """Written after a text in the text-first chat prompt: the rule, the end of the user turn and the answer cue."""
    return "\n" + local_rule(explanation) + LOCAL_POINTER_CHAT_ANSWER


def local_pointer_text(tokens: Sequence[str]) -> str:
    """The sequence as one line after "Text:" (a leading space added when its first token has none)."""
    text = "".join(tokens).replace("\r", " ").replace("\n", " ")
    return text if text[:1].isspace() else " " + text


# ---------------------------------------------------------------------------
# Judge questions (scoring/judged.py asks them; every judging simulator answers)
#
# Written for this project. Every question has one layout, so a judge sees the
# explanation first (shared by all questions about it, which keeps a prompt
# prefix cacheable) and the per-question text last:
#
#     <intro of the kind>
#     Explanation: <explanation>
#     Text: <content>
#     Question: <question of the kind>
#
# Marked tokens are wrapped in << >>. Chat models get this layout after a
# system message; base models get the plainer form further down. Editing any
# text of this section means bumping JUDGE_PROMPT_VERSION.
# ---------------------------------------------------------------------------

JUDGE_PROMPT_VERSION = "judge-1"
"""Version of every judge prompt text below (intros, questions, framing)."""

JUDGE_MARK_OPEN = "<<"
JUDGE_MARK_CLOSE = ">>"
"""Wrap the marked tokens of a text (leading and trailing spaces stay outside)."""

JUDGE_INTROS = {
    "detection": "An explanation says what makes a neuron of a language model fire.",
    "fuzzing": "An explanation says on which tokens a neuron of a language model fires; "
    "some tokens of the text are marked with << >>.",
    "binary-condition": "An explanation states a condition under which a neuron of a language model fires.",
    "attention-head": "An explanation says which token an attention head of a language model attends from "
    "and which token it attends to; two tokens of the text are marked with << >>.",
}
"""First line of each kind of question."""

JUDGE_QUESTIONS = {
    "detection": "Does the text contain what the explanation describes?",
    "fuzzing": "Are the marked tokens what the explanation describes?",
    "binary-condition": "Does the condition of the explanation hold in this text?",
    "attention-head": "Does the explanation describe attention from the from-token to the to-token?",
}
"""Last line of each kind of question (after "Question: ")."""

JUDGE_CHAT_SYSTEM = (
    "You check explanations of what a part of a language model (a neuron, a feature or an attention head) "
    "responds to. Each message gives an explanation, a text and one question about them. "
    "Answer with one word: Yes or No."
)
"""System message of chat judges; identical for every question."""

JUDGE_CHAT_RETRY = "Answer with one word only: Yes or No."
"""Follow-up user message after a reply that was neither Yes nor No."""

JUDGE_YES = " Yes"
JUDGE_NO = " No"
"""The two answers a base-model judge chooses between, after "Answer:"."""

# A small base model (the local judge) does better when the explanation sits
# inside a plain question and a few worked examples come first than with the
# chat layout above; these are its questions and examples. The examples are
# invented and share no topic with any benchmark.

JUDGE_BASE_QUESTIONS = {
    "detection": "Does the text mention {explanation}?",
    "fuzzing": "Are the words between << and >> {explanation}?",
    "binary-condition": "Does the text mention {explanation}?",
    "attention-head": "Does the attention from the from-token to the to-token match: {explanation}?",
}
"""The question of each kind for base models; `{explanation}` is filled in."""

_DETECTION_EXAMPLES = (
    ("musical instruments", "He tuned the guitar before the concert.", "Yes"),
    ("musical instruments", "The bus was late again this morning.", "No"),
    ("kitchen utensils", "The river flooded the valley in spring.", "No"),
    ("kitchen utensils", "Stir the soup with a wooden spoon.", "Yes"),
    ("sports", "They played football in the park.", "Yes"),
    ("sports", "The soup needs more salt.", "No"),
)

JUDGE_BASE_EXAMPLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "detection": _DETECTION_EXAMPLES,
    "fuzzing": (
        ("musical instruments", "He tuned the <<guitar>> before the concert.", "Yes"),
        ("musical instruments", "He <<tuned>> the guitar before the concert.", "No"),
        ("kitchen utensils", "Stir the soup <<with>> a wooden spoon.", "No"),
        ("kitchen utensils", "Stir the soup with a wooden <<spoon>>.", "Yes"),
        ("sports", "They played <<football>> in the park.", "Yes"),
        ("sports", "They played football in the <<park>>.", "No"),
    ),
    "binary-condition": _DETECTION_EXAMPLES,
    "attention-head": (
        (
            "each token attends to the token just before it",
            'The <<quick>> <<brown>> fox\nFrom-token: "brown" (token 3)\nTo-token: "quick" (token 2)',
            "Yes",
        ),
        (
            "each token attends to the token just before it",
            '<<The>> quick <<brown>> fox\nFrom-token: "brown" (token 3)\nTo-token: "The" (token 1)',
            "No",
        ),
        (
            "pronouns attend to the name they refer to",
            '<<Anna>> said that <<she>> was tired\nFrom-token: "she" (token 4)\nTo-token: "Anna" (token 1)',
            "Yes",
        ),
        (
            "pronouns attend to the name they refer to",
            'Anna <<said>> that <<she>> was tired\nFrom-token: "she" (token 4)\nTo-token: "said" (token 2)',
            "No",
        ),
    ),
}
"""Worked examples per kind for base models: (explanation, content, answer)."""


def _base_block(kind: str, explanation: str, content: str) -> str:
    cleaned = " ".join(explanation.split()).rstrip(".")
    return f"Text: {content}\nQuestion: {JUDGE_BASE_QUESTIONS[kind].format(explanation=cleaned)}\nAnswer:"


def judge_completion_prompt(question: JudgeQuestion) -> str:
    """The text a base-model judge continues: worked examples of the question's kind, then the
    question, ending in "Answer:" (the next token is compared between JUDGE_YES and JUDGE_NO)."""
    examples = "".join(
        f"{_base_block(question.kind, explanation, content)} {answer}\n\n"
        for explanation, content, answer in JUDGE_BASE_EXAMPLES[question.kind]
    )
    return examples + _base_block(question.kind, question.explanation, question.content)


def judge_text(tokens: Sequence[str], marked: Sequence[tuple[int, int]] = ()) -> str:
    """The tokens as one line of text, each (start, end) token span wrapped in << >>.

    Spans must not overlap. Line breaks become spaces and the ends are stripped,
    so a text fits the one-line "Text:" slot.
    """
    opening = {start for start, _ in marked}
    closing = {end - 1 for _, end in marked}
    parts: list[str] = []
    for index, token in enumerate(tokens):
        token = token.replace("\r", " ").replace("\n", " ")
        if index in opening:
            stripped = token.lstrip()
            parts.append(token[: len(token) - len(stripped)] + JUDGE_MARK_OPEN)
            token = stripped
        if index in closing:
            stripped = token.rstrip()
            parts.append(stripped + JUDGE_MARK_CLOSE + token[len(stripped):])
        else:
            parts.append(token)
    return "".join(parts).strip()


def token_runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted token indices grouped into (start, end) runs of consecutive tokens."""
    runs: list[tuple[int, int]] = []
    for index in sorted(indices):
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def judge_question(kind: str, explanation: str, content: str) -> JudgeQuestion:
    """A question of one kind (a key of JUDGE_QUESTIONS) about `content`."""
    cleaned = " ".join(explanation.split())
    prompt = (
        f"{JUDGE_INTROS[kind]}\nExplanation: {cleaned}\nText: {content}\nQuestion: {JUDGE_QUESTIONS[kind]}"
    )
    return JudgeQuestion(kind, explanation, content, prompt, JUDGE_PROMPT_VERSION)


def detection_question(explanation: str, tokens: Sequence[str]) -> JudgeQuestion:
    """Does a whole text contain what the explanation describes?"""
    return judge_question("detection", explanation, judge_text(tokens))


def fuzzing_question(explanation: str, tokens: Sequence[str], marked: Sequence[int]) -> JudgeQuestion:
    """Are the marked tokens (runs of consecutive ones marked together) what the explanation describes?"""
    return judge_question("fuzzing", explanation, judge_text(tokens, token_runs(marked)))


def condition_question(explanation: str, tokens: Sequence[str]) -> JudgeQuestion:
    """Does the explanation's condition hold in a window of text?"""
    return judge_question("binary-condition", explanation, judge_text(tokens))


def attention_question(explanation: str, tokens: Sequence[str], from_index: int, to_index: int) -> JudgeQuestion:
    """Does the explanation describe attention from token `from_index` to token `to_index`?

    Both tokens are marked in the text, and named with their positions (from 1) on two more lines.
    """
    marked = sorted({(from_index, from_index + 1), (to_index, to_index + 1)})
    content = (
        f"{judge_text(tokens, marked)}\n"
        f"From-token: {_quoted(tokens[from_index])} (token {from_index + 1})\n"
        f"To-token: {_quoted(tokens[to_index])} (token {to_index + 1})"
    )
    return judge_question("attention-head", explanation, content)


def _quoted(token: str) -> str:
    return json.dumps(token.strip() or token, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Explaining: candidate explanations written from the top-activating records
# (the `explain` capability of the API, local and fake simulators)
#
# Written for this project. Both layouts show excerpts around the strongest
# activation of each record, with the tokens the neuron fires on marked
# [[like this]], and ask for one short line. The local layout's worked
# examples are invented and share no topic with any benchmark.
# ---------------------------------------------------------------------------

EXPLAIN_MARK = ("[[", "]]")
"""Brackets around the tokens the neuron fires on, in every explain prompt."""

EXPLAIN_MARK_THRESHOLD = 3.0
"""Tokens at or above this activation (0..10 scale) are marked; a record's strongest token always is."""


def explain_excerpt(tokens: list[str], activations: list[float], before: int, after: int) -> str:
    """The record's text from `before` tokens ahead of its strongest token to `after` tokens past it.

    Marked tokens keep their leading spaces outside the brackets; line breaks become spaces.
    """
    if not tokens:
        return ""
    peak = max(range(len(tokens)), key=lambda index: activations[index])
    start, stop = max(0, peak - before), min(len(tokens), peak + after + 1)
    opening, closing = EXPLAIN_MARK
    parts = []
    for index in range(start, stop):
        token = tokens[index].replace("\r", " ").replace("\n", " ")
        marked = activations[index] > 0 and (index == peak or activations[index] >= EXPLAIN_MARK_THRESHOLD)
        if marked and token.strip():
            stripped = token.lstrip()
            parts.append(f"{token[: len(token) - len(stripped)]}{opening}{stripped}{closing}")
        else:
            parts.append(token)
    return "".join(parts).strip()


def explain_strongest(tokens: list[str], activations: list[float], limit: int = 4) -> str:
    """'cheetah 10, fastest 2': the record's strongest tokens with their activations rounded."""
    order = sorted(range(len(tokens)), key=lambda index: -activations[index])
    shown = [
        f"{tokens[index].strip() or repr(tokens[index])} {round(activations[index])}"
        for index in order[:limit]
        if round(activations[index]) > 0
    ]
    return ", ".join(shown)


EXPLAIN_CHAT_PROMPT_VERSION = "explain-chat-1"
"""Version of the chat layout that asks an API model for an explanation."""

EXPLAIN_CHAT_SYSTEM = """\
You explain what one neuron of a language model responds to. You are shown excerpts of texts \
on which it fires, with the tokens it fires on marked [[like this]], and the activation of the \
strongest tokens on a scale from 0 to 10.

Write one short explanation, a phrase of at most 12 words, that would let a reader predict which \
tokens fire and which do not: name the kind of word, topic or pattern, and the context when it \
matters. Look for the common thread of the strongest activations rather than listing examples. \
Reply with the explanation only, on one line, without quotes or a full stop."""
"""System message of the explain chat layout; identical for every request."""

EXPLAIN_CHAT_EXCERPT = (32, 16)
"""Tokens shown before and after each record's strongest token in the chat layout."""


def explain_chat_user_message(examples: list[tuple[list[str], list[float]]]) -> str:
    """The per-request part of the explain chat layout: numbered excerpts, strongest first."""
    before, after = EXPLAIN_CHAT_EXCERPT
    lines = [
        "Excerpts where the neuron fires most, strongest first. After each, its strongest tokens "
        "and their activations.",
        "",
    ]
    for number, (tokens, activations) in enumerate(examples, start=1):
        lines.append(f"{number}. {explain_excerpt(tokens, activations, before, after)}")
        lines.append(f"   ({explain_strongest(tokens, activations)})")
    return "\n".join(lines)


LOCAL_EXPLAIN_PROMPT_VERSION = "local-explain-1"
"""Version of the few-shot completion layout the local (base) model continues."""

LOCAL_EXPLAIN_HEADER = (
    "Each block below shows excerpts of texts on which one neuron of a language model fires, with the "
    "tokens it fires on marked [[like this]], followed by a short description of what the neuron "
    "responds to.\n\n"
)
"""Opening of every local explain prompt."""

LOCAL_EXPLAIN_EXAMPLES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        (
            "The box is [[light]] enough to carry upstairs.",
            "Pack a [[light]] jacket for the evening.",
            "She prefers a [[lighter]] bag when travelling.",
        ),
        "light, light, lighter",
        "the word light when it means not heavy",
    ),
    (
        (
            "Her grandmother lived in [[Lisbon]] for years.",
            "All flights to [[Oslo]] were cancelled.",
            "The summit was held in [[Vienna]].",
        ),
        "Lisbon, Oslo, Vienna",
        "names of European capital cities",
    ),
    (
        (
            "He rode his [[bike]] past a parked [[truck]].",
            "We waited an hour for the [[bus]] in the rain.",
            "The [[tractor]] blocked the lane.",
        ),
        "bike, bus, tractor",
        "vehicles such as cars, buses and bicycles",
    ),
)
"""Worked examples: (excerpts with marked tokens, each excerpt's strongest token, description).

A small base model copies the nearest example's shape, so the category-style one comes last."""

LOCAL_EXPLAIN_EXCERPT = (12, 4)
"""Tokens shown before and after each record's strongest token (a short prompt keeps the small model fast)."""

LOCAL_EXPLAIN_CUE = "Description:"
"""The line the model completes; its continuation up to the line break is the explanation."""


def local_explain_prompt(examples: list[tuple[list[str], list[float]]]) -> str:
    """The few-shot completion prompt, ending in the cue the model continues.

    Each block lists its excerpts, then the strongest token of each (the list
    helps a small model name the common thread), then the description.
    """
    before, after = LOCAL_EXPLAIN_EXCERPT
    blocks = [LOCAL_EXPLAIN_HEADER]
    for excerpts, strongest, description in LOCAL_EXPLAIN_EXAMPLES:
        blocks.append(
            "Excerpts:\n" + "\n".join(excerpts) + f"\nMarked tokens: {strongest}\n{LOCAL_EXPLAIN_CUE} {description}\n\n"
        )
    shown = [explain_excerpt(tokens, activations, before, after) for tokens, activations in examples]
    strongest = ", ".join(_strongest_token(tokens, activations) for tokens, activations in examples)
    blocks.append("Excerpts:\n" + "\n".join(shown) + f"\nMarked tokens: {strongest}\n{LOCAL_EXPLAIN_CUE}")
    return "".join(blocks)


def _strongest_token(tokens: list[str], activations: list[float]) -> str:
    if not tokens:
        return ""
    peak = max(range(len(tokens)), key=lambda index: activations[index])
    return tokens[peak].strip() or repr(tokens[peak])
