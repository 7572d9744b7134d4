"""Spot-checking a feature's claimed scores: derived from their details, re-scored like with like, verdicts,
the spot-check command (text, --json, JSONL queues) and the bundled example."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scoring.protocols.neuronpedia import load_features, read_feature
from scoring.spotcheck import ClaimCheck, Rescore, decide, normalized_model, routed_model, spot_check, verdict_family

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "neuronpedia_spot_check.json"


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def claims_of(data: dict[str, Any], **options: Any) -> list[ClaimCheck]:
    return spot_check(read_feature(data, "test"), **options).claims


def by_key(claims: list[ClaimCheck]) -> dict[tuple[str, str], ClaimCheck]:
    return {(claim.explanation, claim.type): claim for claim in claims}


def test_the_example_is_made_by_the_script() -> None:
    from scripts.make_spot_check_example import build_feature, render

    assert render(build_feature()) == EXAMPLE.read_text(encoding="utf-8")


def test_every_claim_of_the_example_is_derived_from_its_details() -> None:
    claims = by_key(claims_of(example()))
    for key in [("coffee", "recall_alt"), ("coffee", "eleuther_fuzz"), ("coffee", "eleuther_embedding"),
                ("hot drinks such as coffee, tea and cocoa", "recall_alt"),
                ("hot drinks such as coffee, tea and cocoa", "eleuther_recall")]:
        claim = claims[key]
        assert claim.derived == claim.claimed and claim.verdict == "follows from its details", key
    fuzz = claims[("coffee", "eleuther_fuzz")]
    assert fuzz.derivation is not None and any("batches dropped" in note for note in fuzz.derivation.notes)
    assert sum(not item.counted for item in fuzz.derivation.judged) == 5
    wrong = claims[("morning routines", "recall_alt")]
    assert wrong.verdict == "contradicts its details" and wrong.claimed == 0.83 and wrong.derived == 0.4
    assert "claimed 0.83, but its 30 stored judgments give 0.4" in wrong.reason
    failed = claims[("brewing", "recall_alt")]
    assert failed.verdict == "contradicts its details" and failed.derived is None
    assert "saves no score" in failed.reason
    assert claims[("espresso, latte, cappuccino", "")].verdict == "no claim"


@pytest.mark.parametrize(
    ("explanation", "kind"),
    [("coffee", "eleuther_fuzz"), ("coffee", "eleuther_embedding"), ("hot drinks such as coffee, tea and cocoa",
                                                                      "eleuther_recall")],
)
def test_a_planted_wrong_claim_is_flagged_for_every_type(explanation: str, kind: str) -> None:
    data = example()
    for item in data["explanations"]:
        for score in item["scores"]:
            if item["description"] == explanation and score["explanationScoreTypeName"] == kind:
                score["value"] = round(score["value"] - 0.1, 4)
    claim = by_key(claims_of(data))[(explanation, kind)]
    assert claim.verdict == "contradicts its details" and claim.flagged


def test_tampered_judgments_are_caught_even_when_the_value_is_kept() -> None:
    data = example()
    score = data["explanations"][0]["scores"][0]
    details = json.loads(score["jsonDetails"])
    details["top"][0]["match"] = not details["top"][0]["match"]
    score["jsonDetails"] = json.dumps(details)
    claim = claims_of(data)[0]
    assert claim.verdict == "contradicts its details" and claim.derived != claim.claimed


def test_unreadable_details_and_wrong_types_are_said_plainly() -> None:
    data = copy.deepcopy(example())
    first = data["explanations"][0]["scores"]
    first[0]["jsonDetails"] = "{not json"
    first[1]["explanationScoreTypeName"] = "oai_token-act-pair"
    first[2]["explanationScoreTypeName"] = "vibes"
    claims = claims_of(data)
    assert claims[0].verdict == "details unreadable" and "not valid JSON" in claims[0].reason
    assert claims[1].verdict == "not a score type" and "explainer" in claims[1].reason
    assert claims[2].verdict == "unknown score type"


def test_rescored_with_the_fake_judge_the_verdicts_say_the_methods_differ() -> None:
    claims = by_key(claims_of(example(), rescore=True, judge="fake", cache=False, runs=3))
    recall = claims[("coffee", "recall_alt")]
    assert recall.rescore is not None and recall.rescore.value == pytest.approx(0.7333, abs=1e-4)
    assert recall.verdict == "agrees (methods differ: model)"  # the stored messages are sent: same prompt
    fuzz = claims[("coffee", "eleuther_fuzz")]
    assert fuzz.rescore is not None and fuzz.rescore.runs == 3 and fuzz.rescore.sd == 0.0
    assert fuzz.verdict == "agrees (methods differ: model, prompt)"
    assert "over 3 runs" in fuzz.reason and "prompt (ours)" in fuzz.reason
    assert claims[("morning routines", "recall_alt")].verdict == "contradicts its details"


def test_a_claim_made_by_the_judge_used_is_compared_like_with_like() -> None:
    data = example()
    data["explanations"] = data["explanations"][:1]
    data["explanations"][0]["scores"] = data["explanations"][0]["scores"][:1]
    data["explanations"][0]["scores"][0]["explanationScoreModelName"] = "fake-match"
    claim = claims_of(data, rescore=True, judge="fake", cache=False)[0]
    assert claim.verdict == "agrees" and claim.rescore is not None and claim.rescore.differences == []


def test_a_claim_of_our_simulation_scorer_is_rescored_with_the_simulator() -> None:
    data = example()
    data["explanations"] = [
        {"description": "coffee", "scores": [{"value": -0.9, "explanationScoreTypeName": "simulation",
                                              "explanationScoreModelName": "fake-match"}]},
        {"description": "coffee", "score": 0.9},
    ]
    first, second = claims_of(data, rescore=True, simulator="fake", cache=False)
    assert first.verdict == "disagrees" and first.rescore is not None and first.rescore.scorer == "simulation"
    assert second.verdict.startswith("disagrees (methods differ: method") or second.verdict.startswith("agrees")


def test_decide_widens_the_tolerance_by_two_sd_for_sampled_judges() -> None:
    check = ClaimCheck("x", "eleuther_fuzz", "m", 0.8, "", "")
    check.rescore = Rescore("eleuther-fuzz", "openai:m", 0.7, sd=0.03, runs=5)
    assert decide(check, tolerance=0.05)[0] == "agrees"
    check.rescore.sd = 0.01
    verdict, reason = decide(check, tolerance=0.05)
    assert verdict == "disagrees" and "0.700 ± 0.010 over 5 runs" in reason
    check.rescore.differences = ["model (x, the claim's m)"]
    assert decide(check)[0] == "disagrees (methods differ: model)"
    assert verdict_family("disagrees (methods differ: model, prompt)") == "disagrees (methods differ)"
    check.rescore = Rescore("eleuther-fuzz", "openai:m", math.nan, error="no key")
    assert decide(check)[0] == "not checked" and "not re-scored: no key" in decide(check)[1]


def test_model_names_compare_across_providers() -> None:
    assert normalized_model("openai/gpt-4o-mini") == normalized_model("openai-compatible:GPT-4o-mini")
    assert normalized_model("stella_en_400M_v5") == "stella_en_400m_v5"


def test_results_are_strict_json() -> None:
    check = spot_check(read_feature(example(), "x"), rescore=True, judge="fake", cache=False, runs=2)
    data = json.loads(json.dumps(check.to_dict(), allow_nan=False))
    assert data["flagged"] == 2 and len(data["claims"]) == 8


def test_a_queue_reads_every_line_and_reports_bad_ones(tmp_path: Path) -> None:
    queue = tmp_path / "queue.jsonl"
    queue.write_text(
        json.dumps(example()) + "\n\n{broken\n" + json.dumps({"activations": []}) + "\n", encoding="utf-8"
    )
    found = load_features(queue)
    assert [name for name, _ in found] == ["queue.jsonl:1", "queue.jsonl:3", "queue.jsonl:4"]
    assert not isinstance(found[0][1], Exception)
    assert "line 3 is not valid JSON" in str(found[1][1]) and "no explanations" in str(found[2][1])


# --- the command ----------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_spot_check_json_prints_the_derived_values_offline() -> None:
    done = run_cli("spot-check", str(EXAMPLE), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["feature"] == "gpt2-small · layer 6-res-jb · index 3310" and data["flagged"] == 2
    for claim in data["claims"]:
        assert {"explanation", "type", "model", "claimed", "derived", "rescored", "verdict"} <= set(claim)
        assert claim["rescored"] is None
    derived = {(claim["explanation"], claim["type"]): claim["derived"] for claim in data["claims"]}
    assert derived[("coffee", "recall_alt")] == pytest.approx(22 / 30)
    assert derived[("morning routines", "recall_alt")] == 0.4


def test_spot_check_text_and_queue(tmp_path: Path) -> None:
    done = run_cli("spot-check", str(EXAMPLE), "--evidence")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("feature gpt2-small · layer 6-res-jb · index 3310")
    assert any("morning routines" in line and "0.830" in line and "0.400" in line
               and "contradicts its details" in line for line in lines)
    assert any("[top, expected yes, said no]" in line for line in lines)
    assert lines[-1].strip() == "8 claims, 2 flagged"
    queue = tmp_path / "queue.jsonl"
    queue.write_text(json.dumps(example()) + "\nnot json\n", encoding="utf-8")
    queued = run_cli("spot-check", str(queue), "--json")
    assert queued.returncode == 1
    first, second = [json.loads(line) for line in queued.stdout.splitlines()]
    assert first["flagged"] == 2 and "not valid JSON" in second["error"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.json"], "cannot read missing.json"),
        ([str(EXAMPLE), "-e", "coffee"], "needs --rescore"),
        ([str(EXAMPLE), "--prompt-file", "fuzz=x.json"], "TYPE=PATH with TYPE one of"),
        ([str(EXAMPLE), "--prompt-file", "eleuther_fuzz=missing.json"], "cannot read the prompt file"),
        ([str(EXAMPLE), "--tolerance", "-1"], "--tolerance must be"),
        ([str(EXAMPLE), "--model-id", "gpt-4o-mini"], "--model-id takes NAME=ID"),
    ],
)
def test_spot_check_usage_errors_exit_2(arguments: list[str], message: str) -> None:
    done = run_cli("spot-check", *arguments)
    assert done.returncode == 2 and message in done.stderr


def test_score_on_a_feature_export_uses_its_explanations() -> None:
    done = run_cli("score", str(EXAMPLE), "--simulator", "lexical", "--no-cache")
    assert done.returncode == 0, done.stderr
    table = done.stdout
    for explanation in ("coffee", "morning routines", "brewing", "espresso, latte, cappuccino"):
        assert explanation in table


@pytest.mark.parametrize(
    ("name", "routed"),
    [("gpt-4o-mini", "openai/gpt-4o-mini"), ("o4-mini", "openai/o4-mini"),
     ("gemini-2.0-flash", "google/gemini-2.0-flash"), ("openai/gpt-4.1", "openai/gpt-4.1"),
     ("claude-3-5-haiku", "claude-3-5-haiku"), (" gpt-4o ", "openai/gpt-4o")],
)
def test_claim_models_are_routed_as_openrouter_names_them(name: str, routed: str) -> None:
    assert routed_model(name) == routed
    assert routed_model(name, {name.strip(): "lab/x"}) == "lab/x"
