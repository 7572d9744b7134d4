"""benchmarks/scorer_variants.py: its shipped readings agree with the scorers, and its table adds up."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from scoring.bench import run_bench

ROOT = Path(__file__).resolve().parent.parent

# Two puzzles in which the fake simulator (10 on the explanation's words) separates the readings: the first is a
# context trap (the true explanation also names "nuts", a word that occurs where the neuron is silent, and the decoy
# "the" fires in every text but one), the second has a decoy that matches nothing (a flat simulation, NaN for every
# reading).
PUZZLES = {
    "shells": {
        "name": "shells",
        "explanation": "shelled peeled nuts",
        "false_explanations": ["nuts", "the"],
        "sentences": [
            ["the", [" shelled", 8], " nuts", " were", " good"],
            ["they", [" peeled", 6], " the", " eggs"],
            [" nuts", " in", " a", " bowl"],
            ["eggs", " for", " the", " breakfast"],
        ],
    },
    "colors": {
        "name": "colors",
        "explanation": "red",
        "false_explanations": ["zebra"],
        "sentences": [[[" red", 10], " hat"], ["a", " blue", " hat"]],
    },
}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scorer_variants", ROOT / "benchmarks" / "scorer_variants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scorer_variants"] = module
    spec.loader.exec_module(module)
    return module


variants = _load()


@pytest.fixture
def puzzles(tmp_path: Path):
    path = tmp_path / "puzzles.json"
    path.write_text(json.dumps(PUZZLES))
    return path, variants.simulate(path, "fake", cache=False)


SHIPPED_DETECTION = "correlation: highest x applies (shipped)"


def test_the_shipped_readings_win_the_pairs_the_scorers_win(puzzles):
    path, data = puzzles
    report = run_bench(str(path), simulator="fake", scorer="simulation,detection,fuzzing", cache=False)
    for scorer, reading in [
        ("simulation", variants.values_only(variants.pearson_score)),
        ("detection", variants.DETECTION[SHIPPED_DETECTION]),
        ("fuzzing", variants.values_only(variants.FUZZING["spans, both (shipped)"])),
    ]:
        summary = report["scorers"][scorer]
        won = sum(puzzle["pairs_won"] for puzzle in summary["puzzles"].values())
        assert variants.pairs_won(data, reading) == (won, 3), scorer


def with_chances(puzzle, chances):
    """`puzzle` with the true explanation's simulation given `chances` (one per text)."""
    real, simulations = puzzle
    (values, _), *decoys = simulations
    return real, [(values, chances), *decoys]


def test_on_the_trap_whole_texts_tie_until_the_simulator_says_where_the_rule_applies(puzzles):
    _, data = puzzles
    # The fake names a word of three texts for the true explanation (10, 10, 10, 0: the trap text "nuts in a bowl"
    # included) and of three for "the" (10, 10, 0, 10): at the level of whole texts the two claim as much, so the
    # highest values tie, as an ROC-AUC (0.75 each) and as a correlation (0.577 each), and a tie loses the pair.
    for reading in ("highest value", SHIPPED_DETECTION):
        assert variants.pairs_won(data, variants.DETECTION[reading]) == (2, 3), reading
    # The spread happened to win it (0.875 against 0.625: the true explanation names two words of the first text).
    assert variants.pairs_won(data, variants.DETECTION["spread"]) == (3, 3)
    # A simulator that says the rule hardly applies to the trap text (as local's chance of "none" does) wins it.
    told = [with_chances(data[0], [0.9, 0.8, 0.2, 0.1]), data[1]]
    assert variants.pairs_won(told, variants.DETECTION[SHIPPED_DETECTION]) == (3, 3)
    assert variants.pairs_won(told, variants.DETECTION["correlation: applies"]) == (3, 3)
    assert variants.pairs_won(data, variants.values_only(variants.FUZZING["spans, both (shipped)"])) == (3, 3)


def test_a_flat_simulation_is_nan_for_every_reading(puzzles):
    _, data = puzzles
    real, simulations = data[1]
    assert variants.is_flat(simulations[1][0]) and not variants.is_flat(simulations[0][0])
    readings = [*map(variants.values_only, variants.FUZZING.values()), *variants.DETECTION.values()]
    for reading in readings:
        assert variants.pairs_won([data[1]], reading) == (1, 1)  # the NaN decoy loses to any real true score


def test_the_command_prints_every_reading_and_refuses_unknown_sets(capsys, monkeypatch, tmp_path):
    path = tmp_path / "puzzles.json"
    path.write_text(json.dumps(PUZZLES))
    monkeypatch.setitem(variants.SETS, "tiny", path)
    assert variants.main(["--simulator", "fake", "--sets", "tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flat_simulations"] == {"tiny": 1}
    assert set(report["scorers"]["fuzzing"]) == set(variants.FUZZING)
    assert report["scorers"]["detection"]["spread"] == {"tiny": 1.0, "pooled": 1.0, "pooled_pairs": [3, 3]}
    assert report["scorers"]["detection"][SHIPPED_DETECTION] == {"tiny": 0.667, "pooled": 0.667, "pooled_pairs": [2, 3]}
    with pytest.raises(SystemExit):
        variants.main(["--sets", "dev,nope"])
    assert "--sets takes a comma list" in capsys.readouterr().err


def test_ask_adds_the_judges_yes_no_per_text_as_a_detection_reading(capsys, monkeypatch, tmp_path):
    path = tmp_path / "puzzles.json"
    path.write_text(json.dumps(PUZZLES))
    monkeypatch.setitem(variants.SETS, "tiny", path)
    assert variants.main(["--simulator", "fake", "--sets", "tiny", "--json", "--ask"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the fake judge's P(yes) grows with the share of the explanation's words in the text: on the trap the true
    # explanation gets 0.75, 0.5, 0.5, 0 ("the shelled nuts" holds two of its words) against 0.5, 0.5, 0, 0.5 for
    # "the" (correlations 0.69 and 0.58), unlike the highest values, which tie; "zebra" gets no yes anywhere: the
    # same answer for every text, 0 (chance), below "red" (1)
    assert variants.asked_pairs(path, "fake", cache=False) == (3, 3)
    assert report["scorers"]["detection"][variants.ASKED]["pooled_pairs"] == [3, 3]
    assert variants.ASKED not in json.loads(_run(["--simulator", "fake", "--sets", "tiny", "--json"], capsys)
                                            )["scorers"]["detection"]


def _run(argv, capsys):
    assert variants.main(argv) == 0
    return capsys.readouterr().out
