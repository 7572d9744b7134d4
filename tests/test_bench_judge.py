"""benchmarks/bench_judge.py end to end with the `fake` judge, and the shape of the dev data it reads.

The fake judge says yes in proportion to the explanation's words among the marked tokens, so a
hand-made case where the true explanation names the marked tokens must be ranked first.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from scoring import prompts
from scoring.bench import load_puzzles
from scoring.errors import ScoringInputError
from scoring.records import load_attention_records
from scoring.simulators.fake import FakeSimulator
from scoring.simulators.judge import JudgeQuestion, Judgment, JudgmentBatch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench_judge = _load("bench_judge")
dev_check = _load("dev_check")
attention_build = _load("attention_build")
PATTERNS = {text: name for name, text in attention_build.DESCRIPTIONS.items()}


def _barking_record() -> dict:
    """Each " barks" attends to the dog just before it; every other pair is faint."""
    tokens = ["Dog", " barks", ",", " dog", " barks", ",", " dog", " barks", ",", " dog", " barks", ",", " dog",
              " barks", "."]
    pairs = [
        [frm, to, 0.9 if tokens[frm] == " barks" and to == frm - 1 else 0.01]
        for frm in range(len(tokens))
        for to in range(frm + 1)
    ]
    return {"tokens": tokens, "pairs": pairs}


@pytest.fixture
def heads_file(tmp_path: Path) -> Path:
    path = tmp_path / "heads.json"
    heads = {
        "barks_to_dog": {
            "explanation": "barks attend dog",
            "false_explanations": ["meows attend cat", "whistles attend kettle"],
            "records": [_barking_record(), _barking_record()],
        }
    }
    path.write_text(json.dumps(heads))
    return path


@pytest.fixture
def puzzles_file(tmp_path: Path) -> Path:
    path = tmp_path / "puzzles.json"
    puzzle = {
        "name": "cat",
        "explanation": "cat",
        "false_explanations": ["giraffe", "spoon"],
        "sentences": [
            ["My", [" cat", 9], " sleeps", " all", " day", " long"],
            ["A", " black", [" cat", 7], " sat", " on", " a", " mat"],
            ["Rain", " fell", " on", " Monday", " morning"],
            ["We", " drove", " home", " after", " lunch"],
            ["Our", [" cat", 10], " hates", " baths", " and", " dogs"],
            ["Prices", " rose", " again", " this", " year"],
        ],
    }
    path.write_text(json.dumps({"cat": puzzle}))
    return path


def test_fake_judge_ranks_the_hand_made_cases_right(heads_file: Path, puzzles_file: Path) -> None:
    report = bench_judge.run("fake", sets=str(puzzles_file), heads=heads_file)
    head = report["attention"]["per_head"]["barks_to_dog"]
    assert head["true_score"] > 0.75  # weak pairs from " barks" to an earlier dog also get a yes
    assert all(score is not None and score < head["true_score"] for score in head["false_scores"].values())
    assert report["attention"]["pairwise_accuracy"] == 1.0
    assert report["attention"]["accuracy"] == 1.0
    assert report["attention"]["separation_roc_auc"] == 1.0
    pooled = report["judged"]["pooled"]
    assert set(pooled) == set(bench_judge.JUDGED_SCORERS)
    for name, figures in pooled.items():
        assert figures["pairwise_accuracy"] == 1.0, name
        assert figures["pairs"] == 2


def test_report_keys_from_the_command_line(heads_file: Path, puzzles_file: Path, capsys) -> None:
    code = bench_judge.main(
        ["--simulator", "fake", "--sets", str(puzzles_file), "--heads", str(heads_file),
         "--scorers", "fuzzing-judge", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {"simulator", "attention", "judged", "seconds", "limit"} <= set(report)
    assert report["simulator"].startswith("fake")
    assert {
        "heads", "pairs", "pairwise_accuracy", "accuracy", "mean_true_roc_auc", "mean_false_roc_auc",
        "separation_roc_auc", "n_scores", "seconds_per_score", "per_head",
    } <= set(report["attention"])
    assert report["attention"]["n_scores"] == 3
    row = report["judged"]["sets"][str(puzzles_file)]["fuzzing-judge"]
    assert {"pairwise_accuracy", "accuracy", "pairs", "n_scores", "seconds_per_score", "errors"} <= set(row)
    assert row["errors"] == 0
    assert set(report["judged"]["pooled"]) == {"fuzzing-judge"}


def test_shipped_sets_run_on_a_small_subset(capsys) -> None:
    code = bench_judge.main(["--simulator", "fake", "--limit", "1", "--sets", "dev,dev2,dev3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "attention heads: pairwise" in out and "pooled" in out


def test_a_judge_that_fails_loses_every_pair(heads_file: Path) -> None:
    report = bench_judge.run("fake:fail", sets="", heads=heads_file)
    attention = report["attention"]
    assert attention["pairwise_accuracy"] == 0.0
    assert math.isnan(attention["mean_true_roc_auc"])
    assert attention["per_head"]["barks_to_dog"]["errors"]
    assert "judged" not in report


def test_bad_input_is_refused_with_a_reason(tmp_path: Path, heads_file: Path, capsys) -> None:
    assert bench_judge.main(["--simulator", "fake", "--sets", "dev9", "--no-heads"]) == 2
    assert "unknown puzzle set 'dev9'" in capsys.readouterr().err
    with pytest.raises(ScoringInputError, match="unknown judged scorer"):
        bench_judge.run("fake", sets="", heads=heads_file, scorers=["simulation"])
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"h": {"explanation": "x", "records": []}}))
    with pytest.raises(ScoringInputError, match="has no false_explanations"):
        bench_judge.load_heads(broken)
    broken.write_text("{not json")
    with pytest.raises(ScoringInputError, match="cannot read"):
        bench_judge.load_heads(broken)


def test_shipped_attention_heads_load() -> None:
    heads = bench_judge.load_heads(bench_judge.HEADS)
    assert len(heads) >= 12
    for key, head in heads.items():
        assert len(head["false_explanations"]) == 3, key
        assert head["explanation"] not in head["false_explanations"], key
        records = load_attention_records(head["records"])
        for record in records:
            strongest = sorted(record.pairs, key=lambda pair: -pair[2])[:5]
            assert all(value >= 0.8 for _, _, value in strongest), key


def test_dev3_is_well_formed_and_its_literal_decoys_are_strong() -> None:
    path = BENCHMARKS / "dev_puzzles_3.json"
    assert len(load_puzzles(path)) >= 25
    report = dev_check.check_file(path)
    assert report["problems"] == 0, [row["problems"] for row in report["rows"] if row["problems"]]
    assert report["with_literal_decoy"] == report["puzzles"]
    assert 0.5 <= report["literal_median"] <= 0.7


def test_dev_check_reads_a_literal_decoy() -> None:
    tokens = ["The", " cat", " sat", ".", " A", " cat", "fish", " swam", "."]
    assert dev_check.literal_words('instances of the words "cat", "sat" and "swam"') == ["cat", "sat", "swam"]
    assert dev_check.literal_words("animals of any kind") is None
    # "catfish" is one word, so it is not an occurrence of "cat"
    assert dev_check.literal_simulation(tokens, ["cat"]) == [0, 10, 0, 0, 0, 0, 0, 0, 0]


class _PatternOracle(FakeSimulator):
    """A judge that knows the positional and bracket patterns exactly: yes when the pair follows the one named."""

    def __init__(self, records: list[list[str]]) -> None:
        super().__init__()
        self.model = "pattern-oracle"
        self.records = records

    def _targets(self, pattern: str, tokens: list[str]) -> list[int | None]:
        if pattern == "bracket_opener":
            ends = list(itertools.accumulate(len(token) for token in tokens))
            spans = [(end - len(token), end) for token, end in zip(tokens, ends, strict=True)]
            return attention_build._bracket_opener(tokens, spans, "".join(tokens))
        return attention_build.POSITIONAL[pattern](tokens)

    async def judge(self, questions: Sequence[JudgeQuestion]) -> JudgmentBatch:
        judgments = []
        for question in questions:
            frm, to = (int(n) - 1 for n in re.findall(r"\(token (\d+)\)", question.content))
            marked = sorted({(frm, frm + 1), (to, to + 1)})
            tokens = next(t for t in self.records if question.content.startswith(prompts.judge_text(t, marked)))
            pattern = PATTERNS.get(question.explanation)
            known = pattern in attention_build.POSITIONAL or pattern == "bracket_opener"
            follows = known and self._targets(pattern, tokens)[frm] == to
            judgments.append(Judgment(1.0 if follows else 0.0))
        return JudgmentBatch(judgments)


def test_an_oracle_of_the_patterns_ranks_every_shipped_head_right() -> None:
    """The heads are solvable: a judge that applies each named pattern exactly wins every pair it can judge."""
    heads = bench_judge.load_heads(bench_judge.HEADS)
    judged = {key: head for key, head in heads.items() if key in attention_build.POSITIONAL or key == "bracket_opener"}
    oracle = _PatternOracle([record["tokens"] for head in judged.values() for record in head["records"]])
    report = bench_judge.bench_attention(judged, oracle, cache=False)
    assert report["mean_true_roc_auc"] == 1.0
    assert report["pairwise_accuracy"] == 1.0, {k: h["false_scores"] for k, h in report["per_head"].items()}


def test_dev_check_splits_a_saved_run_by_decoy_kind(tmp_path: Path) -> None:
    puzzles = tmp_path / "puzzles.json"
    puzzles.write_text(json.dumps({"p": {"explanation": "t", "false_explanations": [], "sentences": []}}))
    saved = {
        "simulator": "x",
        "scorer": "simulation",
        "puzzles": {
            "p": {
                "true_score": 0.4,
                "false_scores": {'instances of the words "a" and "b"': 0.6, "animals": 0.1, "colors": None},
            }
        },
    }
    split = dev_check.split_results(puzzles, saved)
    assert (split["literal_pairs_won"], split["literal_pairs"]) == (0, 1)
    assert (split["other_pairs_won"], split["other_pairs"]) == (2, 2)
    saved["puzzles"]["p"]["true_score"] = None  # a NaN true score loses every pair
    assert dev_check.split_results(puzzles, saved)["other_pairs_won"] == 0
    saved["puzzles"]["q"] = saved["puzzles"].pop("p")
    with pytest.raises(SystemExit, match="same file"):
        dev_check.split_results(puzzles, saved)
