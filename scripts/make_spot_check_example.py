"""Build examples/neuronpedia_spot_check.json: a feature in the shape Neuronpedia's API returns, made by our code.

    python scripts/make_spot_check_example.py          # write the file
    python scripts/make_spot_check_example.py --check  # exit 1 when the file differs from what this builds

The activations are made up (a "coffee" latent). The scores are computed by this
project's implementations of Neuronpedia's protocols (`scoring.protocols`) with the
deterministic ``fake`` judge standing in for the judge models the file names, and the
bag-of-words ``fake`` embedder standing in for stella_en_400M_v5; their ``jsonDetails``
are written by the same modules' writers, in the schema Neuronpedia stores. On purpose:

- one eleuther_fuzz batch failed (its reply held no list), so its rows are stored as
  failures and left out of the value, as the protocol does;
- the recall_alt claim of "morning routines" is wrong (0.83; its details give 0.4);
- the recall_alt score of "brewing" claims a value although every request about a top
  row failed, when Neuronpedia saves no score at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scoring.process_settings import configure_process  # noqa: E402
from scoring.protocols import eleuther, recall_alt  # noqa: E402
from scoring.protocols.embedders import embedder_for  # noqa: E402
from scoring.protocols.neuronpedia import Row, score_entry, select_rows  # noqa: E402
from scoring.protocols.prompts import EMBEDDING_INSTRUCTION, fuzz_template, recall_alt_template, recall_template  # noqa: E402
from scoring.simulators.chat import ChatBatch, ChatReply, ChatRequest  # noqa: E402
from scoring.simulators.fake import FakeSimulator  # noqa: E402

OUTPUT = REPO / "examples" / "neuronpedia_spot_check.json"

JUDGE_MODEL = "gpt-4o-mini"

ROWS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("a", ((" I", 0), (" ordered", 0), (" a", 0), (" double", 0.4), (" espresso", 9.1), (" and", 0), (" a", 0),
           (" croissant", 0))),
    ("b", ((" He", 0), (" drinks", 0.3), (" two", 0), (" cups", 1.2), (" of", 0), (" coffee", 9.8), (" every", 0),
           (" morning", 0.6))),
    ("c", ((" Her", 0), (" latte", 8.4), (" art", 0), (" was", 0), (" better", 0), (" than", 0), (" the", 0),
           (" barista", 5.2))),
    ("d", ((" A", 0), (" cappuccino", 8.9), (" has", 0), (" more", 0), (" foam", 2.2), (" than", 0), (" a", 0),
           (" flat", 0), (" white", 1.9))),
    ("e", ((" The", 0), (" coffee", 9.5), (" shop", 2.1), (" on", 0), (" the", 0), (" corner", 0), (" opens", 0),
           (" early", 0))),
    ("f", ((" She", 0), (" brewed", 3.3), (" a", 0), (" pot", 1.1), (" of", 0), (" coffee", 8.7), (" for", 0),
           (" everyone", 0))),
    ("g", ((" Roasted", 3.1), (" coffee", 7.9), (" beans", 5.9), (" smell", 0), (" wonderful", 0))),
    ("h", ((" Decaf", 6.4), (" coffee", 8.1), (" still", 0), (" has", 0), (" some", 0), (" caffeine", 4.0))),
    ("i", ((" We", 0), (" met", 0), (" for", 0), (" coffee", 9.0), (" after", 0), (" the", 0), (" lecture", 0))),
    ("j", ((" The", 0), (" mocha", 7.6), (" came", 0), (" with", 0), (" whipped", 0.5), (" cream", 0.9))),
    ("k", ((" Iced", 2.0), (" coffee", 8.8), (" is", 0), (" popular", 0), (" in", 0), (" summer", 0))),
    ("l", ((" He", 0), (" spilled", 0), (" coffee", 8.3), (" on", 0), (" his", 0), (" keyboard", 0))),
    ("m", ((" Instant", 1.5), (" coffee", 7.2), (" dissolves", 0), (" in", 0), (" hot", 0.4), (" water", 0.3))),
    ("n", ((" An", 0), (" americano", 7.7), (" is", 0), (" espresso", 8.5), (" with", 0), (" water", 0.7))),
    ("o", ((" The", 0), (" café", 6.1), (" serves", 0), (" filter", 2.4), (" coffee", 8.0), (" all", 0), (" day", 0))),
    ("p", ((" Cold", 1.0), (" brew", 6.6), (" takes", 0), (" twelve", 0), (" hours", 0))),
    ("q", ((" She", 0), (" made", 0), (" a", 0), (" pot", 0.8), (" of", 0), (" green", 0), (" tea", 2.4))),
    ("r", ((" Hot", 0.9), (" cocoa", 3.0), (" warms", 0), (" you", 0), (" up", 0))),
    ("s", ((" The", 0), (" coffee", 9.2), (" grinder", 4.4), (" was", 0), (" too", 0), (" loud", 0))),
    ("t", ((" Morning", 0.7), (" coffee", 9.6), (" before", 0), (" the", 0), (" commute", 0))),
    ("b", ((" He", 0), (" drinks", 0.3), (" two", 0), (" cups", 1.2), (" of", 0), (" coffee", 9.8), (" every", 0),
           (" morning", 0.6))),
    ("z1", ((" The", 0), (" morning", 0), (" train", 0), (" was", 0), (" late", 0), (" again", 0))),
    ("z2", ((" We", 0), (" walked", 0), (" the", 0), (" dog", 0), (" before", 0), (" breakfast", 0))),
    ("z3", ((" The", 0), (" river", 0), (" froze", 0), (" over", 0), (" in", 0), (" January", 0))),
    ("z4", ((" He", 0), (" fixed", 0), (" the", 0), (" bike", 0), (" chain", 0), (" himself", 0))),
    ("z5", ((" Our", 0), (" team", 0), (" won", 0), (" the", 0), (" final", 0), (" match", 0))),
    ("z6", ((" The", 0), (" library", 0), (" closes", 0), (" at", 0), (" nine", 0))),
)
"""Made-up activation rows (one repeated, as exports sometimes are): 20 that fire, 6 that do not."""

EXPLANATIONS: tuple[dict[str, Any], ...] = (
    {
        "description": "coffee",
        "explanationModelName": "gpt-4o-mini",
        "scores": (("recall_alt", None), ("eleuther_fuzz", "fail batch 1"), ("eleuther_embedding", None)),
    },
    {
        "description": "hot drinks such as coffee, tea and cocoa",
        "explanationModelName": "claude-3-5-haiku",
        "scores": (("recall_alt", None), ("eleuther_recall", None)),
    },
    {"description": "morning routines", "explanationModelName": "gpt-3.5-turbo", "scores": (("recall_alt", 0.83),)},
    {"description": "brewing", "explanationModelName": "gpt-4o-mini", "scores": (("recall_alt", "all top failed"),)},
    {"description": "espresso, latte, cappuccino", "explanationModelName": "user-submitted", "scores": ()},
)
"""Explanations and how each score is made: None (as the protocol makes it), a number (a claim planted that
does not follow), or a named fault."""


class FlakyJudge(FakeSimulator):
    """The fake judge, except that a request showing `broken` gets a reply with no list in it."""

    def __init__(self, broken: str) -> None:
        super().__init__("match")
        self.broken = broken

    async def chat(self, requests: Sequence[ChatRequest]) -> ChatBatch:
        batch = await super().chat(requests)
        replies = [
            ChatReply("I cannot decide about these examples.") if self.broken in request.items else reply
            for request, reply in zip(requests, batch.replies, strict=True)
        ]
        return ChatBatch(replies, batch.usage)


def activations() -> list[dict[str, Any]]:
    items = []
    for number, (_, pairs) in enumerate(ROWS):
        tokens = [token for token, _ in pairs]
        values = [float(value) for _, value in pairs]
        peak = max(values)
        items.append(
            {
                "id": f"act-{number}",
                "tokens": tokens,
                "values": values,
                "maxValue": peak,
                "maxValueTokenIndex": values.index(peak),
            }
        )
    return items


async def _score(kind: str, fault: Any, text: str, rows: list[Row]) -> dict[str, Any]:
    judge = FakeSimulator("match")
    selection = select_rows(rows)
    if kind == "recall_alt":
        template = recall_alt_template()
        outcome, requests = await recall_alt.score(
            text, recall_alt.examples_from_selection(selection), judge, [template.messages]
        )
        judged = outcome.runs[0].judged
        value = outcome.mean
        if fault == "all top failed":
            for item in judged:
                if item.example.group == "top":
                    item.answer, item.reason, item.failed = False, recall_alt.API_ERROR_REASON, True
            value = 0.5
        details: Any = recall_alt.details_of(judged, requests)
        return score_entry(kind, JUDGE_MODEL, fault if isinstance(fault, float) else value, details)
    sourced = [(row.tokens, row.values, row.source) for row in [*selection.top, *selection.zero]]
    if kind == eleuther.EMBEDDING:
        examples = eleuther.prepare(sourced, eleuther.RECALL).examples
        embedder = embedder_for(judge)
        outcome, similarities = await eleuther.embedding_score(text, examples, embedder, EMBEDDING_INSTRUCTION)
        details = eleuther.embedding_details(examples, similarities)
        return score_entry(kind, eleuther.EMBEDDING_MODEL, outcome.mean, details)
    prepared = eleuther.prepare(sourced, kind)
    flaky = FlakyJudge(prepared.examples[eleuther.BATCH_SIZE].text) if fault == "fail batch 1" else judge
    template = fuzz_template() if kind == eleuther.FUZZ else recall_template()
    outcome, _ = await eleuther.score(text, prepared.examples, flaky, template, kind, runs=1)
    return score_entry(kind, JUDGE_MODEL, outcome.mean, eleuther.details_of(outcome.runs[0].judged, kind))


def build_feature() -> dict[str, Any]:
    """The example feature (deterministic: the same dict on every run)."""
    items = activations()
    rows = [Row(item["tokens"], item["values"], item["maxValue"], number) for number, item in enumerate(items)]
    explanations = []
    for number, spec in enumerate(EXPLANATIONS):
        scores = [asyncio.run(_score(kind, fault, spec["description"], rows)) for kind, fault in spec["scores"]]
        for position, score in enumerate(scores):
            score["id"] = f"score-{number}-{position}"
        explanations.append(
            {
                "id": f"expl-{number}",
                "description": spec["description"],
                "explanationModelName": spec["explanationModelName"],
                "typeName": "oai_token-act-pair",
                "scores": scores,
            }
        )
    return {
        "modelId": "gpt2-small",
        "layer": "6-res-jb",
        "index": "3310",
        "note": (
            "Made by scripts/make_spot_check_example.py in the shape of Neuronpedia's GET /api/feature response. "
            "The activations are made up. Each score and its jsonDetails come from this project's implementation "
            "of Neuronpedia's protocol, judged by the deterministic fake judge standing in for the model named "
            "(the embedding similarities by a bag-of-words stand-in for stella_en_400m_v5). Planted on purpose: "
            "a failed eleuther_fuzz batch, a wrong recall_alt claim (morning routines) and a recall_alt score "
            "saved although every top request failed (brewing)."
        ),
        "explanations": explanations,
        "activations": items,
    }


def render(feature: dict[str, Any]) -> str:
    return json.dumps(feature, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    configure_process()  # as the command line does: the figures are the entry points'
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args()
    text = render(build_feature())
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        sys.stderr.write(f"{OUTPUT.name} {'is up to date' if same else 'differs from what the script builds'}\n")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
