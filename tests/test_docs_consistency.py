"""The docs say what the code does: every setting a user can make is documented, every link leads to a
file users have, and the docstrings and figures that issue 26 found stale stay right.

(tests/test_docs_commands.py runs the documented commands themselves.)"""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS_TEXT = "\n".join(document.read_text(encoding="utf-8") for document in DOCUMENTS)

READ_VARIABLE = re.compile(r"""(?:environ(?:\.get)?[\[(]|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']""")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def variables_read_by_the_library() -> set[str]:
    """The environment variables the library reads by name, the user-settings ones and the server's fields."""
    from scoring.server.settings import ServerSettings
    from scoring.userconfig import SETTING_VARIABLES

    found = {
        name
        for path in (ROOT / "scoring").rglob("*.py")
        for name in READ_VARIABLE.findall(path.read_text(encoding="utf-8"))
    }
    found |= set(SETTING_VARIABLES.values())
    fields = ServerSettings.model_fields
    found |= {"SERVER_KEY" if name == "server_key" else f"SCORING_{name.upper()}" for name in fields}
    return found


def test_the_library_reads_the_variables_this_test_expects() -> None:
    """The scan finds what it should, so the next test cannot pass by finding nothing."""
    found = variables_read_by_the_library()
    assert {"SCORING_CACHE_DIR", "SCORING_MODEL_DIR", "SCORING_SUBJECT_DIR", "SCORING_SUBJECT_THREADS",
            "SCORING_SIMULATOR", "SCORING_JUDGE", "SCORING_CONFIG", "SERVER_KEY", "SCORING_MAX_BODY_BYTES"} <= found


def test_every_environment_variable_is_documented() -> None:
    """A variable is documented by name, or (a server limit) by its setting's name in docs/server.md."""
    server_doc = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    missing = [
        name
        for name in sorted(variables_read_by_the_library())
        if name not in DOCS_TEXT
        and not (name.startswith("SCORING_") and f"`{name.removeprefix('SCORING_').lower()}`" in server_doc)
    ]
    assert not missing, f"environment variables the docs do not name: {missing}"


def test_the_settings_table_of_the_command_line_names_the_folders_variables() -> None:
    table = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split("## Settings")[1]
    for name in ("SCORING_SIMULATOR", "SCORING_JUDGE", "SCORING_CONFIG", "SCORING_CACHE_DIR", "SCORING_MODEL_DIR",
                 "SCORING_SUBJECT_DIR", "SCORING_SUBJECT_THREADS"):
        assert f"| `{name}` |" in table, name


@pytest.mark.parametrize("document", DOCUMENTS, ids=[document.name for document in DOCUMENTS])
def test_relative_links_lead_to_files_in_the_repository(document: Path) -> None:
    """No link points outside the repository (`../shared/...` is the developers' folder, not the users')."""
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert not broken, f"{document.name}: links to files users do not have: {broken}"


def test_docstrings_name_how_the_default_simulator_is_chosen() -> None:
    """The default is chosen by the user's settings, then by hardware: never 'local when installed'."""
    from scoring import api
    from scoring.server import serve

    for function in (api.score_explanation, serve):
        text = inspect.getdoc(function) or ""
        assert "default_simulator_spec" in text, function.__qualname__
    stale = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "scoring").rglob("*.py")
        if re.search(r"local``? when\s+installed", path.read_text(encoding="utf-8"))
    ]
    assert not stale, f"the default is described as 'local when installed' in {stale}"


def test_the_demo_figures_say_which_dtype_they_hold_for() -> None:
    """`local` scores differ between bfloat16 and float32: the demo's figures name their dtype."""
    text = (ROOT / "docs" / "local-simulator.md").read_text(encoding="utf-8")
    demo = text[text.index("On the bundled demo"):].split("\n\n")[0]
    assert "bfloat16" in demo and "float32" in demo, demo


def inline_commands() -> list[tuple[str, str]]:
    """(document, command) for every command in a `code span` of the prose that gives options (``scoring train-sae
    --layer 6 -o DIR``), not bare names (``scoring list``), placeholders (``scoring ...``) or shell redirections."""
    found = []
    for document in DOCUMENTS:
        prose = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.DOTALL)
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose):
            text = " ".join(span.split())
            match = re.match(r"^(?:[A-Z_]+=\S+ )*(?:python -m scoring|scoring) (.*)$", text)
            if not match or re.search(r"[<>|]|\.\.\.|--help", text):
                continue
            if any(token.startswith("-") for token in shlex.split(match.group(1))):
                found.append((document.name, match.group(1)))
    return found


INLINE = inline_commands()


def test_the_prose_has_inline_commands_to_check() -> None:
    assert any("train-sae" in command for _, command in INLINE)


@pytest.mark.parametrize(("document", "command"), INLINE, ids=[f"{d}:{c[:40]}" for d, c in INLINE])
def test_inline_commands_parse(document: str, command: str) -> None:
    """Their options exist and their required arguments are there (README's `train-sae` needs `-o`)."""
    from scoring.cli import CommandLine

    try:
        CommandLine().parse(shlex.split(command))
    except SystemExit as exc:
        raise AssertionError(f"{document}: `scoring {command}` does not parse (see the usage above)") from exc
