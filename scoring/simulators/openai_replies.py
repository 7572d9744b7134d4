"""Reading the replies of OpenAI-compatible servers: pure functions, tested against fixed replies."""

from __future__ import annotations

import bisect
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.simulators.openai_config import MAX_ACTIVATION


def digit_expectation(alternatives: dict[str, float], prefix: str = "") -> float | None:
    """Expected activation over the alternatives that spell a value 0..10.

    `alternatives` maps token text to logprob at one position. `prefix` is text
    that the token at this position carries before the value (a tokenizer may
    glue a separator to the digit); alternatives not starting with it are
    ignored. None when no alternative is a value.
    """
    mass = 0.0
    weighted = 0.0
    for token, logprob in alternatives.items():
        if not token.startswith(prefix) or logprob is None or not math.isfinite(logprob):
            continue
        match = re.match(r"\s*(\d+)(?!\d)", token[len(prefix):])
        if not match:
            continue
        value = int(match[1])
        if value > MAX_ACTIVATION:
            continue
        probability = math.exp(logprob)
        mass += probability
        weighted += probability * value
    if mass <= 0.0:
        return None
    return weighted / mass


def token_starts(tokens: Sequence[str]) -> list[int]:
    """Character offset of each token when the tokens are concatenated."""
    starts = []
    position = 0
    for token in tokens:
        starts.append(position)
        position += len(token)
    return starts


def _rank(alternatives: dict[str, float] | None, token: str) -> int:
    if not alternatives or token not in alternatives:
        return sys.maxsize
    value = alternatives[token]
    return sum(1 for other in alternatives.values() if other > value)


def echo_shift(tokens: Sequence[str], top_logprobs: Sequence[dict[str, float] | None]) -> int:
    """0 when ``top_logprobs[i]`` is the distribution of token i (the OpenAI convention), 1 when of token i + 1.

    llama.cpp-python (0.3.x) reports the distribution one position late when
    the model adds no BOS token. Which convention holds shows in the reply: in
    a prompt as regular as ours, the echoed tokens are most often the top choice
    of the distribution that really predicts them.
    """
    count = min(len(tokens), len(top_logprobs))
    aligned = sum(1 for i in range(1, count) if _rank(top_logprobs[i], tokens[i]) == 0)
    shifted = sum(1 for i in range(1, count - 1) if _rank(top_logprobs[i], tokens[i + 1]) == 0)
    return 1 if shifted > aligned else 0


def read_prompt_logprobs(
    prompt: str,
    slots: Sequence[Sequence[int]],
    tokens: Sequence[str],
    top_logprobs: Sequence[dict[str, float] | None],
    text_offset: Sequence[int] | None = None,
) -> list[list[float] | str]:
    """Per sequence, the expected value at each slot, or the reason it cannot be read.

    `tokens`, `top_logprobs` and `text_offset` are the echoed prompt as the
    legacy completions endpoint returns them (``echo=True, logprobs=k``). A reply whose lists differ in
    length (cut short on the way) raises ValueError saying so.
    """
    if len(top_logprobs) != len(tokens):
        raise ValueError(
            f"logprobs for {len(top_logprobs)} of {len(tokens)} echoed prompt tokens (a truncated reply)"
        )
    starts = list(text_offset) if text_offset and len(text_offset) == len(tokens) else token_starts(tokens)
    last_slot = max((offset for sequence_slots in slots for offset in sequence_slots), default=-1)
    if tokens and last_slot >= starts[-1] + len(tokens[-1]):
        raise ValueError("only part of the prompt echoed (a truncated reply)")
    shift = echo_shift(tokens, top_logprobs)
    results: list[list[float] | str] = []
    for sequence_slots in slots:
        values: list[float] = []
        problem = None
        for position, offset in enumerate(sequence_slots):
            index = bisect.bisect_right(starts, offset) - 1
            alternatives = top_logprobs[index - shift] if 0 <= index - shift < len(top_logprobs) else None
            if not alternatives:
                problem = f"the server returned no logprobs at token {position + 1}"
                break
            value = digit_expectation(alternatives, prompt[starts[index]:offset])
            if value is None:
                problem = (
                    f"no value 0..10 among the top {len(alternatives)} tokens at token {position + 1}"
                )
                break
            values.append(value)
        results.append(problem if problem is not None else values)
    return results


@dataclass
class ParsedReply:
    """A chat reply read against the token counts of the sequences it answers."""

    values: list[list[float] | None]
    """Per sequence, the integers as written, or None when unusable."""
    problems: list[str | None]
    """Per sequence, what was wrong (None when usable)."""
    spans: list[list[tuple[int, int]] | None] = field(default_factory=list)
    """Per sequence, the character span of each written number in the reply."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _number_spans(text: str, key: str) -> list[tuple[int, int]] | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[([^\]]*)\]', text)
    if not match:
        return None
    return [
        (match.start(1) + number.start(), match.start(1) + number.end())
        for number in _NUMBER.finditer(match[1])
    ]


def _check_values(raw: Any, count: int, number: int) -> tuple[list[float] | None, str | None]:
    if not isinstance(raw, list):
        return None, f"sequence {number} is not a list of numbers"
    if len(raw) != count:
        return None, f"sequence {number} has {len(raw)} values for {count} tokens"
    values: list[float] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            return None, f"sequence {number} holds {item!r}, not a number"
        if not 0 <= item <= MAX_ACTIVATION:
            return None, f"sequence {number} holds {item}, outside 0..{MAX_ACTIVATION}"
        values.append(float(item))
    return values, None


def parse_chat_reply(text: str | None, token_counts: Sequence[int]) -> ParsedReply:
    """Read a reply of the chat layout: ``{"1": [..], "2": [..]}`` (a list of lists is accepted)."""
    n = len(token_counts)
    body = _FENCE.sub("", text or "")
    start, end = body.find("{"), body.rfind("}")
    candidate = body[start:end + 1] if 0 <= start < end else body.strip()
    try:
        parsed = json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        snippet = (text or "").strip()[:80]
        return ParsedReply([None] * n, [f"the reply is not JSON: {snippet!r}"] * n, [None] * n)
    if isinstance(parsed, list) and len(parsed) == n and all(isinstance(item, list) for item in parsed):
        by_number: dict[str, Any] = {str(i + 1): item for i, item in enumerate(parsed)}
        from_dict = False
    elif isinstance(parsed, dict):
        by_number = {str(key).strip(): value for key, value in parsed.items()}
        from_dict = True
    else:
        return ParsedReply([None] * n, ["the reply is JSON but not an object of lists"] * n, [None] * n)
    values: list[list[float] | None] = []
    problems: list[str | None] = []
    spans: list[list[tuple[int, int]] | None] = []
    offset = (text or "").find(candidate) if from_dict else -1
    for number, count in enumerate(token_counts, start=1):
        if str(number) not in by_number:
            values.append(None)
            problems.append(f"sequence {number} is missing")
            spans.append(None)
            continue
        checked, problem = _check_values(by_number[str(number)], count, number)
        values.append(checked)
        problems.append(problem)
        number_spans = _number_spans(candidate, str(number)) if checked is not None and offset >= 0 else None
        if number_spans is not None and len(number_spans) == count:
            spans.append([(offset + a, offset + b) for a, b in number_spans])
        else:
            spans.append(None)
    return ParsedReply(values, problems, spans)


def refine_with_logprobs(
    text: str,
    values: list[float],
    spans: Sequence[tuple[int, int]],
    tokens: Sequence[str],
    top_logprobs: Sequence[dict[str, float]],
) -> list[float]:
    """Replace each written integer by the expected value over digit tokens where it was generated.

    A number whose first token does not cover it whole (digits split across
    tokens), or whose alternatives hold no value, keeps the written integer.
    """
    if "".join(tokens) != text:
        return values
    starts = token_starts(tokens)
    refined = list(values)
    for position, (begin, end) in enumerate(spans):
        index = bisect.bisect_right(starts, begin) - 1
        if index < 0 or starts[index] + len(tokens[index]) < end:
            continue
        expected = digit_expectation(top_logprobs[index], text[starts[index]:begin])
        if expected is not None:
            refined[position] = expected
    return refined


_ANSWER = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def read_yes_no(text: str | None, alternatives: dict[str, float] | None) -> tuple[float | None, str | None]:
    """P(yes) of a judge's reply, or None and what was wrong.

    `alternatives` maps each token the server offered at the first generated
    position to its logprob. When "Yes" or "No" (any case or spacing) is among
    them, P(yes) = p(yes) / (p(yes) + p(no)). Otherwise the text must start
    with Yes or No, read as 1 or 0.
    """
    yes_mass = no_mass = 0.0
    for token, logprob in (alternatives or {}).items():
        if logprob is None or not math.isfinite(logprob):
            continue
        word = token.strip().strip(".,!*:\"'").lower()
        if word == "yes":
            yes_mass += math.exp(logprob)
        elif word == "no":
            no_mass += math.exp(logprob)
    if yes_mass + no_mass > 0.0:
        return yes_mass / (yes_mass + no_mass), None
    match = _ANSWER.match(text or "")
    if match:
        return (1.0 if match[1].lower() == "yes" else 0.0), None
    return None, f"the reply is neither Yes nor No: {(text or '').strip()[:80]!r}"


def activation_schema(token_counts: Sequence[int]) -> dict[str, Any]:
    """JSON schema of a reply: one list per sequence, exactly as long as the sequence, integers 0..10."""
    value = {"type": "integer", "minimum": 0, "maximum": MAX_ACTIVATION}
    properties = {
        str(number): {"type": "array", "items": value, "minItems": count, "maxItems": count}
        for number, count in enumerate(token_counts, start=1)
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
