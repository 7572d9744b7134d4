"""The import contract: the module map of docs/architecture.md is the rule, and the code keeps to it.

Read from the document's tables: which layer every module of ``scoring/``,
``dashboard/``, ``pages/`` and ``app.py`` belongs to. Checked on the source
(every import statement, also inside functions and ``TYPE_CHECKING`` blocks):

- every module is on the map, so the map stays current;
- no import runs upward (a module imports its own layer or lower ones);
- `scoring.shared_types` imports nothing of ours;
- a face imports no other face, except that the command line starts the batch runner and the server;
- the dashboard (``app.py``, ``pages/``, ``dashboard/``) calls the public surface only
  (`PUBLIC_SURFACE`): no other module of the library, and of a public module only the
  names its ``__all__`` lists (imported, or read as an attribute of the module);
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

PUBLIC_SURFACE = frozenset(
    {"scoring", "scoring.errors", "scoring.textformat", "scoring.spotcheck", "scoring.viz", "scoring.subjects"}
)
"""What the dashboard may import of the library: the public API, its errors, reading pasted input, spot-checking
Neuronpedia's claims, the figures, the subject models. Each says so in its docstring and lists its names in
``__all__``."""

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


def public_names(module: str) -> frozenset[str]:
    """What a public module offers: the names of its ``__all__`` (read from its source) and its public submodules."""
    names: set[str] = set()
    for node in ast.parse(MODULES[module].read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "__all__" for target in node.targets):
            names |= set(ast.literal_eval(node.value))
    return frozenset(names | public_submodules(module))


def public_submodules(module: str) -> set[str]:
    """The short names of the public modules right under `module` (``viz`` under ``scoring``)."""
    return {name.rsplit(".", 1)[1] for name in PUBLIC_SURFACE if name.rpartition(".")[0] == module}


def _dotted(node: ast.expr) -> list[str]:
    """``a.b.c`` -> ['a', 'b', 'c']; [] for anything that is not a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else []


def _beyond_public(module: str, names: list[str]) -> str | None:
    """The first of `names`, read in turn from the public `module`, that is not public (as a full name)."""
    for name in names:
        if name not in public_names(module):
            return f"{module}.{name}"
        if f"{module}.{name}" not in PUBLIC_SURFACE:
            return None  # a public name that is no module: what is read from it is its own business
        module = f"{module}.{name}"
    return None


def private_uses(path: Path) -> set[str]:
    """What a dashboard file takes from the library outside the public surface: a module not in `PUBLIC_SURFACE`,
    or a name a public module does not list in ``__all__``, whether imported or read as an attribute of the module
    (``subjects.index.embedding_similarity`` names the private ``scoring.subjects.index``)."""
    found: set[str] = set()
    modules: dict[str, str] = {}
    """Local name -> the public module it is bound to."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "scoring":
                continue
            if node.module not in PUBLIC_SURFACE:
                found.add(node.module)
                continue
            for alias in node.names:
                private = _beyond_public(node.module, [alias.name])
                if private:
                    found.add(private)
                elif f"{node.module}.{alias.name}" in PUBLIC_SURFACE:
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "scoring":
                    continue
                if alias.name not in PUBLIC_SURFACE:
                    found.add(alias.name)
                else:
                    modules[alias.asname or "scoring"] = alias.name if alias.asname else "scoring"
    for node in ast.walk(tree):
        chain = _dotted(node) if isinstance(node, ast.Attribute) else []
        if chain and chain[0] in modules:
            private = _beyond_public(modules[chain[0]], chain[1:])
            if private:
                found.add(private)
    return found


def ui_private_uses(modules: dict[str, Path]) -> list[str]:
    """Every use of the library beyond its public surface by the dashboard modules among `modules`."""
    return sorted(
        f"{name} uses {private}"
        for name, path in modules.items()
        if name.split(".")[0] in UI_PREFIXES
        for private in private_uses(path)
    )


def test_the_public_modules_say_so_and_list_their_names() -> None:
    for module in PUBLIC_SURFACE:
        docstring = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8"))) or ""
        assert "public" in docstring.lower() and "docs/architecture.md" in docstring, module
        assert public_names(module) - public_submodules(module), module
    documented = MAP.read_text(encoding="utf-8").split("## The public surface", 1)[1]
    assert all(f"`{module}`" in documented for module in PUBLIC_SURFACE)


def test_the_dashboard_uses_only_the_public_surface() -> None:
    wrong = ui_private_uses(MODULES)
    assert not wrong, f"the dashboard reaches past the public surface {sorted(PUBLIC_SURFACE)}: {wrong}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from scoring.records import load_records\n", {"scoring.records"}),
        ("import scoring.cache\n", {"scoring.cache"}),
        ("def run():\n    from scoring.simulators import runner\n", {"scoring.simulators"}),
        ("from scoring.spotcheck import _Checker, spot_check\n", {"scoring.spotcheck._Checker"}),
        ("from scoring import api\n", {"scoring.api"}),
        ("from scoring import subjects\nsubjects.index.embedding_similarity()\n", {"scoring.subjects.index"}),
        ("import scoring.subjects as subjects\nsubjects.open_index\nsubjects.hashed_directory\n",
         {"scoring.subjects.hashed_directory"}),
        ("import scoring\nscoring.cache.open_cache()\nscoring.viz.tokens_html\n", {"scoring.cache"}),
        ("from scoring import viz, load_records\nfrom scoring.textformat import load_pasted\nviz.count(1, 'x')\n",
         set()),
        ("from scoring.subjects import Latents\nimport dashboard as ui\nui.page_setup('x')\n", set()),
    ],
)
def test_the_checker_catches_a_page_that_uses_a_private_part(tmp_path: Path, source: str, expected: set[str]) -> None:
    page = tmp_path / "9_Probe.py"
    page.write_text(source, encoding="utf-8")
    assert private_uses(page) == expected
    assert bool(ui_private_uses({"pages.9_Probe": page})) == bool(expected)


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
