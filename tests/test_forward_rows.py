"""`scoring.simulators.forward` on a tiny random Qwen2 (no packaged model): batched rows equal plain forward passes."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from test_int8_weights import _tiny_folder  # noqa: E402

from scoring import int8_weights, models  # noqa: E402
from scoring.simulators import forward  # noqa: E402


class _Tokenizer:
    pad_token_id = 0


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> models.LoadedModel:
    folder = _tiny_folder(Path(tmp_path_factory.mktemp("tiny")))
    model = int8_weights.load_model(folder, "cpu", "float32")
    return models.LoadedModel(models.get_spec("qwen2.5-coder-1.5b"), model, _Tokenizer(), "cpu", "float32")


def _plain_logprobs(lm: models.LoadedModel, prompt: list[int], continuation: list[int]) -> list[float]:
    ids = torch.tensor([prompt + continuation])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return [float(logprobs[len(prompt) - 1 + offset, token]) for offset, token in enumerate(continuation)]


def test_forced_logprobs_of_batched_rows_equal_plain_forward_passes(lm: models.LoadedModel) -> None:
    opening, tails = [1, 2, 3, 4], [[5, 6], [7, 8, 9], [10]]
    rows = forward.run_rows(lm, [opening[:2], opening[2:]], tails)
    continuations = [(0, [11, 12, 13]), (1, [14, 15]), (2, [16, 17, 18]), (0, [19, 20]), (2, [21])]
    forced = forward.forced_logprobs(rows, continuations)
    for (row, tokens), got in zip(continuations, forced, strict=True):
        expected = _plain_logprobs(lm, opening + tails[row], tokens)
        assert got == pytest.approx(expected, abs=1e-4)
    # The rows are left as they were: a second pass gives the same numbers.
    again = forward.forced_logprobs(rows, continuations)
    assert [value for values in again for value in values] == pytest.approx([v for values in forced for v in values])


def test_forced_continuations_whose_first_token_is_below_the_floor_stop_there(lm: models.LoadedModel) -> None:
    """`stop_below`: a continuation already too unlikely after its first token is not run further (its total
    can only fall), the others get every token."""
    opening, tails = [1, 2, 3, 4], [[5, 6], [7, 8, 9]]
    rows = forward.run_rows(lm, [opening], tails)
    continuations = [(0, [11, 12, 13]), (1, [14, 15]), (1, [16])]
    full = forward.forced_logprobs(rows, continuations)
    middle = sorted(values[0] for values in full)[1]
    cut = forward.forced_logprobs(rows, continuations, stop_below=middle)
    for got, whole in zip(cut, full, strict=True):
        assert got == pytest.approx(whole if whole[0] >= middle else whole[:1], abs=1e-5)
    assert any(len(got) < len(whole) for got, whole in zip(cut, full, strict=True))


def test_torch_rows_run_in_one_batch(lm: models.LoadedModel) -> None:
    assert forward.row_groups(lm, 4, [5000, 5000, 3]) == [[0, 1, 2]]
    assert forward.row_groups(lm, 4, []) == []
