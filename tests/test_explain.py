"""Generating candidate explanations: prompts, cleaning, the fake explainer, the API backend, errors.

The API backend runs against support/fake_openai_server.py on loopback;
the local model's test carries the `model` marker. The tests against a real
OpenAI-compatible server serving a model sit in tests/test_openai_backend.py,
beside the server they share.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from scoring import GeneratedExplanation, ScoringInputError, generate_explanations, pricing
from scoring.api import explanation_examples
from scoring.prompts import (
    LOCAL_EXPLAIN_CUE,
    explain_chat_user_message,
    explain_excerpt,
    explain_strongest,
    local_explain_prompt,
)
from scoring.records import ActivationRecord
from scoring.simulators import Capabilities, ExplanationAttempt, ExplanationExample
from scoring.simulators.fake import FakeSimulator
from scoring.simulators.runner import clean_explanation
from support.scoring_server import RunningServer, fake_openai_server

ROOT = Path(__file__).resolve().parent.parent
FAST_ANIMALS = ROOT / "examples" / "fast_animals.json"

# --- prompts -----------------------------------------------------------------


def test_excerpt_marks_the_peak_and_strong_tokens_and_keeps_spaces_outside() -> None:
    tokens = ["A", " spotted", " leopard", " sprints", " at", " the", " gazelle", ".\n"]
    activations = [0.0, 0.0, 8.4, 1.3, 0.0, 0.0, 6.0, 0.0]
    assert explain_excerpt(tokens, activations, before=10, after=10) == (
        "A spotted [[leopard]] sprints at the [[gazelle]]."
    )
    assert explain_excerpt(tokens, activations, before=1, after=1) == "spotted [[leopard]] sprints"
    # a weak record still marks its strongest token
    assert explain_excerpt(["a", " dog"], [0.0, 0.3], 5, 5) == "a [[dog]]"
    assert explain_strongest(tokens, activations) == "leopard 8, gazelle 6, sprints 1"


def test_chat_user_message_exact_text() -> None:
    message = explain_chat_user_message([(["The", " cheetah", " ran"], [0.0, 10.0, 2.0]), (["a", " hare"], [0, 6.5])])
    assert message == (
        "Excerpts where the neuron fires most, strongest first. After each, its strongest tokens and their "
        "activations.\n\n"
        "1. The [[cheetah]] ran\n   (cheetah 10, ran 2)\n"
        "2. a [[hare]]\n   (hare 6)"
    )


def test_local_prompt_ends_with_the_examples_and_the_cue() -> None:
    prompt = local_explain_prompt([(["The", " cheetah", " ran"], [0.0, 10.0, 2.0]), (["a", " hare"], [0, 6.5])])
    assert prompt.endswith(
        "Excerpts:\nThe [[cheetah]] ran\na [[hare]]\nMarked tokens: cheetah, hare\n" + LOCAL_EXPLAIN_CUE
    )
    assert prompt.count(LOCAL_EXPLAIN_CUE) == 4  # three worked examples, then ours


@pytest.mark.parametrize(
    ("reply", "cleaned"),
    [
        ('Explanation: "the token X".', "the token X"),
        ("  \n Description: days of the week.\nsecond line", "days of the week"),
        ("animals such as cats, dogs,", "animals such as cats, dogs"),
        ("**fast   animals**", "fast animals"),
        ("...", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_clean_explanation(reply: str | None, cleaned: str) -> None:
    assert clean_explanation(reply) == cleaned


# --- the fake explainer through the public API --------------------------------


def texts(generated: Sequence[GeneratedExplanation]) -> list[str | None]:
    return [candidate.text for candidate in generated]


def test_fake_names_the_most_frequent_strongest_tokens() -> None:
    generated = generate_explanations(FAST_ANIMALS, simulator="fake", n=3)
    # every record's strongest token is distinct, so the summed activation decides: 9.4, 7.9, 7.2
    assert texts(generated) == ["the token cheetah", "the token leopard", "the token falcon"]
    assert [candidate.attempt for candidate in generated] == [0, 1, 2]
    assert all(candidate.ok and candidate.error is None for candidate in generated)
    assert generated[0].simulator == "fake:fake-match"
    assert generated[0].usage.requests == 1 and generated[0].usage.cache_misses == 1


def test_frequency_comes_before_strength() -> None:
    records = [
        ActivationRecord(["a", " cat"], [0, 9]),
        ActivationRecord(["the", " dog"], [0, 4]),
        ActivationRecord(["my", " dog"], [0, 3]),
        ActivationRecord(["no", " thing"], [0, 0]),
    ]
    generated = generate_explanations(records, simulator="fake", n=3, cache=False)
    assert texts(generated) == ["the token dog", "the token cat", None]
    assert generated[2].error == "fake: only 2 distinct top-activating tokens"


def test_top_k_limits_the_records_shown() -> None:
    examples = explanation_examples(
        [ActivationRecord(["a"], [1.0]), ActivationRecord(["b"], [5.0]), ActivationRecord(["c"], [0.0])], top_k=5
    )
    assert [example.tokens for example in examples] == [("b",), ("a",)]  # strongest first, silent one left out
    assert examples[0].activations == (10.0,) and examples[1].activations == (2.0,)
    generated = generate_explanations(FAST_ANIMALS, simulator="fake", n=2, top_k=1)
    assert texts(generated) == ["the token cheetah", None]


def test_generated_explanations_are_cached() -> None:
    simulator = FakeSimulator()
    first = generate_explanations(FAST_ANIMALS, simulator=simulator, n=2)
    assert simulator.explain_calls == 2
    again = generate_explanations(FAST_ANIMALS, simulator=simulator, n=3)
    assert simulator.explain_calls == 3  # only the new attempt was generated
    assert texts(again)[:2] == texts(first)
    assert [candidate.cached for candidate in again] == [True, True, False]
    assert again[0].usage.cache_hits == 1 and again[0].usage.requests == 0
    generate_explanations(FAST_ANIMALS, simulator=simulator, n=2, seed=1)
    generate_explanations(FAST_ANIMALS, simulator=simulator, n=2, top_k=3)
    assert simulator.explain_calls == 7  # another seed or other records: another key
    generate_explanations(FAST_ANIMALS, simulator=simulator, n=2, cache=False)
    assert simulator.explain_calls == 9


def test_failures_are_error_strings_and_never_cached() -> None:
    failing = FakeSimulator("fail")
    generated = generate_explanations(FAST_ANIMALS, simulator=failing, n=2)
    assert texts(generated) == [None, None]
    assert [candidate.error for candidate in generated] == ["fake:fail always fails"] * 2
    generate_explanations(FAST_ANIMALS, simulator=failing, n=2)
    assert failing.explain_calls == 4
    empty = generate_explanations(FAST_ANIMALS, simulator="fake:garbage", n=1)
    assert empty[0].text is None and empty[0].error == "the model wrote no explanation (an empty reply)"
    assert empty[0].to_dict()["text"] is None


class RaisingExplainer:
    """An explainer whose backend raises, as a broken client library would."""

    name = "raising"
    model = "m"
    prompt_version = "x"
    capabilities = Capabilities()
    explain_prompt_version = "x"

    def explain_options(self) -> dict[str, Any]:
        return {}

    async def explain(self, examples: Sequence[ExplanationExample], attempt: int, seed: int) -> ExplanationAttempt:
        raise RuntimeError("socket exploded")

    def options(self) -> dict[str, Any]:
        return {}

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> Any:
        raise NotImplementedError


def test_an_exception_in_the_backend_becomes_the_error() -> None:
    generated = generate_explanations(FAST_ANIMALS, simulator=RaisingExplainer(), n=1)  # type: ignore[arg-type]
    assert generated[0].text is None and generated[0].error == "RuntimeError: socket exploded"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"simulator": "lexical"}, "lexical simulator cannot write explanations"),
        ({"simulator": "fake", "n": 0}, "n must be a whole number from 1 to 20"),
        ({"simulator": "fake", "top_k": 0}, "top_k must be a positive whole number"),
    ],
)
def test_user_errors_raise(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ScoringInputError, match=message):
        generate_explanations(FAST_ANIMALS, **options)


def test_records_where_nothing_fires_cannot_be_explained() -> None:
    with pytest.raises(ScoringInputError, match="nothing to explain"):
        generate_explanations([{"tokens": ["a", "b"], "values": [0, -1]}], simulator="fake")


# --- the OpenAI-compatible backend against a loopback server ------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with fake_openai_server(tmp_path_factory.mktemp("api") / "api.log") as server:
        yield server


def test_api_backend_writes_one_candidate_per_request(api: RunningServer) -> None:
    # The fake server ranks the marked tokens by count, then first appearance, and answers the
    # one at position `seed` (seed + attempt): gazelle is marked beside leopard in the second excerpt.
    generated = generate_explanations(
        FAST_ANIMALS, simulator=f"openai-compatible:gpt-4o-mini@{api.url}/v1", n=3, cache=False
    )
    assert texts(generated) == ["the token cheetah", "the token leopard", "the token gazelle"]
    usage = generated[0].usage
    assert usage.requests == 1 and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    expected_cost = pricing.cost_usd("gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens)
    assert usage.cost_usd == pytest.approx(expected_cost)
    shifted = generate_explanations(
        FAST_ANIMALS, simulator=f"openai-compatible:other@{api.url}/v1", n=1, seed=3, cache=False
    )
    assert texts(shifted) == ["the token peregrine"]
    assert shifted[0].usage.cost_usd is None  # no price known for this model: tokens only


def test_api_backend_http_errors_are_error_strings(api: RunningServer) -> None:
    generated = generate_explanations(
        FAST_ANIMALS, simulator=f"openai-compatible:fail-503@{api.url}/v1?retries=0", n=2
    )
    assert texts(generated) == [None, None]
    assert all("HTTP 503" in (candidate.error or "") for candidate in generated)


def test_unreachable_server_is_an_error_string() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generated = generate_explanations(
        FAST_ANIMALS, simulator=f"openai-compatible:m@http://127.0.0.1:{port}/v1?retries=0&timeout=5", n=1
    )
    assert generated[0].text is None and "could not reach" in (generated[0].error or "")


def test_async_twin_inside_a_running_loop() -> None:
    from scoring import agenerate_explanations

    generated = asyncio.run(agenerate_explanations(FAST_ANIMALS, simulator="fake", n=1))
    assert texts(generated) == ["the token cheetah"]


# --- the local model ---------------------------------------------------------


@pytest.mark.model
def test_local_model_writes_seeded_reproducible_candidates() -> None:
    first = generate_explanations(FAST_ANIMALS, simulator="local", n=2, top_k=4, cache=False)
    second = generate_explanations(FAST_ANIMALS, simulator="local", n=2, top_k=4, cache=False)
    for candidate in first:
        assert candidate.error is None and candidate.text, candidate.error
        assert "\n" not in candidate.text and len(candidate.text) <= 300
        assert candidate.usage.completion_tokens > 0
    assert texts(first) == texts(second)
    cached = generate_explanations(FAST_ANIMALS, simulator="local", n=2, top_k=4)
    again = generate_explanations(FAST_ANIMALS, simulator="local", n=2, top_k=4)
    assert texts(cached) == texts(first) and all(candidate.cached for candidate in again)
