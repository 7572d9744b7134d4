"""The embedded model runtime (`scoring.models`): packaged pieces, conversion cache, dtype and device.

The pieces, hashes and dtype rules are checked on small invented data; the tests
marked `model` convert and load a real packaged model.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import pytest

from scoring import models
from scoring.errors import ScoringInputError


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


def _spec(names: list[str], whole: bytes, sha256: str | None = None) -> models.PackagedModel:
    return models.PackagedModel(
        key="fake", model_id="fake-model", pip_hint="fake-model-parts", packages=tuple(names), piece_glob="*.bin",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(), size=len(whole), gguf_name="fake.gguf",
    )


def test_joins_the_pieces_in_order_and_checks_the_hash(pieces: tuple[list[str], bytes], tmp_path: Path) -> None:
    names, whole = pieces
    spec = _spec(names, whole)
    target = models.join_pieces(models._pieces(spec), tmp_path / "m" / "fake.gguf", spec.sha256, spec.size)
    assert target.read_bytes() == whole
    assert not any(name in sys.modules for name in names)
    # A second call finds the checked file (size and stamp) and does not join again.
    mtime = target.stat().st_mtime_ns
    again = models.join_pieces(models._pieces(spec), target, spec.sha256, spec.size)
    assert again == target and target.stat().st_mtime_ns == mtime


def test_a_wrong_hash_leaves_no_file_and_says_what_to_do(pieces: tuple[list[str], bytes], tmp_path: Path) -> None:
    names, whole = pieces
    spec = _spec(names, whole, sha256="0" * 64)
    with pytest.raises(RuntimeError, match="published .*reinstall"):
        models.join_pieces(models._pieces(spec), tmp_path / "m" / "fake.gguf", spec.sha256, spec.size)
    assert list((tmp_path / "m").iterdir()) == []


def test_a_missing_package_says_what_to_install(
    pieces: tuple[list[str], bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, whole = pieces
    monkeypatch.setitem(models.MODELS, "fake", _spec([*names, "not_installed_part9"], whole))
    assert not models.installed("fake")
    with pytest.raises(RuntimeError, match=r"not installed \(pip install fake-model-parts\).*not_installed_part9"):
        models.converted_folder("fake", tmp_path)


def test_installed_models_are_found_without_importing_them(
    pieces: tuple[list[str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    names, whole = pieces
    monkeypatch.setitem(models.MODELS, "fake", _spec(names, whole))
    assert models.installed("fake")
    assert not any(name in sys.modules for name in names)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ScoringInputError, match="unknown packaged model 'gpt-9'.*gemma-3-270m"):
        models.get_spec("gpt-9")


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "avx512f"}, False),
        ({"avx2", "avx512f", "avx512_bf16"}, True),
        ({"amx_tile", "amx_bf16"}, True),
        (set(), False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(flags: set[str], expected: bool) -> None:
    assert models.cpu_has_native_bf16(flags) is expected


def test_dtype_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORING_DTYPE", raising=False)
    monkeypatch.delenv("SCORING_DEVICE", raising=False)
    assert models.choose_device_dtype(cuda=False, native_bf16=True) == ("cpu", "bfloat16")
    assert models.choose_device_dtype(cuda=False, native_bf16=False) == ("cpu", "float32")
    # int8 is never chosen by itself (not confirmed on the dev sets yet), even where it could run.
    int8 = {"cuda": False, "native_bf16": False, "int8_capable": True}
    assert models.choose_device_dtype(**int8, int8_kernels=True) == ("cpu", "float32")
    assert models.choose_device_dtype(cuda=False, native_bf16=True, int8_capable=True) == ("cpu", "bfloat16")
    device, dtype = models.choose_device_dtype(cuda=True, native_bf16=False, int8_capable=True)
    assert device == "cuda" and dtype in ("bfloat16", "float16")
    assert models.get_spec("qwen2.5-coder-1.5b").storage == "float16"
    assert models.get_spec("gemma-3-270m").storage == "float32"


def test_dtype_and_device_can_be_forced_and_bad_values_say_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_DTYPE", "float32")
    assert models.choose_device_dtype(cuda=False, native_bf16=True) == ("cpu", "float32")
    monkeypatch.setenv("SCORING_DTYPE", "int4")
    with pytest.raises(ScoringInputError, match="SCORING_DTYPE must be one of float32, bfloat16, float16, int8"):
        models.choose_device_dtype(cuda=False)
    # int8 is for int8-stored models on a CPU; anything else falls back to float32.
    monkeypatch.setenv("SCORING_DTYPE", "int8")
    assert models.choose_device_dtype(cuda=False, int8_capable=True, int8_kernels=True) == ("cpu", "int8")
    assert models.choose_device_dtype(cuda=False, int8_capable=True, int8_kernels=False) == ("cpu", "float32")
    assert models.choose_device_dtype(cuda=False, int8_capable=False) == ("cpu", "float32")
    assert models.choose_device_dtype(cuda=True, int8_capable=True, int8_kernels=True) == ("cuda", "float32")
    monkeypatch.setenv("SCORING_DTYPE", "")
    monkeypatch.setenv("SCORING_DEVICE", "mps")
    assert models.choose_device_dtype(int8_capable=True, int8_kernels=True) == ("mps", "float16")
    monkeypatch.setenv("SCORING_DEVICE", "tpu")
    with pytest.raises(ScoringInputError, match="SCORING_DEVICE must be one of cpu, cuda, mps"):
        models.choose_device_dtype()


def test_model_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCORING_MODEL_DIR", str(tmp_path / "elsewhere"))
    assert models.model_directory() == tmp_path / "elsewhere"


@pytest.mark.model
def test_conversion_is_cached_and_a_second_load_gives_identical_logits(tmp_path: Path) -> None:
    import torch

    folder = models.converted_folder("gemma-3-270m")
    assert (folder / "model.safetensors").is_file() and (folder / "converted.json").is_file()
    first = models.load("gemma-3-270m")
    assert models.load("gemma-3-270m") is first  # once per process
    ids = torch.tensor([first.bos + first.encode("The cat sat on the mat.")])
    with torch.no_grad():
        logits = first.model(input_ids=ids).logits
    # A new process-level load from the converted folder: seconds, the same weights, the same logits.
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    again = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, first.dtype), local_files_only=True)
    load_seconds = time.perf_counter() - started
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, logits)
    assert load_seconds < 120  # a generous bound: the point is that nothing is converted again
    assert models.converted_folder("gemma-3-270m") == folder


@pytest.mark.model
def test_threads_share_one_model_without_races() -> None:
    """Several threads simulate at once through the one loaded model; each gets what it gets alone."""
    from scoring.simulators.local import LocalSimulator

    simulator = LocalSimulator(model="gemma-3-270m", method="pointer")
    sequences = [["The", " cat", " and", " the", " dog", " slept", "."], ["Rain", " fell", " on", " Paris", "."]]
    explanations = ["animals", "cities", "weather", "verbs"]
    alone = {explanation: simulator.simulate_sync(explanation, sequences) for explanation in explanations}
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def work(explanation: str) -> None:
        try:
            results[explanation] = simulator.simulate_sync(explanation, sequences)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(explanation,)) for explanation in explanations * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for explanation in explanations:
        got = results[explanation]
        for shared, single in zip(got.sequences, alone[explanation].sequences, strict=True):  # type: ignore[attr-defined]
            assert shared.ok and single.ok
            assert shared.activations == pytest.approx(single.activations, abs=0.05)


@pytest.mark.model
def test_the_simulator_model_is_float16_blocks_alone_on_disk_with_the_same_tokenizer() -> None:
    from transformers import AutoTokenizer

    from scoring import int8_weights

    folder = models.converted_folder("qwen2.5-coder-1.5b")
    assert int8_weights.stored_as_blocks(folder) and (folder / "converted.json").is_file()
    # Any older conversion of this model is gone, and the joined GGUF too unless this machine's own path
    # (q4_k_m, llama.cpp) reads it: only what a load reads stays.
    kept = {folder.name}
    if models.device_dtype_for("qwen2.5-coder-1.5b")[1] == models.GGUF_DTYPE:
        kept.add(models._gguf_path(models.get_spec("qwen2.5-coder-1.5b"), None).parent.name)
    assert {path.name for path in folder.parent.glob("qwen2.5-coder-1.5b*")} <= kept
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert 3.3e9 < size < 3.8e9, size
    # Rebuilt from the GGUF's own vocabulary, merges and pre-tokenizer: the ids transformers' GGUF reader gives.
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    text = " She shelled the peas in 1999, naïvely:\n<|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == [2932, 557, 15201, 279, 46036, 304, 220, 16, 24, 24, 24, 11, 94880, 16239, 510, 151645]
    assert tokenizer.decode(ids) == text
