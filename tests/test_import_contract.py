"""The import contract: the module map of docs/architecture.md is the rule, and the code keeps to it.

Read from the document's tables: which layer every module of ``scoring/``,
``dashboard/``, ``pages/`` and ``app.py`` belongs to. Checked on the source
(every import statement, also inside functions and ``TYPE_CHECKING`` blocks):

- every module is on the map, so the map stays current;
- no import runs upward (a module imports its own layer or lower ones);
- `scoring.shared_types` imports nothing of ours;
- a face imports no other face, except that the command line starts the batch runner and the server;
- the dashboard (``app.py``, ``pages/``, ``dashboard/``) calls the public surface only
  (`PUBLIC_SURFACE`); the crossings still to remove are listed in `KNOWN_UI_CROSSINGS`,
  which may only shrink;
- the library never imports the tests, scripts, benchmarks or their support;
- the tests, benchmarks and scripts share code through ``support/`` only (`FOLDER_IMPORTS`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"
OURS = ("scoring", "dashboard", "pages", "app", "tests", "scripts", "benchmarks", "support")
BOTTOM = "scoring.shared_types"
UI_PREFIXES = ("app", "pages", "dashboard")

PUBLIC_SURFACE = frozenset({"scoring", "scoring.errors", "scoring.viz", "scoring.subjects"})
"""What the dashboard may import of the library: the public API, its errors, the figures, the subjects facade."""

KNOWN_UI_CROSSINGS = frozenset(
    {
        ("app", "scoring.textformat"),
        ("dashboard.inputs", "scoring.textformat"),
        ("pages.2_Spot_check", "scoring.protocols.neuronpedia"),
        ("pages.2_Spot_check", "scoring.protocols.prompts"),
        ("pages.2_Spot_check", "scoring.spotcheck"),
    }
)
"""(dashboard module, private library module) imports that predate the contract (issue 27, item 2). Remove a pair
when the dashboard stops importing it; a new pair fails the test."""

FACE_ENTRY_POINTS = {"command line": {"batch", "server"}}
"""Faces that may import other faces: the command line starts the batch runner and the server."""


@dataclass(frozen=True)
class Row:
    layer: int
    name: str
    """The row's first path, naming it in messages and in `FACE_ENTRY_POINTS`."""
    patterns: tuple[str, ...]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    files = [ROOT / "app.py"]
    for folder in ("scoring", "dashboard", "pages"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return {module_name(path): path for path in files}


def map_rows() -> list[Row]:
    """The tables of docs/architecture.md: under '## N. ...', rows whose first cell names paths in backticks.

    A path without a folder (``chat.py``) or one not starting at the repository's top (``subjects/commands.py``)
    is relative to the folder of the cell's first path."""
    rows: list[Row] = []
    layer = 0
    for line in MAP.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## (\d+)\. ", line)
        if heading:
            layer = int(heading[1])
            continue
        if not (layer and line.startswith("| `")):
            continue
        paths = re.findall(r"`([^`]+)`", line.split("|")[1])
        first_folder = paths[0].rsplit("/", 1)[0] + "/" if "/" in paths[0].rstrip("/") else ""
        resolved = []
        for path in paths:
            top = path.split("/", 1)[0]
            rooted = top in ("scoring", "dashboard", "pages") or path == "app.py"
            resolved.append(path if rooted else first_folder + path)
        rows.append(Row(layer, paths[0], tuple(resolved)))
    return rows


def _specificity(pattern: str, relative: str) -> int | None:
    """How closely `pattern` names the file at `relative` (higher is closer), or None when it does not."""
    if pattern.endswith("/"):
        return len(pattern) if relative.startswith(pattern) else None
    if "*" in pattern:
        return 10_000 if Path(relative).match(pattern) and relative.count("/") == pattern.count("/") else None
    return 20_000 if relative == pattern else None


def row_of(path: Path, rows: list[Row]) -> Row | None:
    relative = path.relative_to(ROOT).as_posix()
    matches = [(score, row) for row in rows for pattern in row.patterns if (score := _specificity(pattern, relative))]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that `path` imports, by full name (``from scoring import x`` names ``scoring.x`` when
    that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in OURS:
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] in OURS}
    return found


MODULES = our_modules()
ROWS = map_rows()


def placed() -> dict[str, Row]:
    return {name: row for name, path in MODULES.items() if (row := row_of(path, ROWS)) is not None}


def test_the_map_has_the_five_layers() -> None:
    assert sorted({row.layer for row in ROWS}) == [1, 2, 3, 4, 5]
    assert any(BOTTOM.replace(".", "/") + ".py" in row.patterns for row in ROWS if row.layer == 1)


def test_every_module_is_on_the_map() -> None:
    missing = sorted(name for name, path in MODULES.items() if row_of(path, ROWS) is None)
    assert not missing, f"add these modules to a table of docs/architecture.md: {missing}"


def test_the_shared_types_import_nothing_of_ours() -> None:
    assert imports_of(MODULES[BOTTOM], MODULES) == set()


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Each import in `graph` (module -> modules it imports) from a layer to a higher one, as a sentence."""
    return sorted(
        f"{name} (layer {layers[name]}) imports {target} (layer {layers[target]})"
        for name, targets in graph.items()
        for target in targets
        if name in layers and target in layers and layers[target] > layers[name]
    )


def test_no_import_runs_upward() -> None:
    layers = {name: row.layer for name, row in placed().items()}
    upward = upward_imports({name: imports_of(path, MODULES) for name, path in MODULES.items()}, layers)
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def _face(row: Row) -> str:
    names = {"scoring/cli.py": "command line", "scoring/batch.py": "batch", "scoring/server/": "server"}
    return names.get(row.name, row.name)


def test_faces_import_no_other_face() -> None:
    rows = placed()
    crossings = []
    for name, path in MODULES.items():
        for target in imports_of(path, MODULES):
            source_row, target_row = rows.get(name), rows.get(target)
            if not (source_row and target_row and source_row.layer == target_row.layer == 5):
                continue
            source, destination = _face(source_row), _face(target_row)
            if source != destination and destination not in FACE_ENTRY_POINTS.get(source, set()):
                crossings.append(f"{name} ({source}) imports {target} ({destination})")
    assert not crossings, "faces importing each other:\n" + "\n".join(sorted(crossings))


def ui_crossings() -> set[tuple[str, str]]:
    return {
        (name, target)
        for name, path in MODULES.items()
        if name.split(".")[0] in UI_PREFIXES
        for target in imports_of(path, MODULES)
        if target.split(".")[0] == "scoring" and target not in PUBLIC_SURFACE
    }


def test_the_dashboard_imports_only_the_public_surface() -> None:
    new = sorted(ui_crossings() - KNOWN_UI_CROSSINGS)
    assert not new, f"the dashboard imports private modules; use the public surface {sorted(PUBLIC_SURFACE)}: {new}"


def test_the_list_of_known_crossings_only_shrinks() -> None:
    gone = sorted(KNOWN_UI_CROSSINGS - ui_crossings())
    assert not gone, f"remove these pairs from KNOWN_UI_CROSSINGS, the dashboard no longer imports them: {gone}"


def test_the_library_never_imports_tests_scripts_benchmarks_or_support() -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, path in MODULES.items()
        for target in imports_of(path, MODULES)
        if target.split(".")[0] in ("tests", "scripts", "benchmarks", "support")
    )
    assert not wrong, wrong


FOLDER_IMPORTS = {
    "support": set(),
    "tests": {"support", "scripts"},
    "benchmarks": {"support"},
    "scripts": {"support"},
}
"""The folders beside the library that each of these folders may import (the library is open to all of them)."""

SCRIPTS_UNDER_TEST = {("tests.test_spotcheck", "scripts.make_spot_check_example")}
"""A test imports a script only to test that script; code the tests and scripts share lives in ``support/``."""


def bare_test_imports(path: Path) -> set[str]:
    """Modules of ``tests/`` that `path` imports by their bare name (``from test_x import y``, with ``tests/``
    put on ``sys.path``)."""
    bare = {test.stem for test in (ROOT / "tests").glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {f"tests.{name}" for name in names if name.split(".")[0] in bare}
    return found


def folder_crossings() -> list[str]:
    files = {
        module_name(path): path
        for folder in FOLDER_IMPORTS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    wrong = []
    for name, path in files.items():
        folder = name.split(".")[0]
        for target in imports_of(path, files) | bare_test_imports(path):
            top = target.split(".")[0]
            if top in ("scoring", "dashboard", "pages", "app", folder):
                continue
            if top not in FOLDER_IMPORTS[folder] or (top == "scripts" and (name, target) not in SCRIPTS_UNDER_TEST):
                wrong.append(f"{name} imports {target}")
    return sorted(wrong)


def test_tests_benchmarks_and_scripts_share_code_through_support_only() -> None:
    wrong = folder_crossings()
    assert not wrong, "move what these share into support/: " + "; ".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from scoring.simulators.base import Usage\n", {"scoring.simulators.base"}),
        ("from scoring import userconfig\n", {"scoring.userconfig"}),
        ("def f():\n    import scoring.models\n", {"scoring.models"}),
        ("import numpy\nfrom pathlib import Path\n", set()),
    ],
)
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, source: str, expected: set[str]) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source, encoding="utf-8")
    assert imports_of(module, MODULES) == expected


def test_the_checker_catches_an_upward_import() -> None:
    layers = {name: row.layer for name, row in placed().items()}
    assert layers["scoring.shared_types"] < layers["scoring.cache"] < layers["scoring.simulators.runner"]
    assert layers["scoring.simulators.runner"] < layers["scoring.api"] < layers["dashboard.sidebar"]
    # The cache reading the simulator registry again, as it did before the shared types moved down:
    graph = {"scoring.cache": {"scoring.shared_types", "scoring.simulators.base"}, "scoring.api": {"scoring.cache"}}
    assert upward_imports(graph, layers) == ["scoring.cache (layer 2) imports scoring.simulators.base (layer 3)"]
