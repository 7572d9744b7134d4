"""The command line as researchers expect it: its help, global flags, defaults, listing, caches, progress,
exit codes and conventions. Real `python -m scoring` processes where the process boundary matters (exit
codes, terminals, the environment); `scoring.cli.main` in-process for the parser's own rules."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from scoring import cli
from scoring.cli_support import Command
from scoring.scorers import SCORERS

ROOT = Path(__file__).resolve().parent.parent
FAST_ANIMALS = ROOT / "examples" / "fast_animals.json"
REQUEST = ROOT / "tests" / "data" / "neuronpedia_request.json"


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def tiny_puzzles(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({
        "pets": {"name": "pets", "explanation": "cat", "false_explanations": ["dog", "sat"],
                 "sentences": [[[" cat", 10], " sat"], ["the", " dog"]]},
        "colors": {"name": "colors", "explanation": "red", "false_explanations": ["blue"],
                   "sentences": [[[" red", 8], " car"], ["a", " blue", " sky"]]},
    }))
    return path


# ---------------------------------------------------------------- help, version, global flags


def test_the_top_level_help_lists_every_command_in_plain_text() -> None:
    shown = run("--help")
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: python -m scoring ")
    block = shown.stdout.split("commands:")[1].split("\n\n")[0].splitlines()
    listed = {line.split()[0] for line in block if line.startswith("    ") and not line.startswith("     ")}
    assert listed == {command.name for command in cli.COMMANDS}
    assert "``" not in shown.stdout and ":func:" not in shown.stdout  # no raw reStructuredText
    assert "--version" in shown.stdout and "--no-progress" in shown.stdout


def test_version() -> None:
    import scoring

    shown = run("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"scoring {scoring.__version__}"


def test_no_command_shows_the_commands_and_exits_2() -> None:
    shown = run()
    assert shown.returncode == 2 and "commands:" in shown.stderr and "score" in shown.stderr


@pytest.mark.parametrize("position", ["before", "after"])
def test_global_flags_stand_anywhere_on_the_line(position: str) -> None:
    flags = ["-v", "--no-progress"]
    command = ["score", str(REQUEST), "-e", "fox", "--simulator", "fake", "--json"]
    done = run(*(flags + command if position == "before" else command + flags))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["explanation"] == "fox"


def test_global_flags_keep_their_value_wherever_they_stand() -> None:
    parse = cli.CommandLine().parse
    assert parse(["score", "f.json", "-e", "x", "-v"]).verbose is True
    assert parse(["-v", "score", "f.json", "-e", "x"]).verbose is True
    assert parse(["score", "f.json", "-e", "x"]).verbose is False
    assert parse(["--no-progress", "bench", "p.json"]).no_progress is True
    assert parse(["bench", "p.json", "--no-progress"]).no_progress is True
    assert parse(["bench", "p.json"]).no_progress is False


def test_an_unknown_option_prints_the_usage_of_its_command() -> None:
    done = run("bench", "puzzles.json", "--simulator", "lexical", "--frobnicate")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m scoring bench ")
    assert "python -m scoring bench: error: unrecognized arguments: --frobnicate" in done.stderr


def test_every_option_has_help_and_says_its_default() -> None:
    """Each option of each command explains itself; one whose default is not 'off' or 'none' names it."""
    parser = cli.CommandLine()
    for name, sub in parser.commands.items():
        for action in sub._actions:  # noqa: SLF001 - argparse keeps no public list of a parser's options
            if isinstance(action, argparse._HelpAction):  # noqa: SLF001
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help text"
            quiet_default = action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings
            if not quiet_default:
                assert "default" in action.help, f"{where} does not say its default {action.default!r}"


def test_scorer_help_lists_the_valid_names() -> None:
    for command in ("score", "batch", "bench"):
        shown = run(command, "--help")
        text = " ".join(shown.stdout.split())
        for name in SCORERS:
            if name != "attention-head":
                assert name in text, f"{command} --help does not name {name}"


def test_one_place_declares_the_commands() -> None:
    names = [command.name for command in cli.COMMANDS]
    assert len(names) == len(set(names))
    assert all(isinstance(command, Command) for command in cli.COMMANDS)
    assert set(cli.CommandLine().commands) == set(names)


# ---------------------------------------------------------------- conventions


def test_minus_n_counts_sequences_and_explain_points_to_candidates() -> None:
    scored = run("score", str(FAST_ANIMALS), "-e", "fast animals", "--simulator", "fake", "-n", "3",
                 "--sampling", "top", "--json")
    assert scored.returncode == 0, scored.stderr
    assert len(json.loads(scored.stdout)["results"][0]["sequences"]) == 3
    refused = run("explain", str(FAST_ANIMALS), "--simulator", "fake", "-n", "2")
    assert refused.returncode == 2 and "--candidates N" in refused.stderr
    written = run("explain", str(FAST_ANIMALS), "--simulator", "fake", "--candidates", "2", "--json")
    assert written.returncode == 0 and len(json.loads(written.stdout)["explanations"]) == 2


def test_every_command_that_simulates_takes_the_same_cache_flags() -> None:
    parser = cli.CommandLine()
    for name in ("score", "explain", "attention", "bench", "batch"):
        options = {option for action in parser.commands[name]._actions for option in action.option_strings}  # noqa: SLF001
        assert {"--cache", "--no-cache", "--cache-dir"} <= options, name


def test_bench_is_uncached_unless_asked(tmp_path: Path) -> None:
    puzzles = tiny_puzzles(tmp_path)
    cache = tmp_path / "bench-cache"
    first = run("bench", str(puzzles), "--simulator", "fake", "--json", "--cache-dir", str(cache))
    again = run("bench", str(puzzles), "--simulator", "fake", "--json", "--cache")
    fresh = run("bench", str(puzzles), "--simulator", "fake", "--json")
    cached = run("bench", str(puzzles), "--simulator", "fake", "--json", "--cache-dir", str(cache))
    assert json.loads(first.stdout)["cache_hits"] == 0
    assert json.loads(again.stdout)["cache_hits"] == 0  # --cache: the default folder, empty so far
    assert json.loads(fresh.stdout)["cache_hits"] == 0
    assert json.loads(cached.stdout)["cache_hits"] > 0


@pytest.mark.parametrize("limit", ["0", "-1", "x"])
def test_bench_limit_must_be_positive(limit: str, tmp_path: Path) -> None:
    done = run("bench", str(tiny_puzzles(tmp_path)), "--simulator", "fake", "--limit", limit)
    assert done.returncode == 2
    assert f"argument --limit: must be a positive whole number, got '{limit}'" in done.stderr


def test_the_library_refuses_a_limit_that_is_not_positive(tmp_path: Path) -> None:
    from scoring.bench import run_bench
    from scoring.errors import ScoringInputError

    for limit in (0, -1, 1.5, True):
        with pytest.raises(ScoringInputError, match="limit must be a positive whole number"):
            run_bench(tiny_puzzles(tmp_path), simulator="fake", limit=limit)
    assert run_bench(tiny_puzzles(tmp_path), simulator="fake", limit=1)["n_puzzles"] == 1


# ---------------------------------------------------------------- exit codes


def test_judge_scorers_with_a_simulator_that_cannot_judge_exit_2(tmp_path: Path) -> None:
    attention = tmp_path / "head.json"
    matrix = [[1, 0, 0], [0.9, 0.1, 0], [0.8, 0, 0.2]]
    attention.write_text(json.dumps([{"tokens": ["a", "b", "c"], "attention": matrix}]))
    features = tmp_path / "features.jsonl"
    features.write_text(json.dumps({"id": "f", "activations": [{"tokens": ["a", " fox"], "values": [0, 5]}],
                                    "explanation": "fox"}) + "\n")
    commands = [
        ["score", str(FAST_ANIMALS), "-e", "fast animals", "--scorer", "detection-judge", "--simulator", "lexical"],
        ["attention", str(attention), "-e", "previous token", "--simulator", "lexical"],
        ["bench", str(tiny_puzzles(tmp_path)), "--scorer", "simulation,detection-judge", "--simulator", "lexical"],
        ["batch", str(features), "-o", str(tmp_path / "out.jsonl"), "--scorer", "fuzzing-judge",
         "--simulator", "embedding"],
    ]
    for command in commands:
        done = run(*command)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.startswith("error: ") and "cannot answer" in done.stderr, done.stderr
        assert "choose one that judges" in done.stderr
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()


def test_when_every_simulation_fails_score_exits_1() -> None:
    done = run("score", str(FAST_ANIMALS), "-e", "fast animals", "-e", "cats", "--simulator", "fake:fail")
    assert done.returncode == 1
    assert "error: every score failed; first reason:" in done.stderr and "fake:fail always fails" in done.stderr
    as_json = run("score", str(FAST_ANIMALS), "-e", "fast animals", "--simulator", "fake:fail", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["results"][0]["score"] is None


def test_an_undefined_score_is_a_result_not_a_failure() -> None:
    done = run("score", str(REQUEST), "-e", "zebra", "--simulator", "fake", "--strict")
    assert done.returncode == 0, done.stderr
    assert "same value for every token" in done.stderr


def test_bench_exits_1_when_every_score_failed(tmp_path: Path) -> None:
    done = run("bench", str(tiny_puzzles(tmp_path)), "--simulator", "fake:fail")
    assert done.returncode == 1 and "every score failed" in done.stderr


def test_strict_exits_1_when_any_score_failed(capsys: pytest.CaptureFixture[str]) -> None:
    from scoring.results import ScoreResult, SequenceResult

    def result(error: str | None) -> ScoreResult:
        return ScoreResult("x", float("nan") if error else 0.5, sequences=[
            SequenceResult(tokens=["a"], raw=[1.0], real=[10.0], simulated=None if error else [5.0], error=error)
        ], error=error)

    mixed = [result(None), result("server down")]
    assert cli._failure_status(mixed, strict=False) == 0
    assert cli._failure_status(mixed, strict=True) == 1
    assert "1 of 2 score failed; first reason: server down" in capsys.readouterr().err
    assert cli._failure_status([result("down"), result("down")], strict=False) == 1


# ---------------------------------------------------------------- simulators, keys and defaults


@pytest.mark.parametrize(
    "spec",
    [
        "lexical:foo=1",
        "fake:foo=1",
        "embedding:foo=1",
        "local:foo=1",
        "openai:gpt-4o-mini?foo=1",
        "openai-compatible:m@http://127.0.0.1:9/v1?foo=1",
    ],
)
def test_unknown_simulator_options_are_refused_for_every_simulator(spec: str) -> None:
    from scoring.errors import ScoringInputError
    from scoring.simulators import get_simulator

    with pytest.raises(ScoringInputError, match="foo"):
        get_simulator(spec)


def test_every_registered_simulator_is_in_the_refusal_test() -> None:
    from scoring.simulators import SIMULATORS

    tested = {"lexical", "fake", "embedding", "local", "openai", "openai-compatible"}
    assert set(SIMULATORS) == tested


def test_a_missing_key_says_what_the_command_line_can_do(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "scoring", "score", str(REQUEST), "-e", "fox", "--simulator", "openai:gpt-4o-mini"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    message = done.stderr
    assert message.startswith("error: no API key") and len(message.strip().splitlines()) == 1
    for hint in ("export OPENAI_API_KEY=", ".env file in the working directory", "?key_env=NAME"):
        assert hint in message


def test_the_default_simulator_comes_from_the_environment_then_the_settings_file(tmp_path: Path) -> None:
    config = Path(os.environ["SCORING_CONFIG"])
    built_in = json.loads(run("list", "--json").stdout)["defaults"]["simulator"]
    assert built_in["source"] == "built-in" and built_in["reason"]
    assert run("config", "set", "simulator", "lexical").returncode == 0
    assert 'simulator = "lexical"' in config.read_text()
    from_file = json.loads(run("list", "--json").stdout)["defaults"]["simulator"]
    assert from_file["spec"] == "lexical" and from_file["source"] == "settings file"
    assert str(config) in from_file["reason"]
    scored = run("score", str(REQUEST), "-e", "fox", "--json")
    assert json.loads(scored.stdout)["results"][0]["simulator"] == "lexical:stem-match"
    from_env = json.loads(run("list", "--json", env={"SCORING_SIMULATOR": "fake"}).stdout)["defaults"]
    assert from_env["simulator"]["spec"] == "fake" and from_env["simulator"]["source"] == "environment"
    assert "SCORING_SIMULATOR" in from_env["simulator"]["reason"]
    scored = run("score", str(REQUEST), "-e", "fox", "--json", env={"SCORING_SIMULATOR": "fake"})
    assert json.loads(scored.stdout)["results"][0]["simulator"] == "fake:fake-match"
    shown = run("list")
    assert "Default simulator here: lexical (set in the settings file)" in shown.stdout
    assert run("config", "unset", "simulator").returncode == 0 and not config.exists()
    assert json.loads(run("list", "--json").stdout)["defaults"]["simulator"]["source"] == "built-in"


def test_the_default_judge_can_be_set_too() -> None:
    done = run("explain", str(FAST_ANIMALS), "--candidates", "1", "--json", env={"SCORING_JUDGE": "fake"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["explanations"][0]["simulator"] == "fake:fake-match"


def test_a_bad_default_names_where_it_comes_from() -> None:
    done = run("score", str(REQUEST), "-e", "fox", env={"SCORING_SIMULATOR": "gpt"})
    assert done.returncode == 2
    assert "unknown simulator 'gpt'" in done.stderr and "SCORING_SIMULATOR" in done.stderr


def test_config_refuses_bad_keys_values_and_files() -> None:
    config = Path(os.environ["SCORING_CONFIG"])
    assert "unknown simulator" in run("config", "set", "simulator", "gpt").stderr
    assert "takes no options" in run("config", "set", "simulator", "lexical:x").stderr
    assert "needs a key" in run("config", "set", "colour", "red").stderr
    assert not config.exists()
    noted = run("config", "set", "judge", "openai:gpt-4o-mini", env={"OPENAI_API_KEY": ""})
    assert noted.returncode == 0 and "note: no API key" in noted.stderr  # set now, the key may come later
    assert run("config", "get", "judge").stdout.strip() == "openai:gpt-4o-mini"
    config.write_text("simulator = [unclosed\n")
    broken = run("list")
    assert broken.returncode == 2 and "is not valid TOML" in broken.stderr and str(config) in broken.stderr
    config.write_text('simulatr = "lexical"\n')
    assert "unknown key(s) simulatr" in run("score", str(REQUEST), "-e", "fox").stderr
    assert run("config", "path").stdout.strip() == str(config)


def test_the_listing_names_every_simulator_scorer_and_model() -> None:
    from scoring import models
    from scoring.simulators import SIMULATORS

    listing = json.loads(run("list", "--json").stdout)
    assert {entry["name"] for entry in listing["simulators"]} == set(SIMULATORS)
    assert [entry["name"] for entry in listing["scorers"]] == list(SCORERS)
    assert all(entry["summary"] for entry in listing["scorers"])
    assert {entry["key"] for entry in listing["models"]} == set(models.MODELS)
    assert {"simulator", "judge"} == set(listing["defaults"])
    by_name = {entry["name"]: entry for entry in listing["simulators"]}
    assert by_name["lexical"]["state"] == "ready" and not by_name["lexical"]["judges"]
    assert "OPENAI_API_KEY is not set" in run("list", "--json", env={"OPENAI_API_KEY": ""}).stdout
    assert "OPENAI_API_KEY is set" in run("list", "--json", env={"OPENAI_API_KEY": "sk-test"}).stdout
    shown = run("list").stdout
    for heading in ("Simulators", "Default simulator here:", "Default judge here:", "Scorers", "Packaged models"):
        assert heading in shown


def test_the_notes_say_what_each_simulator_can_do() -> None:
    """The listing's judges/writes flags agree with what the simulators built here can do."""
    from scoring.catalog import SIMULATOR_NOTES
    from scoring.simulators import Explainer, get_simulator
    from scoring.simulators.judge import can_judge

    for spec in ("local", "embedding", "lexical", "fake", "openai-compatible:m@http://127.0.0.1:9/v1"):
        simulator = get_simulator(spec)
        note = SIMULATOR_NOTES[simulator.name]
        assert note.judges == can_judge(simulator), spec
        assert note.writes == isinstance(simulator, Explainer), spec


# ---------------------------------------------------------------- caches


def test_caches_default_to_the_platform_user_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from scoring import models
    from scoring.cache import default_cache_directory
    from scoring.subjects.model import subjects_directory

    for variable in ("SCORING_CACHE_DIR", "SCORING_MODEL_DIR", "SCORING_SUBJECT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_directory() == tmp_path / "xdg" / "scoring" / "simulations"
    assert models.model_directory() == tmp_path / "xdg" / "scoring" / "models"
    # models converted by an earlier version stay where they are, until the new folder exists
    earlier = tmp_path / "home" / ".cache" / "scoring-models"
    earlier.mkdir(parents=True)
    assert models.model_directory() == earlier
    (tmp_path / "xdg" / "scoring" / "models").mkdir(parents=True)
    assert models.model_directory() == tmp_path / "xdg" / "scoring" / "models"
    assert subjects_directory() == tmp_path / "xdg" / "scoring" / "subjects"
    monkeypatch.setenv("SCORING_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("SCORING_MODEL_DIR", str(tmp_path / "models"))
    assert default_cache_directory() == tmp_path / "mine"
    assert subjects_directory() == tmp_path / "mine" / "subjects"
    assert models.model_directory() == tmp_path / "models"
    assert "site-packages" not in str(default_cache_directory())


def test_the_cache_command_shows_sizes_by_kind_and_clears(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    converted = models_dir / "gemma-3-270m-a5fd3b62230a-v2"
    converted.mkdir(parents=True)
    (converted / "converted.json").write_text("{}")
    (converted / "model.safetensors").write_bytes(b"\0" * 300_000)
    env = {"SCORING_MODEL_DIR": str(models_dir)}
    assert run("score", str(REQUEST), "-e", "fox", "--simulator", "fake").returncode == 0
    report = json.loads(run("cache", "--json", env=env).stdout)
    kinds = {entry["kind"]: entry for entry in report["cache"]}
    assert set(kinds) == {"simulations", "subjects", "models"}
    assert kinds["simulations"]["path"] == os.environ["SCORING_CACHE_DIR"]
    assert kinds["simulations"]["entries"] == 2 and kinds["simulations"]["bytes"] > 0  # the request's 2 sequences
    assert kinds["models"]["parts"] == [{"name": converted.name, "bytes": 300_002}]
    assert report["total_bytes"] == sum(entry["bytes"] for entry in report["cache"])
    shown = run("cache", env=env).stdout
    assert "simulations" in shown and "300.0 kB" in shown and converted.name in shown
    assert run("cache", "dir", "models", env=env).stdout.strip() == str(models_dir)
    refused = run("cache", "clear", "models", "--item", "qwen", env=env)
    assert refused.returncode == 2 and converted.name in refused.stderr
    cleared = run("cache", "clear", "simulations", "models", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert "removed 2 simulation cache entries" in cleared.stdout and not converted.exists()
    after = {entry["kind"]: entry for entry in json.loads(run("cache", "--json", env=env).stdout)["cache"]}
    assert after["simulations"]["entries"] == 0 and after["models"]["parts"] == []
    assert run("cache", "clear").returncode == 2 and run("cache", "clear", "everything").returncode == 2


# ---------------------------------------------------------------- progress


def _run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (as in a shell) and stdout on a pipe; returns (rc, stdout, stderr)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column window
    process = subprocess.Popen(
        [sys.executable, "-m", "scoring", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True
    )
    os.close(follower)
    drawn = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        drawn += chunk
    stdout = process.stdout.read() if process.stdout else ""
    os.close(leader)
    return process.wait(timeout=60), stdout, drawn.decode("utf-8", "replace")


def test_progress_is_drawn_on_a_terminal_and_not_with_no_progress() -> None:
    command = ("score", str(FAST_ANIMALS), "-e", "fast animals", "-e", "cats", "--simulator", "fake", "--no-cache")
    rc, stdout, drawn = _run_on_a_terminal(*command)
    assert rc == 0 and stdout.startswith("rank")
    assert "scoring" in drawn and "20/20" in drawn  # 10 sequences x 2 explanations
    rc, _, quiet = _run_on_a_terminal(*command, "--no-progress")
    assert rc == 0 and "20/20" not in quiet and "scoring:" not in quiet and "note: 'cats'" in quiet


@pytest.mark.parametrize("command", ["bench", "explain", "attention"])
def test_the_other_long_commands_draw_progress_on_a_terminal(command: str, tmp_path: Path) -> None:
    head = tmp_path / "head.json"
    head.write_text(json.dumps([{"tokens": ["a", "b", "c"], "attention": [[1, 0, 0], [0.9, 0.1, 0], [0.8, 0, 0.2]]}]))
    arguments = {
        "bench": ("bench", str(tiny_puzzles(tmp_path)), "--simulator", "fake"),
        "explain": ("explain", str(FAST_ANIMALS), "--simulator", "fake", "--candidates", "3"),
        "attention": ("attention", str(head), "-e", "previous token", "-e", "first token", "--simulator", "fake"),
    }[command]
    bars = {"bench": ("puzzles", "2/2"), "explain": ("writing candidates", "3/3"), "attention": ("judging", None)}
    rc, stdout, drawn = _run_on_a_terminal(*arguments, "--no-cache")
    assert rc == 0, drawn
    label, count = bars[command]
    assert f"{label}:" in drawn and "100%" in drawn, drawn
    if count:
        assert count in drawn, drawn
    rc, _, quiet = _run_on_a_terminal(*arguments, "--no-cache", "--no-progress")
    assert rc == 0 and f"{label}:" not in quiet and "100%" not in quiet, quiet


def test_no_bar_states_go_to_a_stderr_that_is_not_a_terminal(tmp_path: Path) -> None:
    features = tmp_path / "features.jsonl"
    lines = [{"id": f"f{i}", "activations": [{"tokens": ["a", " fox"], "values": [0, 5]}], "explanation": "fox"}
             for i in range(12)]
    features.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output = str(tmp_path / "out.jsonl")
    first = run("batch", str(features), "-o", output, "--simulator", "fake")
    resumed = run("batch", str(features), "-o", output, "--simulator", "fake")
    for done in (first, resumed):
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # the summary line only
        assert "\r" not in done.stderr and "it/s" not in done.stderr and "score/s" not in done.stderr
    assert "12 done by earlier runs" in resumed.stderr
    scored = run("score", str(FAST_ANIMALS), "-e", "x", "--simulator", "fake")
    bench = run("bench", str(tiny_puzzles(tmp_path)), "--simulator", "fake")
    assert "\r" not in scored.stderr + bench.stderr


# ---------------------------------------------------------------- subject commands check arguments first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["records", "--layer", "6", "--neuron", "1", "--sae", "x", "-o", "f.json"], "--sae reads latents"),
        (["records", "--neuron", "1", "-o", "f.json"], "give --layer L for neurons"),
        (["records", "--unit", "latent", "--latent", "1", "--layer", "3", "-o", "f.json"], "the SAE reads layer 6"),
        (["records", "--unit", "latent", "--latent", "1", "--sae", "nowhere", "-o", "f.json"], "not an SAE folder"),
        (["records", "--layer", "6", "--neuron", "1", "-o", "no/such/folder/f.json"], "does not exist"),
        (["records", "--layer", "6", "--neuron", "1", "--corpus", "nowhere.txt", "-o", "f.json"], "does not exist"),
        (["neurons", "--text", "a cat", "--sae", "x"], "--sae reads latents"),
        (["activations", "--text", "a cat", "--neuron", "3"], "give --layer L for neurons"),
        (["neurons", "--text", "a", "--layer", "1", "--model", "gpt-2"], "unknown subject model 'gpt-2'"),
        (["train-sae", "--layer", "6", "-o", "no/such/folder/sae"], "does not exist"),
    ],
)
def test_subject_commands_check_their_arguments_before_loading_the_model(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import scoring.subjects as subjects

    def must_not_load(*_: object, **__: object) -> None:
        raise AssertionError("the subject model was loaded before the arguments were checked")

    monkeypatch.setattr(subjects, "load_subject", must_not_load)
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--layer", "--neuron", "--top"])
def test_subject_numbers_are_checked_by_the_parser(option: str) -> None:
    command = ["neurons", "--text", "a", "--layer", "1"] if option != "--neuron" else [
        "activations", "--text", "a", "--layer", "1"]
    done = run(*command, option, "-1")
    assert done.returncode == 2 and f"argument {option}" in done.stderr and "got '-1'" in done.stderr
