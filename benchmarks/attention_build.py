"""Build benchmarks/attention_heads.json: synthetic attention heads whose pattern is known exactly.

Each head gets a few short texts (written for this project), tokenized as `dev_build.py` tokenizes
the dev puzzles, and a causal attention matrix that implements its pattern: every token the
pattern applies to puts 0.82-0.95 of its attention on the token the pattern names (the rest spread
at random over the earlier tokens), and every other token rests 0.3-0.5 on the first token (a
sink, as real heads do) and spreads the rest. The first token's row, which can attend only to
itself, holds its pattern value or its resting value without being normalised, so that it never
poses as a pattern pair. Seeded: rebuilding gives the same file.

Positional patterns are computed from the tokens; the others from marks in the text:
``«word#a»`` names anchor ``a`` and ``«word>a»`` attends from that word (every token of it) to the
last token of anchor ``a``.

    python benchmarks/attention_build.py -o benchmarks/attention_heads.json

Every record is checked: at least 5 tokens follow the pattern, its 5 strongest pairs are all
pattern pairs (what the attention-head scorer asks about as "top"), and it has weak pairs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_build import _encoder, tokenize  # noqa: E402

PATTERN_RANGE = (0.82, 0.95)
SINK_RANGE = (0.3, 0.5)
MARK = re.compile(r"«([^«»#>]+)([#>])(\w+)»")
OPENERS = {")": "(", "]": "[", "}": "{"}
PUNCTUATION = set(",.;:!?")

DESCRIPTIONS = {
    "previous_token": "attends to the token immediately before it (the previous token)",
    "first_token": "attends to the first token of the text",
    "self": "attends to itself (the current token)",
    "two_back": "attends to the token two positions before it",
    "same_token": "attends to the most recent earlier occurrence of the same token",
    "induction": "attends to the token that came right after an earlier occurrence of the current token (induction)",
    "bracket_opener": "attends from a closing bracket to the opening bracket it matches",
    "subject_from_verb": "attends from a verb to the noun that is its subject",
    "recent_punctuation": "attends to the most recent punctuation mark (comma, full stop, semicolon) before it",
    "sentence_start": "attends to the first word of the sentence the token is in",
    "pronoun_antecedent": "attends from a pronoun to the noun or name it refers to",
    "adjective_from_noun": "attends from a noun to the (first) adjective describing it",
}

# Per head: its false explanations (near misses where the patterns overlap), then its texts.
HEADS: dict[str, tuple[list[str], list[str]]] = {
    "previous_token": (
        ["two_back", "self", "first_token"],
        [
            "The committee met on Tuesday to discuss the new budget, and most members agreed to delay the vote.",
            "def mean(values):\n    return sum(values) / len(values)",
            "She took the early train to Leeds, read half a novel, and still arrived late for the interview.",
        ],
    ),
    "first_token": (
        ["previous_token", "sentence_start", "same_token"],
        [
            "Rain fell all night. By morning the river had burst its banks, and the bridge was closed.",
            "We ordered soup. It was cold, so we sent it back and asked for bread instead.",
            "The printer jammed again. Nobody knew how to fix it, so we emailed the whole report.",
        ],
    ),
    "self": (
        ["previous_token", "first_token", "same_token"],
        [
            "Three small boats drifted past the lighthouse as the fog rolled in from the sea.",
            "Her grandmother kept bees, grew tomatoes and sold honey at the Saturday market.",
            "import json\nwith open('data.json') as f:\n    rows = json.load(f)",
        ],
    ),
    "two_back": (
        ["previous_token", "self", "induction"],
        [
            "A long queue of tired travellers waited at the gate while the announcer apologised again.",
            "Our team finished the project two weeks early and celebrated with pizza in the office.",
            "If the value is negative, the function returns zero and logs a warning.",
        ],
    ),
    "same_token": (
        ["induction", "previous_token", "pronoun_antecedent"],
        [
            "The cat sat on the mat, and the dog sat on the rug, and the bird sat on the cat.",
            "Anna called Ben, and Ben called Carl, and Carl called Anna back the same evening.",
            "x = x + 1\ny = y + x\nz = x + y\nprint(x, y, z)",
        ],
    ),
    "induction": (
        ["same_token", "previous_token", "first_token"],
        [
            "Professor Okafor gave the lecture on tidal energy. After lunch, Professor Okafor gave the lecture again.",
            "The access code is 7Q-4481-ZX. Please read it back to me: 7Q-4481-ZX.",
            "Blue Harbour Fisheries sent the invoice to Kestrel Dock Supplies, and Blue Harbour Fisheries "
            "will chase Kestrel Dock Supplies next week.",
        ],
    ),
    "bracket_opener": (
        ["recent_punctuation", "previous_token", "same_token"],
        [
            "result = (a[0] + b[1] + c) * scale(x) - offset(y) / count(z)",
            "print(f(x), g(y), h[z], {k: v}, w)",
            "The survey (run in May) found that most staff (about 70%) wanted longer breaks [see table 2] "
            "and better coffee (or tea), as the summary (page 3) says.",
        ],
    ),
    "subject_from_verb": (
        ["adjective_from_noun", "sentence_start", "previous_token"],
        [
            "The «dog#a» «barked>a», the «cat#b» «hissed>b», the «baby#c» «cried>c», and the «neighbours#d» "
            "«complained>d» until the «police#e» «arrived>e».",
            "My «sister#a» «runs>a» a bakery, her «husband#b» «drives>b» the van, and their «sons#c» «deliver>c» "
            "bread before «school#d» «starts>d». Their «dog#e» «guards>e» the shop.",
            "When the «storm#a» «hit>a», the «lights#b» «went>b» out, the «pipes#c» «froze>c», and the «roof#d» "
            "«leaked>d»; by dawn the «river#e» had «flooded>e» the road.",
        ],
    ),
    "recent_punctuation": (
        ["sentence_start", "previous_token", "bracket_opener"],
        [
            "Yes, we can meet on Monday, Tuesday, or Friday. Not Wednesday, though; I have the dentist.",
            "First, preheat the oven. Then, mix the flour, sugar and eggs. Finally, bake for twenty minutes.",
            "Well, that went badly. Still, nobody was hurt, the car is fine, and we learned something.",
        ],
    ),
    "sentence_start": (
        ["first_token", "recent_punctuation", "subject_from_verb"],
        [
            "The shop opens at nine. Most customers arrive after ten. On Saturdays the queue reaches the corner.",
            "I missed the bus. My phone was dead. Luckily a neighbour drove past and offered me a lift.",
            "Water boils at 100 degrees at sea level. On a mountain it boils sooner. Cooks there adjust recipes.",
        ],
    ),
    "pronoun_antecedent": (
        ["subject_from_verb", "same_token", "first_token"],
        [
            "«Maria#m» told «Tom#t» that «she>m» would call «him>t» after «her>m» shift, but «he>t» fell asleep "
            "before «she>m» rang.",
            "The «printer#p» jammed again, so «Priya#q» opened «it>p», pulled out the paper and fed «it>p» back in; "
            "«she>q» wiped «her>q» hands and swore «it>p» was cursed.",
            "«Grandpa#g» lost «his>g» «glasses#s», so the «twins#k» helped «him>g» look. «They>k» found «them>s» "
            "in the fridge, and «he>g» laughed.",
        ],
    ),
    "adjective_from_noun": (
        ["previous_token", "subject_from_verb", "self"],
        [
            "A «tall#a», thin «man>a» in a «bright#b» red «coat>b» carried a «heavy#c» «suitcase>c» past the "
            "«old#d» brick «station>d» and into a «waiting#e» «taxi>e».",
            "The «quiet#a» little «village>a» had one «narrow#b» «street>b», a «crowded#c» noisy «pub>c» and a "
            "«lovely#d» old «church>d» on a «steep#e» «hill>e».",
            "She bought «fresh#a» «bread>a», «ripe#b» yellow «bananas>b», «cheap#c» «wine>c» and a «sharp#d» new "
            "«knife>d» for the «long#e» «trip>e».",
        ],
    ),
}

Targets = list[int | None]


def _sentence_starts(tokens: list[str]) -> list[int]:
    starts, current = [], 0
    for index, token in enumerate(tokens):
        starts.append(current)
        if token.strip() and token.strip()[-1] in ".!?":
            current = index + 1
    return starts


def _same_token(tokens: list[str]) -> Targets:
    return [max((j for j in range(i) if tokens[j] == tokens[i]), default=None) for i in range(len(tokens))]


def _induction(tokens: list[str]) -> Targets:
    return [
        next((j + 1 for j in range(i - 2, -1, -1) if tokens[j] == tokens[i]), None) for i in range(len(tokens))
    ]


def _bracket_opener(tokens: list[str], spans: list[tuple[int, int]], text: str) -> Targets:
    owner = {}
    for index, (start, end) in enumerate(spans):
        for position in range(start, end):
            owner[position] = index
    targets: Targets = [None] * len(tokens)
    stack: list[int] = []
    for position, char in enumerate(text):
        if char in OPENERS.values():
            stack.append(position)
        elif char in OPENERS:
            opener = stack.pop()
            if text[opener] != OPENERS[char]:
                raise ValueError(f"unbalanced brackets in {text!r}")
            closer_token = owner[position]
            if targets[closer_token] is not None:
                raise ValueError(f"token {tokens[closer_token]!r} holds two closing brackets; separate them")
            targets[closer_token] = owner[opener]
    return targets


def _recent_punctuation(tokens: list[str]) -> Targets:
    return [
        max((j for j in range(i) if tokens[j].strip() and set(tokens[j].strip()) <= PUNCTUATION), default=None)
        for i in range(len(tokens))
    ]


def _sentence_start(tokens: list[str]) -> Targets:
    starts = _sentence_starts(tokens)
    return [start if i > start else None for i, start in enumerate(starts)]


POSITIONAL: dict[str, Callable[[list[str]], Targets]] = {
    "previous_token": lambda tokens: [i - 1 if i else None for i in range(len(tokens))],
    "first_token": lambda tokens: [0] * len(tokens),
    "self": lambda tokens: list(range(len(tokens))),
    "two_back": lambda tokens: [i - 2 if i >= 2 else None for i in range(len(tokens))],
    "same_token": _same_token,
    "induction": _induction,
    "recent_punctuation": _recent_punctuation,
    "sentence_start": _sentence_start,
}


def _marked(text: str) -> tuple[str, dict[str, tuple[int, int]], list[tuple[int, int, str]]]:
    """Plain text, anchors (name -> span) and links (span, anchor name) from «word#a» / «word>a» marks."""
    plain, anchors, links, cursor = "", {}, [], 0
    for match in MARK.finditer(text):
        plain += text[cursor:match.start()]
        start = len(plain)
        plain += match.group(1)
        if match.group(2) == "#":
            anchors[match.group(3)] = (start, len(plain))
        else:
            links.append((start, len(plain), match.group(3)))
        cursor = match.end()
    return plain + text[cursor:], anchors, links


def _tokens_in(spans: list[tuple[int, int]], tokens: list[str], start: int, end: int) -> list[int]:
    return [
        index
        for index, (token_start, token_end) in enumerate(spans)
        if token_start + len(tokens[index]) - len(tokens[index].lstrip()) < end and token_end > start
    ]


def record_targets(head: str, text: str, encoder: Any) -> tuple[list[str], Targets]:
    """The tokens of one text and, per token, the token the head's pattern sends it to (None: none)."""
    plain, anchors, links = _marked(text)
    pieces = tokenize(plain, encoder)
    tokens = [token for token, _, _ in pieces]
    spans = [(start, end) for _, start, end in pieces]
    if head == "bracket_opener":
        return tokens, _bracket_opener(tokens, spans, plain)
    if head in POSITIONAL:
        return tokens, POSITIONAL[head](tokens)
    targets: Targets = [None] * len(tokens)
    for start, end, name in links:
        anchor = _tokens_in(spans, tokens, *anchors[name])[-1]
        for index in _tokens_in(spans, tokens, start, end):
            targets[index] = anchor
    return tokens, targets


def attention_matrix(targets: Targets, rng: np.random.Generator) -> np.ndarray:
    """A causal matrix[to][from] in which each token attends as its target says (see the module docstring)."""
    size = len(targets)
    attending = np.zeros((size, size))  # [from][to]
    for index, target in enumerate(targets):
        if index == 0:
            attending[0, 0] = rng.uniform(*PATTERN_RANGE) if target == 0 else rng.uniform(*SINK_RANGE)
            continue
        main = target if target is not None else 0
        weight = rng.uniform(*PATTERN_RANGE) if target is not None else rng.uniform(*SINK_RANGE)
        others = [j for j in range(index + 1) if j != main]
        attending[index, main] = weight
        attending[index, others] = (1.0 - weight) * rng.dirichlet(np.ones(len(others)))
    return np.round(attending, 3).T


def check_record(head: str, tokens: list[str], targets: Targets, matrix: np.ndarray) -> None:
    pattern = {(i, t) for i, t in enumerate(targets) if t is not None}
    if len(pattern) < 5:
        raise ValueError(f"{head}: only {len(pattern)} tokens follow the pattern in {''.join(tokens)!r}")
    cells = sorted(((matrix[to, frm], frm, to) for frm in range(len(tokens)) for to in range(frm + 1)), reverse=True)
    top = [(frm, to) for _, frm, to in cells[:5]]
    if not set(top) <= pattern:
        raise ValueError(f"{head}: a non-pattern pair is among the 5 strongest in {''.join(tokens)!r}")
    if sum(value < 0.1 * cells[0][0] for value, _, _ in cells) < 5:
        raise ValueError(f"{head}: fewer than 5 weak pairs in {''.join(tokens)!r}")


def build(seed: int = 0) -> dict[str, Any]:
    encoder = _encoder()
    rng = np.random.default_rng(seed)
    heads: dict[str, Any] = {}
    for head, (false_heads, texts) in HEADS.items():
        records = []
        for text in texts:
            tokens, targets = record_targets(head, text, encoder)
            matrix = attention_matrix(targets, rng)
            check_record(head, tokens, targets, matrix)
            records.append({"tokens": tokens, "attention": matrix.tolist()})
        heads[head] = {
            "name": head,
            "explanation": DESCRIPTIONS[head],
            "false_explanations": [DESCRIPTIONS[other] for other in false_heads],
            "records": records,
        }
    return heads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        heads = build(args.seed)
    except ValueError as exc:
        sys.exit(str(exc))
    lines = []
    for key, head in heads.items():
        records = ",\n".join("      " + json.dumps(record, ensure_ascii=False) for record in head["records"])
        meta = {k: v for k, v in head.items() if k != "records"}
        lines.append(f"  {json.dumps(key)}: " + json.dumps(meta, ensure_ascii=False)[:-1] + ', "records": [\n'
                     + records + "\n  ]}")
    args.output.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"{len(heads)} heads, {sum(len(h['records']) for h in heads.values())} records written to {args.output}")


if __name__ == "__main__":
    main()
