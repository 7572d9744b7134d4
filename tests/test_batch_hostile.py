"""Batch and the command line as a hostile or careless user meets them (issue 23).

- A line's ``records`` path is read only under the input file's folder (or a folder given with
  ``--allow-paths``), and no error quotes what a file holds.
- An output that is the input under another name (a hard link) is refused.
- Inputs that once ended in a traceback (JSON nested 100,000 deep, a 5,000-digit integer, a cache folder
  that is a file or under /proc, ``-o`` naming a folder, a port out of range) end in one line and exit 2.
- A repeated input line is scored once; ``-o`` in a missing folder is refused; ``--compact`` leaves one
  line per pair.
"""

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
