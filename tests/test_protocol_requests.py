"""The protocols' requests as a real OpenAI-compatible server receives them (a loopback process that records
every body): message structure, temperature, response_format, max_tokens; and the scorers built on them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoring import score_explanation
from scoring.protocols.neuronpedia import read_feature
from scoring.protocols.prompts import EMBEDDING_INSTRUCTION
from scoring.spotcheck import spot_check
from support.scoring_server import RunningServer, protocol_judge_server

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "neuronpedia_spot_check.json"

RECORDS = [
    {"tokens": [" a", " hot", " coffee"], "values": [0, 1.5, 6]},
    {"tokens": [" the", " coffee", " shop", " opens"], "values": [0, 8, 2, 0]},
    {"tokens": [" iced", " coffee"], "values": [0.5, 4]},
    *({"tokens": [" the", f" dog{i}", " sat"], "values": [0, 0, 0]} for i in range(4)),
]


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with protocol_judge_server(tmp_path_factory.mktemp("judge") / "judge.log") as server:
        yield server


def received(server: RunningServer) -> list[dict[str, Any]]:
    bodies = httpx.get(f"{server.url}/requests", timeout=10).json()
    httpx.post(f"{server.url}/requests/reset", timeout=10)
    return bodies


def spec(server: RunningServer, model: str = "judge-model") -> str:
    return f"openai-compatible:{model}@{server.url}/v1?retries=0"


def test_recall_alt_sends_one_json_mode_request_per_example(judge_server: RunningServer) -> None:
    received(judge_server)
    result = score_explanation("coffee", RECORDS, simulator=spec(judge_server), scorer="recall-alt", cache=False)
    bodies = received(judge_server)
    assert len(bodies) == 3 + 4 + 5  # top rows, zero rows, decoys
    for body in bodies:
        assert body["model"] == "judge-model"
        assert body["temperature"] == 0 and body["max_tokens"] == 5000
        assert body["response_format"] == {"type": "json_object"} and body["reasoning_effort"] == "low"
        roles = [message["role"] for message in body["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        final = body["messages"][-1]["content"]
        assert final == json.dumps(json.loads(final), separators=(",", ":"), ensure_ascii=False).replace(".0,", ",")
    shop = next(body["messages"][-1]["content"] for body in bodies if "shop" in body["messages"][-1]["content"])
    assert json.loads(shop) == {
        "activations": [{"token": " the", "activation": 0}, {"token": " coffee", "activation": 10},
                        {"token": " shop", "activation": 2.5}, {"token": " opens", "activation": 0}],
        "explanation": "coffee",
    }
    assert '"activation":10}' in shop  # the top row rescaled to a max of 10, written as JavaScript writes it
    assert all(message["content"] == bodies[0]["messages"][i]["content"]
               for body in bodies for i, message in enumerate(body["messages"][:-1]))
    # the fake judge's rule on the server: top rows match "coffee"; zero rows and decoys do not
    assert result.score == 1.0 and result.error is None
    assert result.metrics["protocol"] == "recall_alt" and result.metrics["parameters"]["max_tokens"] == 5000


def test_a_server_that_refuses_reasoning_effort_gets_the_request_without_it(judge_server: RunningServer) -> None:
    received(judge_server)
    result = score_explanation(
        "coffee", RECORDS, simulator=spec(judge_server, "reject-reasoning"), scorer="recall-alt", cache=False
    )
    bodies = received(judge_server)
    refused = [body for body in bodies if "reasoning_effort" in body]
    answered = [body for body in bodies if "reasoning_effort" not in body]
    assert 1 <= len(refused) <= 8  # the requests in flight before the first refusal came back
    assert len(answered) == 12 and all(body["response_format"] == {"type": "json_object"} for body in answered)
    assert result.score == 1.0


@pytest.mark.parametrize(("scorer", "highlighted"), [("eleuther-fuzz", True), ("eleuther-recall", False)])
def test_delphi_batches_go_out_at_temperature_one_k_times(
    judge_server: RunningServer, scorer: str, highlighted: bool
) -> None:
    received(judge_server)
    records = RECORDS + [{"tokens": [" a", " latte", " please"], "values": [0, 7, 0]} for _ in range(1)]
    result = score_explanation(
        "coffee", records, simulator=spec(judge_server), scorer=scorer, scorer_options={"runs": 3}, cache=False
    )
    bodies = received(judge_server)
    assert len(bodies) == 2 * 3  # 8 examples: batches of 5 and 3, three runs
    for body in bodies:
        assert body["temperature"] == 1.0 and body["max_tokens"] == 500 and "response_format" not in body
        assert [message["role"] for message in body["messages"]] == ["system", "user", "assistant", "user"]
        final = body["messages"][-1]["content"]
        assert final.startswith("Explanation: coffee\n\nExample 0: ")
        assert ("<<" in final) == highlighted
    counts = [sum(line.startswith("Example ") for line in body["messages"][-1]["content"].splitlines())
              for body in bodies]
    assert sorted(counts) == [3, 3, 3, 5, 5, 5]
    # a reply of 3 entries for the short last batch is dropped, as the protocol drops it
    assert result.metrics["runs"] == 3 and len(result.metrics["run_scores"]) == 3
    dropped = [judgment for judgment in result.judgments if judgment.p_yes is None]
    assert len(dropped) == 3 * 3 and all("batch dropped" in (judgment.error or "") for judgment in dropped)
    assert result.error is None and 0.0 <= result.score <= 1.0


def test_saebench_sends_numbered_windows_and_reads_the_numbers(judge_server: RunningServer) -> None:
    received(judge_server)
    records = [{"tokens": [f" w{i}" for i in range(30)], "values": [9.0 if i == 15 else 0.0 for i in range(30)]}]
    records[0]["tokens"][15] = " coffee"
    records += [{"tokens": [f" q{r}_{i}" for i in range(25)], "values": [0.0] * 25} for r in range(2)]
    result = score_explanation(
        "coffee", records, simulator=spec(judge_server), scorer="saebench", scorer_options={"runs": 2}, cache=False
    )
    bodies = received(judge_server)
    assert len(bodies) == 2
    count = result.metrics["examples"]
    for body in bodies:
        assert body["temperature"] == 1.0 and body["max_tokens"] == 2 * count + 5
        assert [message["role"] for message in body["messages"]] == ["system", "user"]
        assert "1. " in body["messages"][-1]["content"] and "responds to: coffee" in body["messages"][-1]["content"]
    assert result.score == 1.0 and result.metrics["run_scores"] == [1.0, 1.0]


def test_failed_calls_and_unusable_replies_are_failures_not_scores(judge_server: RunningServer) -> None:
    failed = score_explanation("coffee", RECORDS, simulator=spec(judge_server, "fail-503"), scorer="recall-alt",
                               cache=False)
    assert failed.score != failed.score and "every request about a top row failed" in (failed.error or "")
    unusable = score_explanation("coffee", RECORDS + RECORDS[:1], simulator=spec(judge_server, "no-list"),
                                 scorer="eleuther-fuzz", scorer_options={"runs": 1}, cache=False)
    assert unusable.score != unusable.score and "every batch was dropped" in (unusable.error or "")
    received(judge_server)


def test_a_recall_alt_rescore_sends_the_stored_messages(judge_server: RunningServer) -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["explanations"] = data["explanations"][:1]
    data["explanations"][0]["scores"] = data["explanations"][0]["scores"][:1]
    stored = json.loads(data["explanations"][0]["scores"][0]["jsonDetails"])
    received(judge_server)
    check = spot_check(read_feature(data), rescore=True, judge=spec(judge_server), cache=False)
    bodies = received(judge_server)
    sent = [body["messages"] for body in bodies]
    expected = [json.loads(item["messages"]) for group in ("top", "zero", "decoy") for item in stored[group]]
    assert sorted(map(json.dumps, sent)) == sorted(map(json.dumps, expected))  # exactly the stored requests
    claim = check.claims[0]
    assert claim.rescore is not None and claim.rescore.differences == ["model (openai-compatible:judge-model, the "
                                                                       "claim's gpt-4o-mini)"]
    assert claim.verdict == "agrees (methods differ: model)"
    new = spot_check(read_feature(data), rescore=True, judge=spec(judge_server), explanations=("espresso",),
                     cache=False)
    bodies = received(judge_server)
    swapped = [json.loads(body["messages"][-1]["content"])["explanation"] for body in bodies[-30:]]
    assert set(swapped) == {"espresso"} and bodies[-1]["messages"][:-1] == expected[-1][:-1]
    assert new.claims[-1].verdict == "no claim" and new.claims[-1].rescore is not None


def test_an_embedding_rescore_by_a_server_sends_query_and_examples_and_names_its_model(
    judge_server: RunningServer,
) -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["explanations"] = data["explanations"][:1]
    explanation = data["explanations"][0]
    explanation["scores"] = [
        item for item in explanation["scores"] if item["explanationScoreTypeName"] == "eleuther_embedding"
    ]
    stored = json.loads(data["explanations"][0]["scores"][0]["jsonDetails"])
    received(judge_server)
    model = f"openai-compatible:dunzhang/stella_en_400M_v5@{judge_server.url}/v1?retries=0"
    check = spot_check(read_feature(data), rescore=True, embedding_model=model, cache=False)
    (body,) = received(judge_server)
    assert body["model"] == "dunzhang/stella_en_400M_v5"
    query, *texts = body["input"]
    assert query == EMBEDDING_INSTRUCTION + "coffee"
    assert texts == [item["text"] for item in stored]  # the stored examples, in their order
    claim = check.claims[0]
    assert claim.rescore is not None and claim.rescore.judge == "dunzhang/stella_en_400M_v5"
    assert claim.rescore.differences == ["prompt (our query wording)"]  # the same model: only the wording differs
    assert 0.5 < claim.rescore.value <= 1.0  # the examples that name coffee share its word
    failing = f"openai-compatible:fail-503@{judge_server.url}/v1?retries=0"
    failed = spot_check(read_feature(data), rescore=True, embedding_model=failing, cache=False).claims[0]
    assert failed.rescore is not None and failed.rescore.error is not None and "did not embed" in failed.rescore.error
    assert failed.verdict == "follows from its details" and "not re-scored" in failed.reason
    received(judge_server)


def test_a_judge_spec_with_model_rescores_each_claim_by_its_own_model(judge_server: RunningServer) -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["explanations"] = data["explanations"][:1]
    data["explanations"][0]["scores"] = data["explanations"][0]["scores"][:2]  # recall_alt and eleuther_fuzz
    data["explanations"][0]["scores"][1]["explanationScoreModelName"] = "my-judge"
    received(judge_server)
    judge = f"openai-compatible:{{model}}@{judge_server.url}/v1?retries=0"
    check = spot_check(read_feature(data), rescore=True, judge=judge, runs=2, model_ids={"my-judge": "lab/judge-7b"},
                       cache=False)
    models = [body["model"] for body in received(judge_server)]
    assert set(models) == {"openai/gpt-4o-mini", "lab/judge-7b"}  # each claim's model, as the router names it
    recall, fuzz = check.claims
    # the claim's own model with its stored messages: like with like, and the fake rule gives the stored judgments
    assert recall.rescore is not None and recall.rescore.differences == [] and recall.verdict == "agrees"
    assert fuzz.rescore is not None and fuzz.rescore.differences == ["prompt (ours)"]
    assert fuzz.verdict == "agrees (methods differ: prompt)"
    data["explanations"][0]["scores"][0]["explanationScoreModelName"] = ""
    unnamed = spot_check(read_feature(data), rescore=True, judge=judge, runs=1, cache=False).claims[0]
    assert unnamed.rescore is not None and "names no model" in (unnamed.rescore.error or "")
    received(judge_server)


def test_the_spot_check_page_rescores_each_claim_by_its_own_model(judge_server: RunningServer) -> None:
    from streamlit.testing.v1 import AppTest

    import dashboard as ui

    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["explanations"] = data["explanations"][:1]
    data["explanations"][0]["scores"] = data["explanations"][0]["scores"][:2]  # no embedding claim: no model loads
    app = AppTest.from_file(str(REPO / "pages" / "2_Spot_check.py"), default_timeout=120)
    app.run()
    app.radio(key="spot_source").set_value("Paste JSON").run()
    app.text_area(key="spot_pasted").input(json.dumps(data)).run()
    judge = f"openai-compatible:{{model}}@{judge_server.url}/v1?retries=0"
    app.text_input(key=ui.EXTRA_SPEC_STATE).input(judge).run()
    app.selectbox(key="spot_judge").select(judge)
    app.number_input(key="spot_runs").set_value(1)
    received(judge_server)
    app.button(key="FormSubmitter:spot_form-Re-score").click().run()
    assert not app.exception, [element.value for element in app.exception]
    assert {body["model"] for body in received(judge_server)} == {"openai/gpt-4o-mini"}
    claims = next(frame.value for frame in app.dataframe if "rescored" in frame.value.columns)
    verdicts = dict(zip(claims["explanation"] + " " + claims["type"], claims["verdict"], strict=True))
    assert verdicts["coffee recall_alt"] == "agrees"  # its own model, its stored messages: like with like
    assert verdicts["coffee eleuther_fuzz"] == "agrees (methods differ: prompt)"
