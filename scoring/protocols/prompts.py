"""Our own prompts for the protocols, and prompt templates supplied by a user or stored with a feature.

The protocols' original prompt texts are not copied here. A re-score uses, in this order:
the messages stored with the feature's own score (recall_alt keeps them in its details),
a template the user supplies in a JSON file (for example the original texts), or these.
Whichever is used is named in the result (``stored``, ``file``, ``ours``), and a verdict
that compares a re-score made with ours says that the prompts differ.

A template is a JSON list of ``{"role": "system" | "user" | "assistant", "content": "..."}``.
For recall_alt it holds the messages before the example (the system message and any
worked turns); the example's JSON message is appended. For the other protocols it is the
whole conversation, whose messages may contain ``{explanation}`` and ``{examples}``: the
explanation, and the examples in the protocol's layout (delphi: ``Example 0: text`` lines;
SAEBench: ``1. text`` lines); ``{count}`` is the number of examples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.errors import ScoringInputError
from scoring.protocols.neuronpedia import js_json

PROMPT_VERSION = "protocols-1"
"""Version of the prompts below (in the cache key through the messages themselves)."""

ROLES = ("system", "user", "assistant")
"""Roles a template message may have."""

KINDS = ("recall_alt", "eleuther_fuzz", "eleuther_recall", "saebench")
"""Protocols whose judge prompt a template can replace."""


@dataclass(frozen=True)
class Template:
    """The messages a protocol's requests are built from, and whose they are."""

    messages: tuple[tuple[str, str], ...]
    source: str = "ours"
    """``ours``, ``stored`` (the feature's own score details) or ``file`` (supplied by the user)."""

    def fill(self, explanation: str, examples: str = "", count: int = 0) -> tuple[tuple[str, str], ...]:
        """The messages with ``{explanation}``, ``{examples}`` and ``{count}`` replaced."""
        return tuple(
            (
                role,
                content.replace("{explanation}", explanation)
                .replace("{examples}", examples)
                .replace("{count}", str(count)),
            )
            for role, content in self.messages
        )


def recall_alt_message(tokens: list[str], values: list[float], explanation: str) -> str:
    """The JSON of one recall_alt example, compact and with JavaScript's numbers, as Neuronpedia sends it."""
    return js_json(
        {
            "activations": [
                {"token": token.replace("\u2581", " "), "activation": value}
                for token, value in zip(tokens, values, strict=True)
            ],
            "explanation": explanation,
        }
    )


RECALL_ALT_SYSTEM = """\
You check explanations of neurons in a language model. A neuron responds to some feature of \
the text it reads. You will get one text as JSON: every token with the neuron's activation on \
it (0 where it does not respond; the larger the number, the stronger the response), and an \
explanation of what the neuron responds to.

Decide whether the explanation accounts for the tokens where this neuron responds in this \
text. If it responds nowhere, or only where the explanation does not apply, the answer is no.

Answer with JSON only, in this form: {"match": true or false, "reason": "one short sentence"}"""

_RECALL_ALT_SHOTS = (
    (
        [" The", " river", " bank", " was", " flooded", " after", " the", " storm"],
        [0, 2, 9, 0, 0, 0, 0, 0],
        "the bank of a river",
        '{"match": true, "reason": "the neuron responds to bank, here the side of a river."}',
    ),
    (
        [" She", " paid", " for", " the", " tickets", " in", " cash"],
        [0, 0, 0, 0, 0, 0, 7],
        "parts of the human body",
        '{"match": false, "reason": "cash is money, not a part of the body."}',
    ),
)


def recall_alt_template() -> Template:
    """Our system message and two worked turns for recall_alt."""
    messages: list[tuple[str, str]] = [("system", RECALL_ALT_SYSTEM)]
    for tokens, values, explanation, reply in _RECALL_ALT_SHOTS:
        messages.append(("user", recall_alt_message(tokens, [float(v) for v in values], explanation)))
        messages.append(("assistant", reply))
    return Template(tuple(messages))


_DELPHI_COMMON = """\
You check explanations of neurons in a language model. You will get an explanation of what a \
neuron responds to, then a few numbered text examples (Example 0, Example 1, ...)."""

FUZZ_SYSTEM = (
    _DELPHI_COMMON
    + """ In every example some tokens are marked between << and >>.

For each example decide: are all of its marked tokens instances of what the explanation \
describes? Answer 1 for yes and 0 for no.

Reply with one list of numbers only, one entry per example in order, for example [1, 0, 0, 1, 1]."""
)

RECALL_SYSTEM = (
    _DELPHI_COMMON
    + """

For each example decide: does the text contain what the explanation describes, anywhere in it? \
Answer 1 for yes and 0 for no.

Reply with one list of numbers only, one entry per example in order, for example [0, 1, 1, 0, 0]."""
)

_FUZZ_SHOT_USER = """\
Explanation: names of fruits

Example 0: She cut the<< apple>> into slices
Example 1: He sat<< on>> the bench
Example 2: We bought<< bananas>> and<< grapes>>"""

_RECALL_SHOT_USER = """\
Explanation: names of fruits

Example 0: She cut the apple into slices
Example 1: He sat on the bench
Example 2: We bought bananas and grapes"""

DELPHI_USER = "Explanation: {explanation}\n\n{examples}"
"""The final user message of our fuzz and detection prompts."""


def fuzz_template() -> Template:
    return Template(
        (("system", FUZZ_SYSTEM), ("user", _FUZZ_SHOT_USER), ("assistant", "[1, 0, 1]"), ("user", DELPHI_USER))
    )


def recall_template() -> Template:
    return Template(
        (("system", RECALL_SYSTEM), ("user", _RECALL_SHOT_USER), ("assistant", "[1, 0, 1]"), ("user", DELPHI_USER))
    )


EMBEDDING_INSTRUCTION = "Instruct: Find text passages that contain what this explanation describes.\nQuery: "
"""Put before the explanation to make the embedding query of our eleuther_embedding re-score."""

SAEBENCH_SYSTEM = """\
You check explanations of neurons in a language model. You will get an explanation of what a \
neuron responds to, then {count} short text excerpts numbered from 1, in random order.

List the numbers of the excerpts in which you expect the neuron to respond at least once, on \
any token. Write them separated by commas, for example: 3, 8, 12. If you expect it to respond \
in none of them, write None. Write nothing else."""

SAEBENCH_USER = "The neuron responds to: {explanation}\n\nExcerpts:\n\n{examples}"


def saebench_template() -> Template:
    return Template((("system", SAEBENCH_SYSTEM), ("user", SAEBENCH_USER)))


OUR_TEMPLATES = {
    "recall_alt": recall_alt_template,
    "eleuther_fuzz": fuzz_template,
    "eleuther_recall": recall_template,
    "saebench": saebench_template,
}


def template_from_messages(data: Any, kind: str, source: str = "file") -> Template:
    """A template from a parsed JSON list of messages; raises ScoringInputError saying what to fix."""
    if kind not in KINDS:
        raise ScoringInputError(f"no prompt template for {kind!r}; templates exist for {', '.join(KINDS)}")
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list) or not data:
        raise ScoringInputError(
            f"a {kind} prompt template must be a non-empty JSON list of {{\"role\", \"content\"}} messages"
        )
    messages: list[tuple[str, str]] = []
    for position, item in enumerate(data):
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            raise ScoringInputError(
                f"message {position} of the {kind} prompt template must be {{\"role\": one of "
                f"{', '.join(ROLES)}, \"content\": text}}"
            )
        messages.append((str(item["role"]), str(item["content"])))
    if kind == "recall_alt":
        if messages[-1][0] == "user":
            raise ScoringInputError(
                "a recall_alt template holds the messages before the example (system and worked turns); "
                "its last message must not be a user message: the example's JSON is appended as one"
            )
    elif not any("{examples}" in content for _, content in messages):
        raise ScoringInputError(f"the {kind} prompt template must contain {{examples}} where the examples go")
    return Template(tuple(messages), source)


def load_template(path: str | Path, kind: str) -> Template:
    """A template from a JSON file the user names (command line); raises ScoringInputError on a bad file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoringInputError(f"cannot read the prompt file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScoringInputError(f"the prompt file {path} is not valid JSON ({exc.msg})") from None
    return template_from_messages(data, kind)
