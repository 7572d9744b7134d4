"""The protocol scorers (recall-alt, eleuther-*, saebench) from every face: score, bench, batch, the server's
``scorer`` field and the dashboard's Score page, with the deterministic ``fake`` judge."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

import dashboard as ui
from scoring import SIMULATORS, Simulator
from scoring.batch import run_batch
from scoring.bench import run_bench
from scoring.server import create_app, load_settings
from support.scoring_server import strict_json

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "neuronpedia_spot_check.json"
PROTOCOL_SCORERS = ("recall-alt", "eleuther-fuzz", "eleuther-recall", "eleuther-embedding", "saebench")

ACTIVATIONS = [
    {"tokens": [" a", " hot", " coffee"], "values": [0, 1.5, 6]},
    {"tokens": [" the", " coffee", " shop", " opens"], "values": [0, 8, 2, 0]},
    {"tokens": [" iced", " coffee"], "values": [0.5, 4]},
    *({"tokens": [" the", f" dog{i}", " sat"], "values": [0, 0, 0]} for i in range(4)),
]

PUZZLES = {
    "pets": {
        "name": "pets",
        "explanation": "cat",
        "false_explanations": ["dog"],
        "sentences": [[[" cat", 10], " sat"], [" my", [" cat", 7]], ["the", " dog"], ["a", " bird"]],
    },
}


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may load the local model: every test names `fake`."""
    if "local" in SIMULATORS:

        def refuse(argument: str | None) -> Simulator:
            raise AssertionError("a face test tried to load the local model; select `fake`")

        monkeypatch.setitem(SIMULATORS, "local", refuse)


@pytest.mark.parametrize("scorer", PROTOCOL_SCORERS)
def test_score_command_runs_each_protocol_on_a_feature_export(scorer: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(EXAMPLE), "-e", "coffee", "--scorer", scorer,
         "--simulator", "fake", "--json", "--no-cache"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["scorer"] == scorer and result["error"] is None
    assert 0 <= result["score"] <= 1
    if scorer in ("eleuther-fuzz", "eleuther-recall", "saebench"):
        assert result["metrics"]["runs"] == 5 and len(result["metrics"]["run_scores"]) == 5


def test_a_judge_that_cannot_chat_gets_a_reason_not_a_zero() -> None:
    # The command line stops before any work, with the reason (issue 26: exit code 2) ...
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(EXAMPLE), "-e", "coffee", "--scorer", "recall-alt",
         "--simulator", "lexical", "--json", "--no-cache"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "recall-alt scorer asks a judge" in done.stderr and "openai-compatible" in done.stderr
    # ... and the library gives NaN with the reason, never a 0.
    from scoring import score_explanation

    result = score_explanation("coffee", str(EXAMPLE), simulator="lexical", scorer="recall-alt", cache=False)
    assert math.isnan(result.score)
    assert "cannot answer them" in (result.error or "") and "openai-compatible" in (result.error or "")


def test_bench_compares_a_protocol_with_simulation() -> None:
    report = run_bench(PUZZLES, simulator="fake", scorer="simulation,recall-alt,saebench", cache=False)
    assert set(report["scorers"]) == {"simulation", "recall-alt", "saebench"}
    for name in ("recall-alt", "saebench"):
        scores = report["scorers"][name]["puzzles"]["pets"]
        assert math.isfinite(scores["true_score"]) and len(scores["false_scores"]) == 1


def test_batch_scores_with_a_protocol(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"explanations": ["coffee", "dogs"], "activations": ACTIVATIONS}) + "\n")
    output = tmp_path / "out.jsonl"
    run_batch(source, output, simulator="fake", scorer="eleuther-recall", scorer_options={"runs": 2},
              progress=False, cache=False)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["explanation"] for row in rows] == ["coffee", "dogs"]
    assert all(row["scorer"] == "eleuther-recall" and row["error"] is None for row in rows)
    assert rows[0]["score"] > rows[1]["score"]


def test_the_server_takes_a_protocol_in_its_scorer_field(tmp_path: Path) -> None:
    client = TestClient(create_app(load_settings("fake", server_key="", cache=tmp_path / "cache")))
    body = {"explanation": "coffee", "secret": "", "activations": ACTIVATIONS, "scorer": "recall-alt"}
    response = client.post("/score", json=body)
    assert response.status_code == 200, response.text
    data = strict_json(response.text)
    assert data["scorer"] == "recall-alt" and 0 <= data["score"] <= 1
    # one judgment per example: three top rows, four zero rows, five decoys
    assert len(data["judgments"]) == 3 + 4 + 5
    refused = client.post("/score", json={**body, "scorer": "recall_alt"})
    assert refused.status_code == 422 and "recall-alt" in refused.text


def test_the_score_page_offers_the_protocols_and_shows_their_questions() -> None:
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.run()
    assert set(PROTOCOL_SCORERS) <= set(app.multiselect(key="score_scorers").options)
    if "fake" not in app.selectbox(key="score_simulator").options:
        app.text_input(key=ui.EXTRA_SPEC_STATE).input("fake").run()
    app.selectbox(key="score_simulator").select("fake").run()
    app.multiselect(key="score_scorers").select("recall-alt")
    app.button(key="FormSubmitter:score_form-Score").click().run()
    assert not app.exception, [element.value for element in app.exception]
    results = app.session_state["score_results_by_scorer"]["recall-alt"]
    assert results and all(result.judgments and math.isfinite(result.score) for result in results)
