"""The CLI as a user runs it: a real `python -m scoring` process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUZZLES = ROOT / "benchmarks" / "openai-puzzles" / "puzzles.json"


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


def test_bench_json_has_the_contract_keys():
    done = run("bench", str(PUZZLES), "--simulator", "lexical", "--json", "--limit", "3")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("accuracy", "pairwise_accuracy", "seconds_per_score", "prompt_tokens_per_score", "puzzles"):
        assert key in summary
    assert summary["n_puzzles"] == 3
    assert set(summary["puzzles"]) == {"colors", "char2", "similes"}


FAST_ANIMALS = ROOT / "examples" / "fast_animals.json"


def test_explain_lists_candidates_and_failures():
    done = run("explain", str(FAST_ANIMALS), "--simulator", "fake", "--candidates", "4", "--top-k", "3", "--no-cache")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        "  1. the token cheetah",
        "  2. the token leopard",
        "  3. the token falcon",
        "  4. (failed: fake: only 3 distinct top-activating tokens)",
    ]
    assert lines[4].startswith("simulator fake:fake-match: 3 of 4 written")


def test_explain_json_and_total_failure_exits_1():
    done = run("explain", str(FAST_ANIMALS), "--simulator", "fake", "--candidates", "2", "--json", "--no-cache")
    assert done.returncode == 0, done.stderr
    candidates = json.loads(done.stdout)["explanations"]
    assert [c["text"] for c in candidates] == ["the token cheetah", "the token leopard"]
    assert candidates[0]["error"] is None and candidates[0]["usage"]["requests"] == 1
    failed = run("explain", str(FAST_ANIMALS), "--simulator", "fake:fail", "--candidates", "1", "--no-cache")
    assert failed.returncode == 1
    assert "(failed: fake:fail always fails)" in failed.stdout
    assert "no candidate could be written" in failed.stderr


def test_explain_with_a_simulator_that_cannot_is_a_user_error():
    done = run("explain", str(FAST_ANIMALS), "--simulator", "lexical")
    assert done.returncode == 2
    assert "cannot write explanations" in done.stderr


def test_score_adds_generated_candidates_once(data_dir):
    done = run("score", str(FAST_ANIMALS), "-e", "fast animals", "-e", "The token  Cheetah", "--simulator", "fake",
               "--explain", "2", "--no-cache", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # the first candidate duplicates a given explanation and is scored once, as given
    assert sorted(r["explanation"] for r in data["results"]) == [
        "The token  Cheetah", "fast animals", "the token leopard"
    ]
    assert [c["text"] for c in data["generated"]] == ["the token cheetah", "the token leopard"]
    # no -e and no explanations in the file: the generated candidates are all there is
    table = run("score", str(data_dir / "bare_list.json"), "--simulator", "fake", "--explain", "1", "--no-cache")
    assert table.returncode == 0, table.stderr
    header, first = table.stdout.splitlines()[:2]
    assert header.split()[-1] == "source" and first.split()[-1] == "generated"


def test_bench_with_several_scorers(tmp_path):
    puzzles = tmp_path / "tiny.json"
    puzzles.write_text(json.dumps({
        "pets": {"name": "pets", "explanation": "cat", "false_explanations": ["dog", "sat"],
                 "sentences": [[[" cat", 10], " sat"], ["the", " dog"]]},
    }))
    done = run("bench", str(puzzles), "--simulator", "fake", "--scorer", "simulation,detection", "--scorer",
               "fuzzing")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["puzzle", "simulation", "detection", "fuzzing"]
    assert lines[1].split() == ["pets", "yes", "no", "yes"]
    assert any(line.startswith("detection") and "0.000" in line and "0.500" in line for line in lines)
    assert "  simulation ~ detection: tau 0.500 (1 puzzles), top 0.000 (1 puzzles)" in lines
    as_json = json.loads(run("bench", str(puzzles), "--simulator", "fake", "--scorer", "fuzzing,simulation",
                             "--json").stdout)
    assert list(as_json["scorers"]) == ["fuzzing", "simulation"] and as_json["scorer"] == "fuzzing"
    bad = run("bench", str(puzzles), "--simulator", "fake", "--scorer", "simulation,judge-of-all")
    assert bad.returncode == 2 and "unknown scorer 'judge-of-all'" in bad.stderr


def test_bench_with_a_judge_scorer_and_attention_head_refused(tmp_path):
    puzzles = tmp_path / "tiny.json"
    puzzles.write_text(json.dumps({
        "pets": {"name": "pets", "explanation": "cat", "false_explanations": ["dog", "sat"],
                 "sentences": [[[" cat", 10], " sat"], ["the", " dog"]]},
    }))
    done = run("bench", str(puzzles), "--simulator", "fake", "--scorer", "simulation,detection-judge")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["puzzle", "simulation", "detection-judge"]
    assert lines[1].split() == ["pets", "yes", "no"]  # the fake judge ties cat with sat
    assert any(line.startswith("  simulation ~ detection-judge: tau") for line in lines)
    refused = run("bench", str(puzzles), "--simulator", "fake", "--scorer", "simulation,attention-head")
    assert refused.returncode == 2 and "python -m scoring attention" in refused.stderr


def test_score_with_a_judge_scorer_marks_generated_candidates():
    done = run("score", str(FAST_ANIMALS), "-e", "fast animals", "--simulator", "fake", "--scorer",
               "detection-judge", "--explain", "1", "--no-cache")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[-2:] == ["asked", "source"]
    sources = {row.split()[-1] for row in rows[:2]}
    assert sources == {"given", "generated"}


def test_progress_bar_draws_only_once_work_starts(capsys):
    from scoring.progress import progress_bar

    with progress_bar("indexing the corpus", "window"):
        pass  # an index that is already built reports nothing
    assert capsys.readouterr().err == ""
    with progress_bar("indexing the corpus", "window") as report:
        report(0, 16, "indexing the corpus")
        report(8, 16, "indexed 8/16 windows")
        report(16, 16, "indexed 16/16 windows")
    drawn = capsys.readouterr().err
    assert "indexing the corpus" in drawn and "16/16" in drawn and "window" in drawn


def test_one_progress_bar_counts_steps_drops_work_done_before_and_shows_stages(capsys):
    from scoring.progress import ProgressBar

    with ProgressBar("scoring", "score", total=5) as bar:  # the batch runner's use
        bar.drop()  # a pair an earlier run wrote
        for failed in (0, 0, 1, 1):
            bar.advance(failed=failed)
        assert (bar.done, bar.total) == (4, 4)
    drawn = capsys.readouterr().err
    assert "scoring" in drawn and "4/4" in drawn and "score" in drawn and "failed=1" in drawn

    with ProgressBar("capture", "window") as bar:  # train-sae's use: a stage, then another
        bar.report(3, 3, "capturing activations: 3/3 windows")
        bar.restart("train", "step")
        bar.report(2, 8, "epoch 1/4, loss 0.5")
        bar.note("loss 0.5")
    drawn = capsys.readouterr().err
    assert "capture" in drawn and "3/3" in drawn and "train" in drawn and "2/8" in drawn and "loss 0.5" in drawn


def test_a_progress_bar_not_drawn_still_counts(capsys):
    from scoring.progress import ProgressBar

    with ProgressBar("scoring", "score", total=3, enabled=False) as bar:
        bar.advance()
        bar.drop()
        bar.report(2, 2, "")
    assert (bar.done, bar.total) == (2, 2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["score", "batch"])
def test_window_must_be_a_positive_whole_number(command, data_dir, tmp_path):
    target = [str(data_dir / "neuronpedia_request.json"), "-e", "fox"] if command == "score" else [
        str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl")]
    done = run(command, *target, "--simulator", "fake", "--scorer", "binary-condition", "--window", "0")
    assert done.returncode == 2
    assert "--window: must be a positive whole number, got '0'" in done.stderr
