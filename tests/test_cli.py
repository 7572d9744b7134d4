"""The CLI as a user runs it: a real `python -m scoring` process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUZZLES = ROOT.parent / "shared" / "benchmarks" / "openai-puzzles" / "puzzles.json"


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args], cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=120
    )


def test_score_seed_example_prints_a_ranking(data_dir):
    done = run("score", str(data_dir / "neuronpedia_request.json"), "-e", "zebra", "-e", "fox leopard",
               "--simulator", "fake")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["rank", "explanation", "score"]
    assert lines[1].split()[:2] == ["1", "fox"]
    assert "zebra" in lines[2] and "nan" in lines[2]
    assert "same value for every token" in done.stderr


def test_score_json_and_explanation_taken_from_the_request(data_dir):
    done = run("score", str(data_dir / "neuronpedia_request.json"), "--simulator", "lexical", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [r["explanation"] for r in data["results"]] == ["fast animals"]
    assert data["results"][0]["simulator"] == "lexical:stem-match"


def test_score_reads_standard_input(data_dir):
    text = (data_dir / "bare_list.json").read_text()
    done = run("score", "-", "-e", "fox", "--simulator", "fake", "--json", stdin=text)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["score"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "nope.json", "-e", "x"], "file not found"),
        (["score", "tests/data/bare_list.json"], "at least one explanation"),
        (["score", "tests/data/bare_list.json", "-e", "  "], "explanation is empty"),
        (["score", "tests/data/bare_list.json", "-e", "x", "--simulator", "gpt"], "unknown simulator"),
        (["bench", "nope.json"], "puzzle file not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not PUZZLES.exists(), reason="../shared/benchmarks is not beside the checkout")
def test_bench_json_has_the_contract_keys():
    done = run("bench", str(PUZZLES), "--simulator", "lexical", "--json", "--limit", "3")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("accuracy", "pairwise_accuracy", "seconds_per_score", "prompt_tokens_per_score", "puzzles"):
        assert key in summary
    assert summary["n_puzzles"] == 3
    assert set(summary["puzzles"]) == {"colors", "char2", "similes"}
