"""Batch scoring: output per pair, bad lines, bounded concurrency, resume without re-simulating."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoring.api import rank_explanations
from scoring.batch import run_batch
from scoring.errors import ScoringInputError
from scoring.progress import ProgressBar
from scoring.simulators.base import Capabilities, SimulationBatch
from scoring.simulators.fake import FakeSimulator
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch
from support.scoring_server import fake_openai_server

REPO = Path(__file__).resolve().parents[1]

ANIMALS = ["the", " fox", " ran", " past", " a", " dog"]
WEATHER = ["rain", " fell", " on", " the", " cold", " hills"]


def _sequence(tokens: list[str], hot: set[str]) -> dict[str, Any]:
    return {"tokens": tokens, "values": [8.0 if token.strip() in hot else 0.0 for token in tokens]}


def good_features() -> list[dict[str, Any]]:
    """Six features in the formats load_records accepts, 13 (feature, explanation) pairs."""
    return [
        {
            "id": "animals",
            "activations": [_sequence(ANIMALS, {"fox", "dog"}), _sequence(WEATHER, set())],
            "explanations": ["fox dog", "rain", "the"],
        },
        {
            "feature_id": "weather",
            "records": [_sequence(WEATHER, {"rain", "cold"}), _sequence(ANIMALS, set())],
            "explanations": ["rain cold", "fox"],
        },
        {
            "modelId": "gpt2-small",
            "layer": "6-res-jb",
            "index": 2294,
            "activations": [_sequence(ANIMALS, {"ran"}), _sequence(WEATHER, {"fell"})],
            "explanations": [{"description": "ran fell"}, {"description": "hills"}],
        },
        {
            "id": "openai-format",
            "most_positive_activation_records": [
                {"tokens": ANIMALS, "activations": [0, 0, 0, 0, 0, 9]},
            ],
            "random_sample": [{"tokens": WEATHER, "activations": [0, 0, 0, 0, 0, 1]}],
            "explanation": "dog",
        },
        {
            "id": "csv-string",
            "records": "sequence,token,activation\n0,the,0\n0,fox,5\n1,a,0\n1,dog,3\n",
            "explanations": ["fox", "dog fox", "cat"],
        },
        {
            "id": "many-sequences",
            "activations": [_sequence(ANIMALS, {"fox"}) for _ in range(9)] + [_sequence(WEATHER, set())],
            "explanations": ["fox", "past"],
        },
    ]


BAD_LINES = [
    '{"id": "broken", "activations": [',
    '["not", "an", "object"]',
    json.dumps({"id": "no-explanations", "activations": [_sequence(ANIMALS, {"fox"})]}),
    json.dumps(
        {"id": "mismatch", "activations": [{"tokens": ["a", "b"], "values": [1]}], "explanation": "a"}
    ),
    json.dumps({"id": "blank", "activations": [_sequence(ANIMALS, {"fox"})], "explanations": ["fox", "  "]}),
]

GOOD_PAIRS = 13


def write_input(path: Path, with_bad_lines: bool = True) -> Path:
    good = [json.dumps(feature) for feature in good_features()]
    lines = good
    if with_bad_lines:
        # Interleave the bad lines, and a blank line, among the good ones.
        lines = [good[0], BAD_LINES[0], good[1], "", BAD_LINES[1], good[2], BAD_LINES[2], good[3]]
        lines += [BAD_LINES[3], good[4], BAD_LINES[4], good[5]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def scores_by_pair(entries: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {(e["feature_id"], e["explanation"]): e["score"] for e in entries if e["status"] == "ok"}


class CountingSimulator(FakeSimulator):
    """`fake` predictions; records how many simulate calls run at once."""

    capabilities = Capabilities(max_sequences_per_call=4, max_concurrency=64)

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("match")
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return await super().simulate(explanation, sequences)
        finally:
            self.in_flight -= 1


def test_every_pair_gets_a_line_with_metrics_usage_and_errors(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl")
    output = tmp_path / "out.jsonl"
    simulator = CountingSimulator()
    summary = run_batch(source, output, simulator=simulator, concurrency=3, progress=False)

    entries = read_output(output)
    ok = [e for e in entries if e["status"] == "ok"]
    bad = [e for e in entries if e["status"] == "input_error"]
    assert len(ok) == GOOD_PAIRS
    assert summary["ok"] == GOOD_PAIRS and summary["failed"] == 0
    assert summary["input_errors"] == len(bad) == 5
    assert summary["written"] == len(entries)
    for entry in ok:
        assert {"correlation", "r_squared", "roc_auc", "ci_low", "ci_high"} <= set(entry["metrics"])
        assert entry["usage"]["cache_misses"] + entry["usage"]["cache_hits"] == entry["n_sequences"]
        assert entry["settings"]["simulator"].startswith("fake")
    scores = scores_by_pair(entries)
    assert scores[("animals", "fox dog")] == pytest.approx(1.0)
    assert scores[("gpt2-small/6-res-jb/2294", "ran fell")] == pytest.approx(1.0)
    assert scores[("openai-format", "dog")] > 0.9
    assert scores[("csv-string", "cat")] is None
    # The bad lines say which input line they came from and what is wrong.
    errors = {e["line"]: e["error"] for e in bad}
    assert set(errors) == {2, 5, 7, 9, 11}
    assert "not valid JSON" in errors[2]
    assert "JSON object" in errors[5]
    assert "explanations" in errors[7]
    assert "values" in errors[9]
    assert errors[11].startswith("input line 11")
    assert all(error.startswith(f"input line {line}") for line, error in errors.items())


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    simulator = CountingSimulator(delay=0.05)
    run_batch(source, tmp_path / "out.jsonl", simulator=simulator, concurrency=3, progress=False)
    assert 1 < simulator.most_in_flight <= 3 * 4  # 3 pairs at once, each at most 4 chunks in flight
    solo = CountingSimulator(delay=0.01)
    run_batch(source, tmp_path / "solo.jsonl", simulator=solo, concurrency=1, progress=False, cache=False)
    assert solo.most_in_flight <= 3  # one pair at a time: its chunks only (10 sequences / 4 per call)


def test_resume_after_a_torn_output_re_simulates_nothing(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl")
    output = tmp_path / "out.jsonl"
    first = CountingSimulator()
    run_batch(source, output, simulator=first, concurrency=4, progress=False)
    complete = read_output(output)
    assert first.calls > 0

    # Simulate a crash: keep four lines, then half of the fifth (a write cut short).
    lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
    output.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2], encoding="utf-8")

    second = CountingSimulator()
    summary = run_batch(source, output, simulator=second, concurrency=4, progress=False)
    assert second.calls == 0  # unfinished pairs come from the cache
    assert summary["skipped"] == 4
    assert summary["written"] == len(complete) - 4
    assert summary["usage"]["cache_misses"] == 0 and summary["usage"]["cache_hits"] > 0
    resumed = read_output(output)
    assert len(resumed) == len(complete)
    assert scores_by_pair(resumed) == scores_by_pair(complete)
    assert {(e["line"], e["error"]) for e in resumed if e["status"] == "input_error"} == {
        (e["line"], e["error"]) for e in complete if e["status"] == "input_error"
    }

    third = CountingSimulator()
    again = run_batch(source, output, simulator=third, concurrency=4, progress=False)
    assert third.calls == 0 and again["written"] == 0 and again["skipped"] == len(complete)
    assert read_output(output) == resumed


def test_ctrl_c_mid_run_loses_nothing_and_the_rerun_finishes_the_rest(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    output = tmp_path / "out.jsonl"
    script = REPO / "support" / "slow_batch.py"
    command = [sys.executable, str(script), str(source), str(output), "0.3", "2"]
    # once 3 lines are out, every further call waits a minute: the interruption lands mid-run on a loaded machine too
    held = [*command, "3"]
    # Ctrl-C's default action in the child even when this test runs in a background job, which ignores SIGINT
    # (a process that starts with it ignored keeps ignoring it and never sees KeyboardInterrupt)
    process = subprocess.Popen(
        held,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if output.exists() and len(output.read_text(encoding="utf-8").splitlines()) >= 3:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the batch finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode != 0
    interrupted = read_output(output)  # every line written is whole JSON
    assert 3 <= len(interrupted) < GOOD_PAIRS

    finish = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(finish.stdout)
    assert report["summary"]["skipped"] == len(interrupted)
    assert report["summary"]["written"] == GOOD_PAIRS - len(interrupted)
    assert report["sequences"] <= sum(
        e["n_sequences"]
        for e in _reference_entries(tmp_path, source)
        if (e["feature_id"], e["explanation"])
        not in {(i["feature_id"], i["explanation"]) for i in interrupted}
    )
    final = read_output(output)
    assert len(final) == GOOD_PAIRS
    assert scores_by_pair(final) == scores_by_pair(_reference_entries(tmp_path, source))


def _reference_entries(tmp_path: Path, source: Path) -> list[dict[str, Any]]:
    reference = tmp_path / "reference.jsonl"
    if not reference.exists():
        run_batch(
            source, reference, simulator=CountingSimulator(), concurrency=2, progress=False, cache=False
        )
    return read_output(reference)


def test_failed_simulations_are_recorded_and_retried(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    output = tmp_path / "out.jsonl"
    summary = run_batch(source, output, simulator="fake:fail", concurrency=2, progress=False)
    assert summary["failed"] == GOOD_PAIRS and summary["ok"] == 0
    entries = read_output(output)
    assert all(e["status"] == "failed" and e["score"] is None and "fake:fail" in e["error"] for e in entries)
    retried = run_batch(source, output, simulator="fake:fail", concurrency=2, progress=False)
    assert retried["written"] == GOOD_PAIRS  # failures are not final
    kept = run_batch(source, output, simulator="fake:fail", concurrency=2, progress=False, retry_failed=False)
    assert kept["written"] == 0


def test_a_rerun_with_other_settings_is_refused(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    output = tmp_path / "out.jsonl"
    run_batch(source, output, simulator="fake", progress=False)
    with pytest.raises(ScoringInputError, match="other settings"):
        run_batch(source, output, simulator="fake", progress=False, sampling="top", n_sequences=1)
    with pytest.raises(ScoringInputError, match="other settings"):
        run_batch(source, output, simulator="lexical", progress=False)


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    with pytest.raises(ScoringInputError, match="not found"):
        run_batch(tmp_path / "missing.jsonl", tmp_path / "out.jsonl", simulator="fake")
    with pytest.raises(ScoringInputError, match="concurrency"):
        run_batch(source, tmp_path / "out.jsonl", simulator="fake", concurrency=0)
    with pytest.raises(ScoringInputError, match="unknown batch option"):
        run_batch(source, tmp_path / "out.jsonl", simulator="fake", sampeling="top")
    with pytest.raises(ScoringInputError, match="differ"):
        run_batch(source, source, simulator="fake")


def test_the_cli_runs_a_batch_end_to_end(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl")
    output = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "scoring", "batch", str(source), "-o", str(output)]
    command += ["--simulator", "lexical", "--concurrency", "3"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] == GOOD_PAIRS and summary["input_errors"] == 5
    assert len(read_output(output)) == GOOD_PAIRS + 5


def test_batch_against_a_loopback_openai_compatible_server(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl")
    output = tmp_path / "out.jsonl"
    with fake_openai_server(tmp_path / "api.log", latency=0.02) as api:
        spec = f"openai-compatible:fake-model@{api.url}/v1?mode=json&concurrency=8&batch=4"
        summary = run_batch(source, output, simulator=spec, concurrency=4, progress=False)
        stats = httpx.get(f"{api.url}/stats").json()
        assert summary["ok"] == GOOD_PAIRS and summary["input_errors"] == 5
        assert summary["usage"]["requests"] == stats["requests"] > 0
        assert summary["usage"]["prompt_tokens"] > 0
        assert 1 < stats["most_in_flight"] <= 8  # the backend's own bound, shared by the 4 pairs in flight
        # The server predicts with the fake simulator's rule: the scores are the same.
        reference = tmp_path / "reference.jsonl"
        run_batch(source, reference, simulator=CountingSimulator(), progress=False, cache=False)
        assert scores_by_pair(read_output(output)) == pytest.approx(scores_by_pair(read_output(reference)))

        lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
        output.write_text("".join(lines[:5]), encoding="utf-8")
        # Another request concurrency does not change what is measured: the rerun resumes.
        calmer = spec.replace("concurrency=8", "concurrency=2")
        resumed = run_batch(source, output, simulator=calmer, concurrency=2, progress=False)
        assert resumed["skipped"] == 5 and resumed["usage"]["requests"] == 0
        assert httpx.get(f"{api.url}/stats").json()["requests"] == stats["requests"]
        assert scores_by_pair(read_output(output)) == scores_by_pair(read_output(reference))


def test_cli_defaults_and_api_defaults_are_the_same_run(tmp_path):
    """A resume from the CLI after a library run (or the other way round) must not be refused."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "f1", "activations": [{"tokens": ["a", " fox"], "values": [0, 5]},
                                                {"tokens": ["b", " cat"], "values": [3, 0]}],
                    "explanations": ["fox", "cat"]}) + "\n"
    )
    output = tmp_path / "out.jsonl"
    run_batch(source, output, simulator="fake", progress=False, cache=tmp_path / "c")
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "batch", str(source), "-o", str(output), "--simulator", "fake",
         "--no-progress", "--cache-dir", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["skipped"] == 2


# --- binary-condition: --window and p-values corrected per feature ----------------------------------

WINDOW_FEATURE = {
    "id": "fox-neuron",
    "activations": [
        {"tokens": ["the", " fox", " ran", " home"], "values": [0, 8, 0, 0]},
        {"tokens": ["a", " dog", " saw", " fox"], "values": [0, 0, 0, 0]},
        {"tokens": ["big", " cat", " sat", " down"], "values": [0, 0, 0, 0]},
    ],
    "explanations": ["fox"],
}

CORRECTION_FEATURE = {
    "id": "animals",
    "activations": [
        {"tokens": tokens, "values": values}
        for tokens, values in [
            (["the", " fox", " ran"], [0, 8, 0]),
            (["a", " fox", " sat"], [0, 7, 0]),
            (["big", " cat", " ran"], [0, 6, 0]),
            (["one", " dog", " here"], [0, 0, 0]),
            (["my", " cat", " slept"], [0, 5, 0]),
            (["the", " dog", " barked"], [0, 1, 0]),
            (["rain", " fell", " down"], [0, 0, 0]),
            (["old", " fox", " den"], [0, 0, 0]),
        ]
    ],
    "explanations": ["fox cat", "fox", "cat", "dog", "zebra"],
}
"""Four finite binary-condition p-values whose Holm and BH adjustments both need their monotone step; zebra's is
NaN (the fake judge says no everywhere)."""


def _write_lines(path: Path, *features: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(feature) + "\n" for feature in features), encoding="utf-8")
    return path


def last_lines(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The result of each explanation: its last line."""
    return {entry["explanation"]: entry for entry in entries}


def test_window_splits_each_sequence_for_binary_condition(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "in.jsonl", WINDOW_FEATURE)
    run_batch(source, tmp_path / "whole.jsonl", simulator="fake", scorer="binary-condition", progress=False)
    run_batch(
        source, tmp_path / "windows.jsonl", simulator="fake", scorer="binary-condition",
        scorer_options={"window": 2}, progress=False,
    )
    [whole] = read_output(tmp_path / "whole.jsonl")
    [windows] = read_output(tmp_path / "windows.jsonl")
    # Whole sequences: P(yes) 0.5, 0.5, 0 against highest real activations 10, 0, 0, so r = 0.5.
    assert whole["metrics"]["windows"] == 3 and whole["metrics"]["window_tokens"] is None
    assert whole["score"] == pytest.approx(0.5)
    # Windows of 2 tokens: "the fox" (0.5, 10), "ran home", "a dog", "saw fox" (0.5, 0), "big cat", "sat down":
    # the fox outside the active window counts once in six, so r = (10/3) / sqrt(1/3 * 250/3) = sqrt(0.4).
    assert windows["metrics"]["windows"] == 6 and windows["metrics"]["window_tokens"] == 2
    assert windows["score"] == pytest.approx(math.sqrt(0.4))
    assert windows["settings"]["scorer_options"] == {"window": 2}
    assert "scorer_options" not in whole["settings"]
    with pytest.raises(ScoringInputError, match="other settings"):
        run_batch(
            source, tmp_path / "windows.jsonl", simulator="fake", scorer="binary-condition",
            scorer_options={"window": 3}, progress=False,
        )


def test_p_values_are_corrected_across_one_features_explanations(tmp_path: Path) -> None:
    other = {**WINDOW_FEATURE, "explanations": ["fox", "dog"]}
    source = _write_lines(tmp_path / "in.jsonl", CORRECTION_FEATURE, other)
    holm_output, bh_output, none_output = (tmp_path / f"{name}.jsonl" for name in ("holm", "bh", "none"))
    run_batch(source, holm_output, simulator="fake", scorer="binary-condition", concurrency=3, progress=False)
    run_batch(source, bh_output, simulator="fake", scorer="binary-condition", correction="bh", progress=False)
    run_batch(source, none_output, simulator="fake", scorer="binary-condition", correction="none", progress=False)

    holm_entries = read_output(holm_output)
    holm = last_lines([e for e in holm_entries if e["feature_id"] == "animals"])
    p = {text: entry["metrics"]["p_value"] for text, entry in holm.items()}
    assert p["zebra"] is None
    # The order the hand computation below relies on.
    assert p["fox cat"] < p["dog"] < p["fox"] < p["cat"] and 4 * p["fox cat"] < 3 * p["dog"] < 2 * p["fox"]
    # Holm over m = 4 finite p-values: (m - rank + 1) * p, never below the step before; fox gives cat its value.
    expected_holm = {"fox cat": 4 * p["fox cat"], "dog": 3 * p["dog"], "fox": 2 * p["fox"], "cat": 2 * p["fox"]}
    assert 2 * p["fox"] < 1
    for text, value in expected_holm.items():
        metrics = holm[text]["metrics"]
        assert metrics["p_value_holm"] == pytest.approx(value)
        assert metrics["p_value_corrected"] == pytest.approx(value)
        assert metrics["p_value_correction"] == "holm" and metrics["comparisons"] == 4
        assert "p_value_bh" not in metrics
    assert holm["zebra"]["metrics"]["p_value_holm"] is None and holm["zebra"]["metrics"]["comparisons"] == 4
    # The other feature is its own family: two p-values.
    assert {e["metrics"]["comparisons"] for e in holm_entries if e["feature_id"] == "fox-neuron"} == {2}

    bh = last_lines([e for e in read_output(bh_output) if e["feature_id"] == "animals"])
    # Benjamini-Hochberg: m * p / rank, never above the step after; cat's 4 * p / 4 caps dog and fox.
    assert 4 * p["cat"] / 4 < 4 * p["fox"] / 3 and 4 * p["cat"] / 4 < 4 * p["dog"] / 2
    expected_bh = {"fox cat": 4 * p["fox cat"] / 1, "dog": p["cat"], "fox": p["cat"], "cat": p["cat"]}
    for text, value in expected_bh.items():
        metrics = bh[text]["metrics"]
        assert metrics["p_value_bh"] == pytest.approx(value) and metrics["p_value_corrected"] == pytest.approx(value)
        assert metrics["p_value_correction"] == "bh" and "p_value_holm" not in metrics
    assert bh["fox cat"]["settings"]["correction"] == "bh"

    # The same numbers as ranking the explanations through the API.
    ranked = rank_explanations(
        CORRECTION_FEATURE["explanations"], CORRECTION_FEATURE["activations"], simulator="fake",
        scorer="binary-condition",
    )
    for result in ranked:
        if result.explanation != "zebra":
            assert holm[result.explanation]["metrics"]["p_value_holm"] == pytest.approx(result.metrics["p_value_holm"])
            assert bh[result.explanation]["metrics"]["p_value_bh"] == pytest.approx(result.metrics["p_value_bh"])

    uncorrected = read_output(none_output)
    assert all("p_value" in e["metrics"] and "p_value_corrected" not in e["metrics"] for e in uncorrected)
    # Scorers without p-values are not touched, and their settings do not name a correction.
    run_batch(source, tmp_path / "simulation.jsonl", simulator="fake", progress=False)
    simulation = read_output(tmp_path / "simulation.jsonl")
    assert all("p_value_corrected" not in e["metrics"] and "correction" not in e["settings"] for e in simulation)


class CatJudgeFails(FakeSimulator):
    """The fake judge, failing every question about the explanation "cat" (failures are not cached)."""

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        answered = await super().judge(questions)
        answered.judgments = [
            Judgment(None, "judge unavailable") if question.explanation == "cat" else judgment
            for question, judgment in zip(questions, answered.judgments, strict=True)
        ]
        return answered


def test_a_retried_pair_is_corrected_with_the_earlier_ones_which_are_written_again(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "in.jsonl", CORRECTION_FEATURE)
    output = tmp_path / "out.jsonl"
    first = run_batch(source, output, simulator=CatJudgeFails(), scorer="binary-condition", progress=False)
    assert first["failed"] == 1 and first["ok"] == 4
    before = last_lines(read_output(output))
    assert before["cat"]["status"] == "failed" and "p_value" not in before["cat"]["metrics"]
    assert before["fox cat"]["metrics"]["comparisons"] == 3

    second = run_batch(source, output, simulator="fake", scorer="binary-condition", progress=False)
    assert second["ok"] == 1 and second["skipped"] == 4
    # fox cat, dog and fox change with m = 4; zebra's NaN stays NaN but its count of comparisons changes.
    assert second["recorrected"] == 4
    resumed = last_lines(read_output(output))
    reference = tmp_path / "reference.jsonl"
    run_batch(source, reference, simulator="fake", scorer="binary-condition", progress=False)
    fresh = last_lines(read_output(reference))
    for text in CORRECTION_FEATURE["explanations"]:
        for name in ("p_value", "p_value_holm", "p_value_corrected", "comparisons"):
            assert resumed[text]["metrics"][name] == pytest.approx(fresh[text]["metrics"][name]), (text, name)

    third = run_batch(source, output, simulator="fake", scorer="binary-condition", progress=False)
    assert third["written"] == 0 and third["recorrected"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scorer", "binary-condition", "--window", "0"], "argument --window: must be a positive whole number"),
        (["--scorer", "binary-condition", "--window", "abc"], "argument --window: must be a positive whole number"),
        (["--scorer", "binary-condition", "--correction", "xyz"], "argument --correction: invalid choice: 'xyz'"),
        (["--window", "2"], "error: the simulation scorer has no option window"),
        (["--scorer", "binary"], "error: unknown scorer 'binary'"),
    ],
)
def test_bad_window_correction_or_scorer_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    source = _write_lines(tmp_path / "in.jsonl", WINDOW_FEATURE)
    output = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "scoring", "batch", str(source), "-o", str(output), "--simulator", "fake", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
    assert not output.exists()


def test_the_cli_passes_window_and_correction_on(tmp_path: Path) -> None:
    source = _write_lines(tmp_path / "in.jsonl", CORRECTION_FEATURE)
    output = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "scoring", "batch", str(source), "-o", str(output), "--simulator", "fake"]
    command += ["--scorer", "binary-condition", "--window", "2", "--correction", "bh", "--no-progress"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["settings"]["correction"] == "bh"
    entries = read_output(output)
    assert {e["metrics"]["window_tokens"] for e in entries} == {2}
    assert {e["metrics"]["p_value_correction"] for e in entries} == {"bh"}
    assert all("p_value_bh" in e["metrics"] for e in entries)


# ---------------------------------------------------------------- hostile input, failures, locking (issue 16)

SURROGATE_LINE = (
    '{"id":"s","activations":[{"tokens":["\\udc80"," fast"],"values":[1,9]}],"explanations":["fast"]}'
)


def _cli_batch(source: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scoring", "batch", str(source), "-o", str(output), "--no-progress"]
    return subprocess.run(command + list(extra), cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_lone_surrogate_or_bad_utf8_is_that_lines_input_error_and_the_batch_goes_on(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    good = json.dumps(good_features()[0])
    explained = json.dumps({"id": "e", "activations": [_sequence(ANIMALS, {"fox"})], "explanation": "\ud800x"})
    source.write_bytes(
        (SURROGATE_LINE + "\n" + good + "\n").encode() + b'{"id": "\xff\xfe"}\n' + explained.encode() + b"\n"
    )
    output = tmp_path / "out.jsonl"
    for _ in range(2):  # the rerun neither crashes nor repeats the bad lines
        done = _cli_batch(source, output, "--simulator", "lexical")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    entries = read_output(output)
    errors = {e["line"]: e["error"] for e in entries if e["status"] == "input_error"}
    assert set(errors) == {1, 3, 4}
    assert "lone surrogate" in errors[1] and "activations[0] token 0" in errors[1]
    assert "not valid UTF-8" in errors[3]
    assert "lone surrogate" in errors[4]
    assert sum(e["status"] == "ok" for e in entries) == 3


def test_an_unexpected_error_fails_its_pair_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scoring.batch

    real = scoring.batch.ascore_explanation

    async def sometimes_broken(explanation: str, *args: Any, **kwargs: Any) -> Any:
        if explanation == "rain":
            raise RuntimeError("a bug")
        return await real(explanation, *args, **kwargs)

    monkeypatch.setattr(scoring.batch, "ascore_explanation", sometimes_broken)
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    summary = run_batch(source, tmp_path / "out.jsonl", simulator="fake", progress=False)
    assert summary["failed"] == 1 and summary["ok"] == GOOD_PAIRS - 1
    (failed,) = [e for e in read_output(tmp_path / "out.jsonl") if e["status"] == "failed"]
    assert failed["explanation"] == "rain" and "RuntimeError: a bug" in failed["error"]


def test_a_batch_whose_pairs_all_failed_exits_1_with_a_summary_line(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    done = _cli_batch(source, tmp_path / "out.jsonl", "--simulator", "fake:fail")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"batch: 0 ok, {GOOD_PAIRS} failed, 0 bad input") and "retry" in last
    fine = _cli_batch(source, tmp_path / "fine.jsonl", "--simulator", "lexical")
    assert fine.returncode == 0
    assert fine.stderr.strip().splitlines()[-1].startswith(f"batch: {GOOD_PAIRS} ok, 0 failed, 0 bad input")


def test_a_second_run_on_an_output_in_use_is_refused(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    output = tmp_path / "out.jsonl"
    with output.open("a") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ScoringInputError, match="another batch run is writing"):
            run_batch(source, output, simulator="fake", progress=False)
        done = _cli_batch(source, output, "--simulator", "fake")
        assert done.returncode == 2 and "another batch run" in done.stderr
    assert output.read_text() == ""
    assert run_batch(source, output, simulator="fake", progress=False)["ok"] == GOOD_PAIRS


def test_the_torn_line_repair_is_shown_by_the_cli(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    output = tmp_path / "out.jsonl"
    run_batch(source, output, simulator="lexical", progress=False)
    text = output.read_text(encoding="utf-8")
    output.write_text(text[: len(text) - 40], encoding="utf-8")
    done = _cli_batch(source, output, "--simulator", "lexical")
    assert done.returncode == 0
    assert "incomplete line" in done.stderr


class RecordingBar(ProgressBar):
    """The batch's real bar, kept for the test to read what the run counted."""

    made: list[RecordingBar] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingBar.made.append(self)


class InterruptingSimulator(FakeSimulator):
    """`slow...` explanations wait; `boom` raises KeyboardInterrupt, as Ctrl-C would."""

    capabilities = Capabilities(max_sequences_per_call=16, max_concurrency=16)

    async def simulate(self, explanation: str, sequences: Sequence[Sequence[str]]) -> SimulationBatch:
        if explanation == "boom":
            await asyncio.sleep(0.2)
            raise KeyboardInterrupt
        if explanation.startswith("slow"):
            await asyncio.sleep(30)
        return await super().simulate(explanation, sequences)


def test_the_progress_bar_counts_only_this_runs_finished_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingBar.made = []
    monkeypatch.setattr("scoring.batch.ProgressBar", RecordingBar)
    bars = RecordingBar.made
    source = tmp_path / "in.jsonl"
    feature = {"id": "f", "activations": [_sequence(ANIMALS, {"fox"})]}
    source.write_text(json.dumps({**feature, "explanations": ["fox", "slow 1", "slow 2", "boom"]}) + "\n")
    output = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(source, output, simulator=InterruptingSimulator("match"), concurrency=4, cache=False)
    assert bars[-1].done == 1  # "fox" finished; the cancelled pairs are not counted
    assert len(read_output(output)) == 1

    run_batch(source, output, simulator=CountingSimulator(), concurrency=4, cache=False)
    # the resumed run's bar covers the three pairs left, not the one done before (which would inflate the rate)
    assert (bars[-1].total, bars[-1].done) == (3, 3)


@pytest.mark.parametrize("command", ["score", "batch"])
def test_a_negative_seed_on_the_cli_is_exit_2_without_a_traceback(tmp_path: Path, command: str) -> None:
    source = write_input(tmp_path / "in.jsonl", with_bad_lines=False)
    argv = [sys.executable, "-m", "scoring", command, str(source), "--seed", "-1", "--simulator", "lexical"]
    argv += ["-o", str(tmp_path / "out.jsonl")] if command == "batch" else ["-e", "fox"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--seed" in done.stderr
