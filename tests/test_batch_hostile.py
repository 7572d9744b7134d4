"""Batch and the command line as a hostile or careless user meets them (issue 23).

- A line's ``records`` path is read only under the input file's folder (or a folder given with
  ``--allow-paths``), and no error quotes what a file holds.
- An output that is the input under another name (a hard link) is refused.
- Inputs that once ended in a traceback (JSON nested 100,000 deep, a 5,000-digit integer, a cache folder
  that is a file or under /proc, ``-o`` naming a folder, a port out of range) end in one line and exit 2.
- A repeated input line is scored once; ``-o`` in a missing folder is refused; ``--compact`` leaves one
  line per pair.
"""

# ruff: noqa: E501 - the tables of bad inputs and the exact messages read best one a line
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scoring.batch import run_batch

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-canary-20c4e1"
GOOD_RECORDS = [{"tokens": ["the", " fox", " ran"], "values": [0, 8, 0]}]


def cli(*arguments: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *arguments], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_lines(path: Path, *lines: Any) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """An input folder with a records file and a key file; a folder beside it with another of each."""
    inputs = tmp_path / "inputs"
    elsewhere = tmp_path / "elsewhere"
    inputs.mkdir()
    elsewhere.mkdir()
    for folder in (inputs, elsewhere):
        (folder / "feature.json").write_text(json.dumps({"activations": GOOD_RECORDS}))
        (folder / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
        (folder / "pairs.txt").write_text(f"{SECRET}\t1\nb\tc\n")
    (inputs / "escape.json").symlink_to(elsewhere / "feature.json")
    return {"inputs": inputs, "elsewhere": elsewhere, "output": tmp_path / "out.jsonl"}


def line(identifier: str, records: str) -> dict[str, Any]:
    return {"id": identifier, "records": records, "explanations": ["fox"]}


def test_records_paths_are_read_only_under_the_input_folder(layout: dict[str, Path]) -> None:
    inputs, elsewhere = layout["inputs"], layout["elsewhere"]
    source = write_lines(
        inputs / "in.jsonl",
        line("inside", str(inputs / "feature.json")),
        line("outside", str(elsewhere / "feature.json")),
        line("passwd", "/etc/passwd"),
        line("dotdot", str(inputs / ".." / "elsewhere" / "feature.json")),
        line("symlink-out", str(inputs / "escape.json")),
        line("missing-outside", str(elsewhere / "nothing.json")),
        line("key-inside", str(inputs / ".env")),
        line("text-inside", str(inputs / "pairs.txt")),
    )
    run_batch(source, layout["output"], simulator="lexical", progress=False, cache=False)
    names = [json.loads(text)["id"] for text in source.read_text().splitlines()]
    entries = {names[entry["line"] - 1]: entry for entry in read_output(layout["output"])}
    assert entries["inside"]["status"] == "ok"
    for refused in ("outside", "passwd", "dotdot", "symlink-out", "missing-outside"):
        assert entries[refused]["status"] == "input_error", refused
        assert "outside the folders records may be read from" in entries[refused]["error"]
        assert "--allow-paths" in entries[refused]["error"]
    # A missing file outside and an existing one get the same answer: nothing is learnt about the machine.
    def without_line_and_name(error: str) -> str:
        return error.split(": ", 1)[1].replace("feature.json", "X").replace("nothing.json", "X")

    assert without_line_and_name(entries["outside"]["error"]) == without_line_and_name(
        entries["missing-outside"]["error"]
    )
    output = layout["output"].read_text()
    assert "root:" not in output and SECRET not in output
    # Files that may be read but are not records: the error says where, never what they hold.
    assert entries["key-inside"]["status"] == entries["text-inside"]["status"] == "input_error"
    assert "found 1 columns" in entries["key-inside"]["error"]
    assert "line 2" in entries["text-inside"]["error"]


def test_allow_paths_opens_another_folder_from_the_command_line(layout: dict[str, Path]) -> None:
    inputs, elsewhere = layout["inputs"], layout["elsewhere"]
    source = write_lines(inputs / "in.jsonl", line("outside", str(elsewhere / "feature.json")))
    refused = cli("batch", str(source), "-o", str(layout["output"]), "--simulator", "lexical", "--no-progress")
    assert refused.returncode == 1 and read_output(layout["output"])[0]["status"] == "input_error"
    layout["output"].unlink()
    allowed = cli(
        "batch", str(source), "-o", str(layout["output"]), "--simulator", "lexical", "--no-progress",
        "--allow-paths", str(elsewhere),
    )
    assert allowed.returncode == 0, allowed.stderr
    assert read_output(layout["output"])[0]["status"] == "ok"
    missing = cli("batch", str(source), "-o", str(layout["output"]), "--allow-paths", str(elsewhere / "nope"))
    assert missing.returncode == 2 and "--allow-paths" in missing.stderr and "Traceback" not in missing.stderr


def test_the_score_command_reads_any_path_but_never_shows_its_contents(layout: dict[str, Path]) -> None:
    """The CLI's own argument is the operator's: read wherever it is, but an error never quotes the file."""
    for name in (".env", "pairs.txt"):
        done = cli("score", str(layout["elsewhere"] / name), "-e", "fox", "--simulator", "lexical")
        assert done.returncode == 2, done.stderr
        assert SECRET not in done.stderr and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def test_an_output_that_is_a_hard_link_to_the_input_is_refused(tmp_path: Path) -> None:
    """It once read its own output without end (182,501 lines in 25 s)."""
    source = write_lines(tmp_path / "in.jsonl", {"id": "a", "activations": GOOD_RECORDS, "explanations": ["fox"]})
    linked = tmp_path / "linked.jsonl"
    linked.hardlink_to(source)
    before = source.read_bytes()
    done = cli("batch", str(source), "-o", str(linked), "--simulator", "lexical", "--no-progress", timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: the output file must differ from the input file (it is the input under another name)"
    assert source.read_bytes() == before


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_LINES = {
    "nested 100,000 deep": (deep_json(100_000), "nested too deeply"),
    "a 5,000-digit integer": (
        json.dumps({"id": "big", "activations": [{"tokens": ["a"], "values": [0]}], "explanations": ["a"]}).replace(
            "[0]", "[" + "9" * 5000 + "]"
        ),
        "more than 4300 digits",
    ),
    "a value beyond 1e30": (
        json.dumps({"id": "huge", "activations": [{"tokens": ["a", "b"], "values": [0, 1e31]}], "explanations": ["a"]}),
        "value 1 is 1e+31, beyond the limit of 1e+30 in magnitude",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_a_bad_batch_line_is_one_input_error_without_traceback_or_raw_exception(tmp_path: Path, case: str) -> None:
    text, expected = BAD_LINES[case]
    source = write_lines(tmp_path / "in.jsonl", text, {"id": "good", "activations": GOOD_RECORDS, "explanations": ["fox"]})
    output = tmp_path / "out.jsonl"
    done = cli("batch", str(source), "-o", str(output), "--simulator", "lexical", "--no-progress", timeout=60)
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr, done.stderr
    entries = read_output(output)
    assert [entry["status"] for entry in entries] == ["input_error", "ok"]
    assert expected in entries[0]["error"] and "{" not in entries[0]["error"], entries[0]["error"]
    assert "RecursionError" not in entries[0]["error"] and "ValueError" not in entries[0]["error"]


def test_the_magnitude_limit_message_is_filled_in_from_the_score_command(tmp_path: Path) -> None:
    records = tmp_path / "huge.json"
    records.write_text(json.dumps([{"tokens": ["a", "b"], "values": [0, -2e31]}]))
    done = cli("score", str(records), "-e", "a", "--simulator", "lexical", "--no-cache", timeout=60)
    assert done.returncode == 2
    # read from a file, the value itself is not quoted (an error never shows what a file holds)
    assert done.stderr.strip() == "error: sequence[0] value 1 is beyond the limit of 1e+30 in magnitude; rescale the activations"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    records = tmp_path / "feature.json"
    records.write_text(json.dumps(GOOD_RECORDS))
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    source = write_lines(tmp_path / "in.jsonl", {"id": "a", "activations": GOOD_RECORDS, "explanations": ["fox"]})
    return {"records": records, "file": not_a_folder, "input": source, "folder": tmp_path}


COMMAND_LINES = {
    "score JSON nested 100,000 deep": (["score", "{deep}", "-e", "fox"], "nested too deeply"),
    "score a 5,000-digit integer": (["score", "{bigint}", "-e", "fox"], "more than 4300 digits"),
    "--cache-dir naming a file": (["score", "{records}", "-e", "fox", "--cache-dir", "{file}"], "is a file"),
    "--cache-dir under /proc": (["score", "{records}", "-e", "fox", "--cache-dir", "/proc/scoring-cache"], "cannot keep a cache"),
    "batch -o naming a folder": (["batch", "{input}", "-o", "{folder}"], "is a folder; name a file"),
    "batch -o in a missing folder": (["batch", "{input}", "-o", "{folder}/missing/dir/out.jsonl"], "does not exist; create it first"),
    "serve --port 70000": (["serve", "--port", "70000"], "port number from 1 to 65535"),
    "serve --port -1": (["serve", "--port=-1"], "port number from 1 to 65535"),
}


@pytest.mark.parametrize("case", list(COMMAND_LINES))
def test_a_bad_command_line_is_one_line_and_exit_2(files: dict[str, Path], case: str) -> None:
    deep = files["folder"] / "deep.json"
    deep.write_text(deep_json(100_000))
    bigint = files["folder"] / "bigint.json"
    bigint.write_text('[{"tokens": ["a"], "values": [' + "9" * 5000 + "]}]")
    names = {**{name: str(path) for name, path in files.items()}, "deep": str(deep), "bigint": str(bigint)}
    arguments, expected = COMMAND_LINES[case]
    done = cli(*[argument.format(**names) for argument in arguments], "--simulator", "lexical", timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [text for text in done.stderr.splitlines() if text.startswith(("error:", "python -m scoring"))]
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not (files["folder"] / "missing").exists()


def test_a_repeated_input_line_is_scored_and_written_once(tmp_path: Path) -> None:
    feature = {"id": "a", "activations": GOOD_RECORDS, "explanations": ["fox", "ran", "fox"]}
    source = write_lines(tmp_path / "in.jsonl", feature, feature, {**feature, "id": "b"})
    output = tmp_path / "out.jsonl"
    summary = run_batch(source, output, simulator="fake", progress=False, cache=False)
    pairs = [(entry["feature_id"], entry["explanation"]) for entry in read_output(output)]
    assert sorted(pairs) == [("a", "fox"), ("a", "ran"), ("b", "fox"), ("b", "ran")]
    # a line's own repeats were always dropped; line 2 repeats both pairs of line 1
    assert summary["duplicates"] == 2 and summary["written"] == 4


def test_compact_leaves_one_line_per_pair_the_last(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"id": "a", "activations": GOOD_RECORDS, "explanations": ["fox", "ran"]},
        "not json",
    )
    output = tmp_path / "out.jsonl"
    for _ in range(3):  # every rerun retries the failed pairs and appends a line for each
        run_batch(source, output, simulator="fake:fail", progress=False, cache=False)
    before = read_output(output)
    assert len(before) == 2 * 3 + 1
    done = cli(
        "batch", str(source), "-o", str(output), "--simulator", "fake:fail", "--no-progress", "--compact",
        "--no-retry-failed",
    )
    assert done.returncode == 0, done.stderr
    after = read_output(output)
    last_of: dict[tuple[Any, Any], dict[str, Any]] = {}
    for entry in before:
        last_of[entry.get("explanation"), entry.get("line")] = entry  # a key keeps its first place
    assert after == list(last_of.values())  # each pair's last line, in the order the pairs first appear
    assert {entry["status"] for entry in after if entry["explanation"]} == {"failed"}
    summary = json.loads(done.stdout)
    assert summary["compacted"] == len(before) - len(after) == 4
    assert "4 superseded lines removed" in done.stderr
    assert not list(tmp_path.glob(".out.jsonl.*"))
