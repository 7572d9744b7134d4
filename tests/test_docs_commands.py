"""Every command in a ```bash block of the README and docs/*.md runs as documented.

Each logical line (continuations joined) runs through bash in a scratch folder (one per document) that
holds the repository's examples, benchmarks and test data, plus the input files the docs name
(`features.jsonl`, `feature.csv`, `feature.json`, `head.json`). Two substitutions keep it offline and fast,
and nothing else is changed: every simulator the docs name is replaced by `fake` (offline, instant, judges
and writes; `lexical` is kept), and so are the defaults (SCORING_SIMULATOR, SCORING_JUDGE); `serve` listens
on a free loopback port, which the block's curl commands then call. The caches and model folders are the
test's own. Commands that load the subject model (activations, neurons, records, train-sae) are parsed, not
run: their options and required arguments are checked (tests/test_subjects.py runs them). Installers, test
and lint tools and vLLM are not run; lines that exit non-zero on purpose are listed in EXPECTED_STATUS.

A fenced block in these files must say its language: ```bash for commands to run, ```text for synopses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scoring.cli import CommandLine
from support.scoring_server import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

NOT_RUN = {
    "pip": "installs packages (the install itself is checked by tests/test_packaging.py)",
    "streamlit": "starts the dashboard (tests/test_app.py and tests/test_browser.py run it)",
    "pytest": "the test suite itself",
    "ruff": "run by .ci/run",
    "mypy": "run by .ci/run",
    "vllm": "a GPU inference server, not part of this project",
}
"""Programs whose lines are not run here, and why."""

PARSED_ONLY = ("activations", "neurons", "records", "train-sae")
"""Commands that load the subject model (minutes on a CPU): parsed, not run."""

EXPECTED_STATUS = {
    "python benchmarks/dev_check.py benchmarks/dev_puzzles_2.json": (
        1,
        "dev2 was written before dev3's shape rules: the check reports its shape problems and exits 1, as the "
        "docs say",
    ),
}
"""Documented commands whose exit code is not 0 on purpose (by the line's tokens), and why."""

KEPT_SIMULATORS = ("lexical", "fake")

OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<"}


@dataclass
class Line:
    document: Path
    number: int
    text: str
    block: int

    @property
    def id(self) -> str:
        return f"{self.document.name}:{self.number}"


def bash_lines() -> list[Line]:
    """Every logical line of every ```bash block, with where it is."""
    found: list[Line] = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block, match in enumerate(FENCE.finditer(text)):
            if match.group(1) != "bash":
                continue
            first = text[: match.start(2)].count("\n") + 1
            pending, start = "", first
            for offset, raw in enumerate(match.group(2).splitlines()):
                if not pending:
                    start = first + offset
                if raw.rstrip().endswith("\\"):
                    pending += raw.rstrip()[:-1] + " "
                    continue
                logical = (pending + raw).strip()
                if not _complete(logical):  # a quoted string goes on on the next line
                    pending = logical + "\n"
                    continue
                pending = ""
                if logical and not logical.startswith("#"):
                    found.append(Line(document, start, logical, block))
    return found


def _complete(text: str) -> bool:
    try:
        tokens_of(text)
    except ValueError:  # no closing quotation
        return False
    return True


def tokens_of(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def segments(tokens: list[str]) -> list[list[str]]:
    """The simple commands of a line (split at pipes, ;, &&, & and redirections), environment prefixes dropped."""
    parts: list[list[str]] = [[]]
    redirect = False
    for token in tokens:
        if token in OPERATORS:
            redirect = token in (">", ">>", "<")
            parts.append([])
            continue
        if redirect:
            redirect = False
            continue
        parts[-1].append(token)
    return [[t for i, t in enumerate(p) if not (re.match(r"^[A-Z_]+=", t) and all("=" in x for x in p[:i]))]
            for p in parts if p]


def program(segment: list[str]) -> str:
    """What a simple command runs: `scoring` for the CLI in either form, a script path, or the program name."""
    if not segment:
        return ""
    if segment[0] == "scoring" or segment[:3] == ["python", "-m", "scoring"]:
        return "scoring"
    if segment[:2] == ["python", "-m"]:
        return segment[2]
    if segment[0] == "python" and len(segment) > 1:
        return segment[1]
    return segment[0]


def scoring_arguments(segment: list[str]) -> list[str]:
    return segment[1:] if segment[0] == "scoring" else segment[3:]


def substituted(tokens: list[str], port: int) -> list[str]:
    """The line with every simulator and judge but lexical and fake replaced by fake, and a server on `port`."""
    out: list[str] = []
    if tokens and tokens[-1] == "&":  # each line runs in its own shell: in the foreground, so it has ended
        tokens = tokens[:-1]
    for position, token in enumerate(tokens):
        previous = tokens[position - 1] if position else ""
        if previous in ("--simulator", "--judge") and token.split(":")[0].split("?")[0] not in KEPT_SIMULATORS:
            token = "fake"
        elif previous == "--port":
            token = str(port)
        elif previous == "--host":
            token = "127.0.0.1"
        token = token.replace("localhost:5000", f"127.0.0.1:{port}")
        out.append(token)
    return out


def as_shell(tokens: list[str]) -> str:
    return " ".join(token if token in OPERATORS else shlex.quote(token) for token in tokens)


LINES = bash_lines()


@pytest.fixture(scope="module")
def workplaces(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """The folder of each document: like the repository's root, with the input files the docs name and
    `python`/`scoring` on PATH. One per document, so the files one document's commands write (an output a
    later command resumes) do not meet another's."""
    made: dict[Path, Path] = {}

    def folder(document: Path) -> Path:
        if document not in made:
            made[document] = _make_workplace(tmp_path_factory.mktemp(f"docs-{document.stem}"))
        return made[document]

    return folder


def _make_workplace(home: Path) -> Path:
    for name in ("examples", "benchmarks", "support", "tests"):
        (home / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "tests" / "data" / "long.csv", home / "feature.csv")
    shutil.copy(ROOT / "tests" / "data" / "neuronpedia_feature.json", home / "feature.json")
    (home / "head.json").write_text(
        '[{"tokens": ["The", " cat", " sat", " on", " the", " mat"], "attention": '
        "[[1,0,0,0,0,0],[0.9,0.1,0,0,0,0],[0.1,0.8,0.1,0,0,0],[0.1,0,0.8,0.1,0,0],[0.1,0,0,0.8,0.1,0],"
        "[0.1,0,0,0,0.8,0.1]]}]"
    )
    features = [
        {"id": f"f{number}", "activations": [{"tokens": ["the", " quick", " fox"], "values": [0, 2, number + 5]}],
         "explanations": ["fox", "quick animals"]}
        for number in range(4)
    ]
    (home / "features.jsonl").write_text("".join(json.dumps(feature) + "\n" for feature in features))
    # A moderator's queue (spot-check): Neuronpedia features, one per line.
    exported = json.loads((ROOT / "examples" / "neuronpedia_spot_check.json").read_text(encoding="utf-8"))
    (home / "queue.jsonl").write_text(json.dumps(exported) + "\n" + json.dumps(exported) + "\n")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    script = bin_dir / "scoring"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m scoring "$@"\n')
    script.chmod(0o755)
    return home


def environment(workplace: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{workplace / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "SCORING_SIMULATOR": "fake",
        "SCORING_JUDGE": "fake",
        # No documented line may touch the user's converted models or indexes (`scoring cache clear ...`).
        "SCORING_MODEL_DIR": str(workplace / "models"),
        "SCORING_SUBJECT_DIR": str(workplace / "subjects"),
    }


def test_every_fenced_block_names_its_language() -> None:
    unnamed = [
        f"{document.name}:{document.read_text(encoding='utf-8')[: match.start()].count(chr(10)) + 1}"
        for document in DOCUMENTS
        for match in FENCE.finditer(document.read_text(encoding="utf-8"))
        if not match.group(1)
    ]
    assert not unnamed, f"fenced blocks without a language (```bash to run, ```text for synopses): {unnamed}"


def test_the_docs_have_commands_to_run() -> None:
    runnable = [line for line in LINES if any(program(part) == "scoring" for part in segments(tokens_of(line.text)))]
    assert len(runnable) >= 30
    assert {line.document.name for line in runnable} >= {"README.md", "cli.md", "benchmarks.md", "scale-out.md"}


@pytest.mark.parametrize("line", LINES, ids=[line.id for line in LINES])
def test_documented_command_runs(
    line: Line, workplaces: Callable[[Path], Path], request: pytest.FixtureRequest
) -> None:
    workplace = workplaces(line.document)
    tokens = tokens_of(line.text)
    parts = segments(tokens)
    programs = [program(part) for part in parts]
    skipped = [name for name in programs if name in NOT_RUN]
    if skipped:
        assert all(name in NOT_RUN for name in programs), f"{line.id}: mixes run and not-run programs"
        pytest.skip(f"{skipped[0]}: {NOT_RUN[skipped[0]]}")
    servers: dict[int, subprocess.Popen[bytes]] = request.config.stash.setdefault(_SERVERS, {})
    port = _block_port(request, line)
    commands = [scoring_arguments(part) for part in parts if program(part) == "scoring"]
    if commands and commands[0] and commands[0][0] in PARSED_ONLY:
        for arguments in commands:
            CommandLine().parse(arguments)  # exits 2 on a bad option or a missing argument
        return
    if commands and commands[0] and commands[0][0] == "serve":
        _start_server(substituted(tokens, port), workplace, port, servers, line)
        return
    shell = as_shell(substituted(tokens, port))
    done = subprocess.run(
        ["bash", "-c", shell], cwd=workplace, env=environment(workplace), capture_output=True, text=True,
        timeout=600,
    )
    expected = EXPECTED_STATUS.get(" ".join(tokens), (0, ""))[0]
    said = f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    assert done.returncode == expected, f"{line.id}: {shell}\n{said}"
    if programs[0] == "curl":
        assert '"score"' in done.stdout, done.stdout


_SERVERS = pytest.StashKey[dict[int, subprocess.Popen[bytes]]]()
_PORTS = pytest.StashKey[dict[tuple[str, int], int]]()


def _block_port(request: pytest.FixtureRequest, line: Line) -> int:
    """One free loopback port per block, so a block's serve and curl lines meet."""
    ports = request.config.stash.setdefault(_PORTS, {})
    key = (str(line.document), line.block)
    if key not in ports:
        ports[key] = free_port()
    return ports[key]


def _start_server(
    tokens: list[str], workplace: Path, port: int, servers: dict[int, subprocess.Popen[bytes]], line: Line
) -> None:
    """Start the documented serve command in the background until the session ends; it must answer /health."""
    prefix = [token for token in tokens if re.match(r"^[A-Z_]+=", token)]
    command = tokens[len(prefix):]
    env = environment(workplace) | dict(token.split("=", 1) for token in prefix)
    process = subprocess.Popen(
        ["bash", "-c", "exec " + as_shell(command)], cwd=workplace, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    servers[port] = process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"{line.id}: the server exited: {said}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{line.id}: the server did not answer /health within 60 s")


@pytest.fixture(scope="module", autouse=True)
def stop_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for process in request.config.stash.get(_SERVERS, {}).values():
        process.kill()
        process.wait(timeout=30)
