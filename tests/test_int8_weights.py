"""The float16-block storage of the embedded simulator, its int8 path (`scoring.int8_weights`) and the kernels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scoring import int8_weights  # noqa: E402

needs_kernels = pytest.mark.skipif(
    not int8_weights.int8_kernels_available(), reason="this torch build has no x86 int8 kernels"
)


def _int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, scale = int8_weights._int8_rows_torch(torch.from_numpy(weight))
    return rows.numpy(), scale.numpy()


def test_int8_rows_round_trip_within_half_a_step_per_row() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(int8_weights.ROWS_PER_CHUNK + 7, 33)).astype(np.float32)
    weight[3] = 0.0
    rows, scale = _int8_rows(weight)
    assert rows.dtype == np.int8 and scale.shape == (weight.shape[0],)
    assert np.all(np.abs(rows.astype(np.float32) * scale[:, None] - weight) <= scale[:, None] / 2 + 1e-6)
    assert scale[3] == 1.0 and not rows[3].any()
    assert np.abs(rows).max() == 127


@needs_kernels
def test_int8_linear_scales_each_token_on_its_own() -> None:
    """A token with huge values must not flatten the small ones (per-token activation scales)."""
    rows_linear, _, _ = int8_weights._module_classes()
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=generator)
    bias = torch.randn(48, generator=generator)
    rows, scale = _int8_rows(weight.numpy())
    module = rows_linear(torch.from_numpy(rows), torch.from_numpy(scale), bias)
    x = torch.randn(2, 5, 64, generator=generator)
    x[0, 0] *= 1000.0
    exact = x @ (torch.from_numpy(rows).float() * torch.from_numpy(scale)[:, None]).T + bias
    out = module(x)
    assert out.shape == (2, 5, 48)
    for token in ((0, 1), (1, 3), (0, 0)):
        error = (out[token] - exact[token]).norm() / (exact[token] - bias).norm()
        assert error < 0.05, (token, float(error))


@needs_kernels
def test_float16_linear_in_blocks_matches_the_float16_weights() -> None:
    _, float16_linear, _ = int8_weights._module_classes()
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(int8_weights.ROWS_PER_CHUNK + 5, 16, generator=generator).half()
    module = float16_linear(weight, None)
    x = torch.randn(3, 16, generator=generator)
    assert torch.allclose(module(x), x @ weight.float().T, atol=1e-3, rtol=1e-3)


def _tiny_folder(folder: Path) -> Path:
    """A 2-layer Qwen2 in float16-block storage, written as `convert` writes it (random weights)."""
    from safetensors.numpy import save_file
    from transformers import Qwen2Config

    config = Qwen2Config(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        max_position_embeddings=128,
    )
    config.save_pretrained(str(folder))
    rng = np.random.default_rng(2)
    how = {name: kind for name, kind in int8_weights._BLOCK_TENSORS.values()}
    shapes = {
        "input_layernorm.weight": (64,),
        "post_attention_layernorm.weight": (64,),
        "self_attn.q_proj.weight": (64, 64),
        "self_attn.k_proj.weight": (32, 64),
        "self_attn.v_proj.weight": (32, 64),
        "self_attn.o_proj.weight": (64, 64),
        "self_attn.q_proj.bias": (64,),
        "self_attn.k_proj.bias": (32,),
        "self_attn.v_proj.bias": (32,),
        "mlp.gate_proj.weight": (96, 64),
        "mlp.up_proj.weight": (96, 64),
        "mlp.down_proj.weight": (64, 96),
    }
    for index in range(2):
        stored: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            value = (rng.normal(size=shape) * 0.2).astype(np.float32)
            if name.endswith("layernorm.weight"):
                value += 1.0
            stored[f"model.layers.{index}.{name}"] = value.astype(np.float32 if how[name] == "float32" else np.float16)
        save_file(stored, str(folder / int8_weights.BLOCK_FILE.format(index=index)))
    save_file(
        {
            "model.embed_tokens.weight": rng.normal(size=(96, 64)).astype(np.float16),
            "model.norm.weight": np.ones(64, np.float32),
            "lm_head.weight": (rng.normal(size=(96, 64)) * 0.2).astype(np.float16),
        },
        str(folder / int8_weights.EMBEDDING_FILE),
    )
    (folder / int8_weights.MARKER_FILE).write_text(json.dumps({"storage": int8_weights.STORAGE, "blocks": 2}))
    return folder


@needs_kernels
def test_the_int8_path_follows_the_float32_path_of_the_same_storage(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    assert int8_weights.stored_as_blocks(folder)
    stages: list[tuple[str, int, int]] = []
    quantized = int8_weights.load_model(folder, "cpu", "int8", lambda *step: stages.append(step))
    reference = int8_weights.load_model(folder, "cpu", "float32")
    assert stages[0] == ("loading the model", 0, 3) and stages[-1] == ("loading the model", 3, 3)
    ids = torch.tensor([[1, 5, 9, 40, 2, 77, 3]])
    with torch.no_grad():
        fast, exact = quantized(ids).logits[0], reference(ids).logits[0]
    # int8 activations (7 bits per token) move the logits a little, never far; another model is far.
    assert float((fast - exact).abs().max()) < 0.1 * float(exact.abs().max())
    assert float(torch.nn.functional.cosine_similarity(fast, exact, dim=-1).min()) > 0.99
    other = reference(ids + 1).logits[0].detach()
    assert float(torch.nn.functional.cosine_similarity(other, exact, dim=-1).min()) < 0.9


def test_a_float_load_needs_no_int8_kernels_and_int8_refuses_other_devices(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    model = int8_weights.load_model(folder, "cpu", "float32")
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    with pytest.raises(ValueError, match="x86 CPU"):
        int8_weights.load_model(folder, "cuda", "int8")


def test_a_folder_missing_a_block_is_refused_by_name(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    (folder / int8_weights.BLOCK_FILE.format(index=1)).unlink()
    with pytest.raises(ValueError, match="lacks weights for .*layers.1"):
        int8_weights.load_model(folder, "cpu", "float32")
