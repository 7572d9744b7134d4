"""The scoring server as a real subprocess on loopback: Neuronpedia shape, validation, secret, concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from scoring.errors import ScoringInputError
from scoring.server import create_app, load_settings, serve
from scoring.simulators.base import SequenceSimulation, SimulationBatch
from scoring.simulators.fake import FakeSimulator
from support.scoring_server import RunningServer, scoring_servers, strict_json

SEED_BODY: dict[str, Any] = {
    "explanation": "fast animals",
    "secret": "",
    "activations": [
        {"tokens": ["the", " quick", " brown", " fox"], "values": [0, 5, 0, 8]},
        {"tokens": ["spotted", " leopard", " sprints", " at"], "values": [0, 9, 4, 0]},
    ],
}

LIMITS = {
    "SCORING_MAX_SEQUENCES": "8",
    "SCORING_MAX_TOKENS_PER_SEQUENCE": "64",
    "SCORING_MAX_BODY_BYTES": "20000",
    "SCORING_MAX_EXPLANATIONS": "5",
    "SCORING_ALLOWED_SIMULATORS": "fake,fake:fail",
}

SECRET = "s3cret-for-tests"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    """An open server with small limits and a keyed one, started together (startup is the slow part)."""
    open_dir = tmp_path_factory.mktemp("open-server")
    keyed_dir = tmp_path_factory.mktemp("keyed-server")
    configurations = [
        (
            open_dir / "server.log",
            "lexical",
            {"SERVER_KEY": "", "SCORING_CACHE_DIR": str(open_dir / "cache"), **LIMITS},
        ),
        (
            keyed_dir / "server.log",
            "lexical",
            {"SERVER_KEY": SECRET, "SCORING_CACHE_DIR": str(keyed_dir / "cache")},
        ),
    ]
    with scoring_servers(configurations) as running:
        yield running


@pytest.fixture
def server(servers: list[RunningServer]) -> RunningServer:
    return servers[0]


@pytest.fixture
def keyed_server(servers: list[RunningServer]) -> RunningServer:
    return servers[1]


def post(server: RunningServer, body: Any, path: str = "/score") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=30)


def test_seed_example_has_the_neuronpedia_shape(server: RunningServer) -> None:
    response = post(server, SEED_BODY)
    assert response.status_code == 200
    data = strict_json(response.text)
    assert set(data) >= {"score", "simulations", "error"}
    assert data["score"] is None or -1.0 <= data["score"] <= 1.0
    if data["score"] is None:
        assert data["error"]
    assert len(data["simulations"]) == 2
    for sent, simulation in zip(SEED_BODY["activations"], data["simulations"], strict=True):
        assert simulation["simulation"]["tokens"] == sent["tokens"]
        expected = simulation["simulation"]["expected_activations"]
        assert len(expected) == len(sent["tokens"])
        assert all(0.0 <= value <= 10.0 for value in expected)
        assert simulation["true_activations"] == sent["values"]
        assert "ev_correlation_score" in simulation
        assert simulation["error"] is None


def test_a_matching_explanation_gets_a_positive_score(server: RunningServer) -> None:
    response = post(server, {**SEED_BODY, "explanation": "fox and leopard"})
    assert response.status_code == 200
    data = strict_json(response.text)
    assert isinstance(data["score"], float) and data["score"] > 0
    assert data["error"] is None
    per_sequence = [simulation["ev_correlation_score"] for simulation in data["simulations"]]
    assert all(isinstance(value, float) for value in per_sequence)


def test_the_neuronpedia_readme_request_works_unchanged(server: RunningServer) -> None:
    body = {
        "explanation": "fast animals",
        "secret": "",
        "activations": [
            {"tokens": ["the ", " quick", " brown", " fox"], "values": [0, 2, 0, 2.5]},
            {"tokens": ["spotted ", " leopard", " sprints", " at"], "values": [0.5, 2.5, 1.5, 0]},
        ],
    }
    response = httpx.post(
        f"{server.url}/score", content=json.dumps(body), headers={"Content-type": "application/json"}
    )
    assert response.status_code == 200
    assert set(strict_json(response.text)) >= {"score", "simulations"}


def test_metrics_are_opt_in(server: RunningServer) -> None:
    plain = strict_json(post(server, {**SEED_BODY, "explanation": "fox"}).text)
    assert "metrics" not in plain
    detailed = strict_json(post(server, {**SEED_BODY, "explanation": "fox", "metrics": True}).text)
    assert {"correlation", "r_squared", "roc_auc", "ci_low", "ci_high"} <= set(detailed["metrics"])
    assert detailed["metrics"]["correlation"] == pytest.approx(detailed["score"])


def test_unknown_fields_are_ignored_like_the_original(server: RunningServer) -> None:
    response = post(server, {**SEED_BODY, "explanation": "fox", "featureId": "gpt2/6/1", "extra": [1, 2]})
    assert response.status_code == 200


def test_a_chosen_simulator_must_be_enabled_and_is_then_used(server: RunningServer) -> None:
    data = strict_json(post(server, {**SEED_BODY, "explanation": "fox", "simulator": "fake"}).text)
    assert data["simulator"].startswith("fake")
    assert data["score"] > 0


def test_every_sequence_failing_is_a_502_with_the_reason(server: RunningServer) -> None:
    response = post(server, {**SEED_BODY, "simulator": "fake:fail"})
    assert response.status_code == 502
    data = strict_json(response.text)
    assert data["score"] is None
    assert "fake:fail" in data["error"]
    assert all(simulation["error"] for simulation in data["simulations"])
    assert all(simulation["simulation"]["expected_activations"] is None for simulation in data["simulations"])


def test_score_many_ranks_best_first(server: RunningServer) -> None:
    body = {key: value for key, value in SEED_BODY.items() if key != "explanation"}
    response = post(server, {**body, "explanations": ["cats", "fox and leopard", "fox"]}, "/score/many")
    assert response.status_code == 200
    results = strict_json(response.text)["results"]
    assert [result["rank"] for result in results] == [1, 2, 3]
    assert results[0]["explanation"] == "fox and leopard"
    assert results[-1]["explanation"] == "cats" and results[-1]["score"] is None


def test_health(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert data["simulator"] == "lexical"
    assert data["secret_required"] is False
    assert data["limits"]["max_sequences"] == 8


def test_fifty_concurrent_requests_all_succeed(server: RunningServer) -> None:
    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            bodies = [{**SEED_BODY, "explanation": f"fox number {index}"} for index in range(50)]
            return await asyncio.gather(*(client.post("/score", json=body) for body in bodies))

    responses = asyncio.run(fire())
    assert [response.status_code for response in responses] == [200] * 50
    scores = {strict_json(response.text)["score"] for response in responses}
    assert len(scores) == 1 and next(iter(scores)) > 0


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]], ids=repr)
def test_wrong_or_missing_secret_is_401(keyed_server: RunningServer, secret: str | None) -> None:
    body = {key: value for key, value in SEED_BODY.items() if key != "secret"}
    if secret is not None:
        body["secret"] = secret
    response = post(keyed_server, body)
    assert response.status_code == 401
    assert "secret" in strict_json(response.text)["error"]


def test_the_right_secret_is_accepted_and_never_logged(keyed_server: RunningServer) -> None:
    response = post(keyed_server, {**SEED_BODY, "explanation": "fox", "secret": SECRET})
    assert response.status_code == 200
    assert httpx.get(f"{keyed_server.url}/health").json()["secret_required"] is True
    log = keyed_server.log()
    assert "POST /score 200" in log and "POST /score 401" in log
    assert SECRET not in log and SECRET[:-1] not in log


def test_settings_come_from_options_then_environment_then_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SERVER_KEY", raising=False)
    for variable in ("SCORING_MAX_SEQUENCES", "SCORING_MAX_BODY_BYTES", "SCORING_ALLOWED_SIMULATORS"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / ".env").write_text('SERVER_KEY="from-dotenv"\n', encoding="utf-8")
    settings = load_settings("lexical")
    assert settings.server_key == "from-dotenv"
    monkeypatch.setenv("SERVER_KEY", "from-environment")
    monkeypatch.setenv("SCORING_MAX_SEQUENCES", "12")
    monkeypatch.setenv("SCORING_ALLOWED_SIMULATORS", "fake, fake:fail")
    settings = load_settings("lexical", max_body_bytes=1234)
    assert settings.server_key == "from-environment"
    assert (settings.max_sequences, settings.max_body_bytes) == (12, 1234)
    assert settings.allowed_simulators == ("fake", "fake:fail")
    assert load_settings("lexical", server_key="").server_key == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_sequences": 0}, r"max_sequences \(SCORING_MAX_SEQUENCES\): .*greater than or equal to 1"),
        ({"max_body_bytes": "lots"}, r"max_body_bytes \(SCORING_MAX_BODY_BYTES\): .*valid integer"),
        ({"max_explanation_chars": 10**6}, "less than or equal to 2000"),
        ({"max_body_bytes": 100, "max_inflight_body_bytes": 50}, "must be at least max_body_bytes"),
        ({"request_timeout": 0}, r"request_timeout \(SCORING_REQUEST_TIMEOUT\)"),
        ({"max_sequence": 3}, "unknown server option"),
    ],
)
def test_bad_settings_are_input_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ScoringInputError, match=message):
        load_settings("lexical", **options)


def test_an_unknown_simulator_stops_the_server_before_it_listens() -> None:
    with pytest.raises(ScoringInputError, match="unknown simulator"):
        serve(port=1, simulator="no-such-simulator")


class HalfFailingSimulator(FakeSimulator):
    """`fake`, except that sequences containing ' leopard' fail."""

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        batch = await super().simulate(explanation, sequences)
        for position, tokens in enumerate(sequences):
            if " leopard" in tokens:
                batch.sequences[position] = SequenceSimulation(None, "the backend dropped this sequence")
        return batch


def in_process_client(tmp_path: Path) -> TestClient:
    app = create_app(load_settings("fake", server_key="", cache=tmp_path / "cache"))
    app.state.service.simulators["fake"] = HalfFailingSimulator()
    return TestClient(app, raise_server_exceptions=False)


def test_some_sequences_failing_is_a_200_with_null_score_and_the_reasons(tmp_path: Path) -> None:
    response = in_process_client(tmp_path).post("/score", json={**SEED_BODY, "explanation": "fox leopard"})
    assert response.status_code == 200
    data = strict_json(response.text)
    assert data["score"] is None and "1 of 2 sequences" in data["error"]
    first, second = data["simulations"]
    assert first["error"] is None and first["simulation"]["expected_activations"] == [0, 0, 0, 10]
    assert second["error"] == "the backend dropped this sequence"


def test_a_bug_is_a_json_500_and_the_server_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = in_process_client(tmp_path)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("scoring.server.app.ascore_explanation", broken)
    response = client.post("/score", json=SEED_BODY)
    assert response.status_code == 500
    assert "RuntimeError" in strict_json(response.text)["error"]
    assert client.get("/health").status_code == 200


def test_a_chunked_body_over_the_limit_is_413_without_a_content_length(tmp_path: Path) -> None:
    app = create_app(load_settings("lexical", max_body_bytes=1000, cache=tmp_path / "cache"))

    def chunks() -> Iterator[bytes]:
        yield b'{"explanation": "fox", "padding": "'
        yield from (b"x" * 100 for _ in range(50))
        yield b'"}'

    response = TestClient(app).post("/score", content=chunks(), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    assert "max_body_bytes" in strict_json(response.text)["error"]


class SlowSimulator(FakeSimulator):
    """`fake`, taking 30 s per call."""

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        await asyncio.sleep(30)
        return await super().simulate(explanation, sequences)


def test_scoring_past_request_timeout_is_a_504_naming_the_setting(tmp_path: Path) -> None:
    app = create_app(load_settings("fake", server_key="", cache=tmp_path / "cache", request_timeout=0.5))
    app.state.service.simulators["fake"] = SlowSimulator()
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/score", json=SEED_BODY)
    assert response.status_code == 504
    assert "request_timeout" in strict_json(response.text)["error"]
    assert client.get("/health").status_code == 200


class BlockingSimulator(FakeSimulator):
    """`fake`, blocking the event loop it runs on for 3 s per call (as a careless in-process model would)."""

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        import time

        time.sleep(3)
        return await super().simulate(explanation, sequences)


def test_health_answers_while_a_simulator_blocks_its_loop(tmp_path: Path) -> None:
    import threading
    import time

    app = create_app(load_settings("fake", server_key="", cache=tmp_path / "cache"))
    app.state.service.simulators["fake"] = BlockingSimulator()
    with TestClient(app) as client:
        answers: list[int] = []
        scoring = threading.Thread(target=lambda: answers.append(client.post("/score", json=SEED_BODY).status_code))
        scoring.start()
        time.sleep(0.5)
        assert client.get("/health").status_code == 200
        # /health came back while the score was still blocked: scoring runs on its own loop
        assert scoring.is_alive()
        scoring.join(timeout=60)
    assert answers == [200]
