"""Every prompt text the simulators send, each with a version string that enters the cache key.

Each section is headed by the simulator that uses it. Editing a prompt means bumping its version.
"""

from __future__ import annotations

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
# Written for this project, for a small *base* model (Gemma 3 270M) that
# continues text rather than follows instructions. The contrastive layout
# states the explanation as what a text is about and compares each token's
# log-probability with a neutral framing; the slots layout shows worked
# examples of "token<TAB>activation" lines (0..9, one digit per slot).
# The worked examples are invented and share no topic with any benchmark.
# ---------------------------------------------------------------------------

LOCAL_CONTRASTIVE_PROMPT_VERSION = "local-contrastive-1"
"""Version of the topic/neutral prefixes of the contrastive method."""

LOCAL_TOPIC_PREFIX = "The following text is about {explanation}.\n\n"
"""Prefix that states the explanation as the text's topic; `{explanation}` is filled in."""

LOCAL_NEUTRAL_PREFIX = "The following text is about everyday life.\n\n"
"""The same framing with no explanation: the baseline each token's log-probability is compared with."""


def local_topic_prefix(explanation: str) -> str:
    """The topic prefix for one explanation (whitespace collapsed, trailing full stop dropped)."""
    cleaned = " ".join(explanation.split()).rstrip(".")
    return LOCAL_TOPIC_PREFIX.format(explanation=cleaned)


LOCAL_LIST_PREFIX = "Examples of {explanation}:"
"""Prefix of the word-list form: the sequence's distinct words follow as a comma-separated list."""

LOCAL_LIST_NEUTRAL_PREFIX = "Examples of words:"
"""The same list framing with no explanation (the baseline)."""

LOCAL_LIST_SEPARATOR = ","
"""Separates the words of the list (each word is written after a space)."""


def local_list_prefix(explanation: str) -> str:
    """The word-list prefix for one explanation (whitespace collapsed, trailing full stop dropped)."""
    cleaned = " ".join(explanation.split()).rstrip(".")
    return LOCAL_LIST_PREFIX.format(explanation=cleaned)


LOCAL_SLOTS_PROMPT_VERSION = "local-slots-1"
"""Version of the worked-example layout of the slots method."""

LOCAL_SLOTS_HEADER = (
    "Below, a neuron of a language model is described in one line, then a text is shown one token per "
    "line with the neuron's activation after a tab. Activations run from 0 (no response) to 9 "
    "(strongest response); most tokens are 0.\n\n"
)
"""Opening of every slots prompt."""

LOCAL_SLOTS_EXAMPLES: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    (
        "vehicles such as cars, buses and bicycles",
        (("He", 0), (" rode", 0), (" his", 0), (" bike", 8), (" past", 0), (" a", 0), (" parked", 0),
         (" truck", 9), (" and", 0), (" a", 0), (" bus", 7), (" stop", 1), (".", 0)),
    ),
    (
        "the word light when it means not heavy",
        (("Turn", 0), (" on", 0), (" the", 0), (" light", 0), (";", 0), (" the", 0), (" box", 0), (" is", 0),
         (" light", 8), (" enough", 1), (" to", 0), (" carry", 0), (".", 0)),
    ),
    (
        "days of the week",
        (("See", 0), (" you", 0), (" on", 0), (" Monday", 9), (",", 0), (" or", 0), (" maybe", 0),
         (" Friday", 9), (" if", 0), (" it", 0), (" rains", 0), (".", 0)),
    ),
)
"""Worked examples: (description, ((token, activation 0..9), ...))."""

LOCAL_SLOTS_PLACEHOLDER = "unknown"
"""Written in every value slot of the sequence being simulated."""


def _local_token_line_text(token: str) -> str:
    shown = token.strip().replace("\t", " ").replace("\n", " ")
    return shown or "(space)"


def local_slots_prompt(explanation: str, tokens: list[str]) -> list[tuple[str, str]]:
    """The slots prompt as ("text", piece) and ("slot", placeholder) parts, in order.

    The model's next-token distribution just before each "slot" part is the
    prediction for that token; pieces are tokenized one by one by the caller.
    """
    parts: list[tuple[str, str]] = [("text", LOCAL_SLOTS_HEADER)]

    def block(description: str, pairs: list[tuple[str, int | None]]) -> None:
        text = "".join(token for token, _ in pairs).replace("\n", " ").strip()
        parts.append(("text", f"Neuron description: {description}\nText: {text}\nToken\tActivation\n"))
        for token, activation in pairs:
            parts.append(("text", _local_token_line_text(token)))
            parts.append(("text", "\t"))
            if activation is None:
                parts.append(("slot", LOCAL_SLOTS_PLACEHOLDER))
            else:
                parts.append(("text", str(activation)))
            parts.append(("text", "\n"))
        parts.append(("text", "\n"))

    for description, example in LOCAL_SLOTS_EXAMPLES:
        block(description, [(token, activation) for token, activation in example])
    block(" ".join(explanation.split()), [(token, None) for token in tokens])
    return parts


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

LOCAL_POINTER_ANSWER = "\nWords that fit:"
"""Written after the text; the model's next words are read from here."""


def local_pointer_examples() -> str:
    """The part of every pointer prompt that does not depend on the explanation."""
    parts = [LOCAL_POINTER_HEADER]
    for rule, text, answer in LOCAL_POINTER_EXAMPLES:
        parts.append(f"Rule: {rule}\nText: {text}{LOCAL_POINTER_ANSWER} {answer}\n\n")
    return "".join(parts)


def local_pointer_rule(explanation: str) -> str:
    """The explanation as the rule (whitespace collapsed, trailing full stop dropped), then "Text:"."""
    cleaned = " ".join(explanation.split()).rstrip(".")
    return f"Rule: {cleaned}\nText:"


def local_pointer_prefix(explanation: str) -> str:
    """Everything before the text: header, worked examples, the explanation as the rule, "Text:"."""
    return local_pointer_examples() + local_pointer_rule(explanation)


def local_pointer_text(tokens: list[str]) -> str:
    """The sequence as one line after "Text:" (a leading space added when its first token has none)."""
    text = "".join(tokens).replace("\r", " ").replace("\n", " ")
    return text if text[:1].isspace() else " " + text


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
