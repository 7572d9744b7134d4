"""The embedded simulator's weights: streamed out of the packaged GGUF as float16, run by int8 kernels on x86 CPUs.

A 1.5B model in float32 needs over 6 GB of memory and, on a CPU without native
bfloat16, a minute or more per score. Here the packaged Q4_K/Q6_K GGUF is
converted tensor by tensor (never the whole model in float32 at once) into:

* every matrix (projections, output head, token embeddings) as float16;
* norms and biases as float32;

in one safetensors file per block (`convert`). `load_model` builds the
transformers model without allocating its float weights and puts in:

* on the int8 path (x86 CPU): the attention and gate/up projections made int8
  with one scale per output row (symmetric, ``weight ~ int8 * scale``) and run by
  oneDNN's int8 kernel with activations scaled per token (`Int8RowsLinear`);
  fbgemm's float16-weight kernel for the down projections and the output head;
  the model holds about 3 GB;
* with a float compute dtype (CUDA, Apple's MPS, or ``SCORING_DTYPE``): plain
  linear layers with the stored weights in that dtype.

The quantized ops are torch's eager int8 API, deprecated upstream in favour of
torchao, whose CPU path without ``torch.compile`` was 40x slower here
(docs/local-simulator.md); `tests/test_int8_weights.py` checks the contract this
module relies on.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from scoring import gguf_file
from scoring.shared_types import PreparationProgress

logger = logging.getLogger(__name__)

STORAGE = "float16-blocks"
"""Name of this storage in the converted folder's ``converted.json``."""

EMBEDDING_FILE = "embeddings.safetensors"
BLOCK_FILE = "block-{index:03d}.safetensors"
MARKER_FILE = "blocks.json"
"""Written last by `convert`: names the storage and the number of blocks."""

_BLOCK_TENSORS: dict[str, tuple[str, str]] = {
    "attn_norm.weight": ("input_layernorm.weight", "float32"),
    "ffn_norm.weight": ("post_attention_layernorm.weight", "float32"),
    "attn_q.weight": ("self_attn.q_proj.weight", "int8"),
    "attn_k.weight": ("self_attn.k_proj.weight", "int8"),
    "attn_v.weight": ("self_attn.v_proj.weight", "int8"),
    "attn_output.weight": ("self_attn.o_proj.weight", "int8"),
    "attn_q.bias": ("self_attn.q_proj.bias", "float32"),
    "attn_k.bias": ("self_attn.k_proj.bias", "float32"),
    "attn_v.bias": ("self_attn.v_proj.bias", "float32"),
    "ffn_gate.weight": ("mlp.gate_proj.weight", "int8"),
    "ffn_up.weight": ("mlp.up_proj.weight", "int8"),
    # The inputs of down_proj carry a few channels hundreds of times larger than the
    # rest (up to ~1400 against a median of ~5 in Qwen2.5-1.5B). In int8, even with
    # those columns split off in float32, the next-token agreement with float32 fell
    # from 0.95 to 0.93 (KL 0.018 -> 0.03 nats): it keeps float16 weights.
    "ffn_down.weight": ("mlp.down_proj.weight", "float16"),
}
"""GGUF name inside ``blk.N.`` -> (transformers name inside ``model.layers.N.``, storage)."""

_TOP_TENSORS: dict[str, tuple[str, str]] = {
    "token_embd.weight": ("model.embed_tokens.weight", "float16"),
    "output_norm.weight": ("model.norm.weight", "float32"),
    "output.weight": ("lm_head.weight", "float16"),
}
"""GGUF name -> (transformers name, how it is stored) for the tensors outside the blocks."""

ROWS_PER_CHUNK = 16384
"""Rows dequantized at a time for the large embedding and head matrices (bounds the float32 copy)."""

SUPPORTED_ARCHITECTURES = ("qwen2",)
"""GGUF architectures whose tensor names this converter maps (others keep the float32 conversion)."""


def _stored(source: BinaryIO, tensor: gguf_file.Tensor, how: str) -> np.ndarray:
    """One tensor in its storage form: float32, or float16 (``float16`` and ``int8``, read in blocks of rows).

    ``int8`` tensors are kept in float16 on disk and made int8 rows at load, on the int8 path
    only: int8 rows stored on disk moved the float32 path's scores too (demo: "fast animals"
    0.741 -> 0.684), float16 does not.
    """
    if how == "float32":
        return gguf_file.read_rows(source, tensor, 0, tensor.rows)
    parts = [
        gguf_file.read_rows(source, tensor, start, min(tensor.rows, start + ROWS_PER_CHUNK)).astype(np.float16)
        for start in range(0, tensor.rows, ROWS_PER_CHUNK)
    ]
    return np.concatenate(parts)


def _write_part(gguf: Path, target: Path, tensors: list[tuple[str, gguf_file.Tensor, str]]) -> None:
    """Convert `tensors` ((transformers name, GGUF tensor, storage)) into one safetensors file."""
    from safetensors.numpy import save_file

    stored: dict[str, np.ndarray] = {}
    with gguf.open("rb") as source:
        for name, tensor, how in tensors:
            stored[name] = _stored(source, tensor, how)
    save_file(stored, str(target))


CONVERSION_THREADS = 2
"""Parts converted at once (numpy's dequantization releases the GIL for most of its work)."""


def convert(gguf: Path, folder: Path, progress: PreparationProgress | None = None) -> None:
    """Write the int8 storage of the GGUF file `gguf` into `folder` (which exists): weights, config, tokenizer."""
    header = gguf_file.read_header(gguf)
    architecture = header.metadata.get("general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ValueError(f"int8 storage maps {', '.join(SUPPORTED_ARCHITECTURES)} GGUF files, not {architecture}")
    blocks = sorted({int(m.group(1)) for name in header.tensors if (m := re.match(r"blk\.(\d+)\.", name))})
    known = set(_TOP_TENSORS) | {f"blk.{index}.{suffix}" for index in blocks for suffix in _BLOCK_TENSORS}
    unknown = sorted(set(header.tensors) - known)
    if unknown:
        raise ValueError(f"{gguf.name} holds tensors this converter does not map: {unknown[:5]}")
    parts: dict[Path, list[tuple[str, gguf_file.Tensor, str]]] = {
        folder / EMBEDDING_FILE: [
            (name, header.tensors[gguf_name], how)
            for gguf_name, (name, how) in _TOP_TENSORS.items()
            if gguf_name in header.tensors
        ]
    }
    for index in blocks:
        parts[folder / BLOCK_FILE.format(index=index)] = [
            (f"model.layers.{index}.{name}", header.tensors[f"blk.{index}.{suffix}"], how)
            for suffix, (name, how) in _BLOCK_TENSORS.items()
            if f"blk.{index}.{suffix}" in header.tensors
        ]
    stage = "converting the weights to int8"
    if progress:
        progress(stage, 0, len(parts))
    with ThreadPoolExecutor(CONVERSION_THREADS) as pool:
        pending = [pool.submit(_write_part, gguf, target, tensors) for target, tensors in parts.items()]
        for done, future in enumerate(as_completed(pending), start=1):
            future.result()
            if progress:
                progress(stage, done, len(parts))
    gguf_file.qwen2_config(header).save_pretrained(str(folder))
    gguf_file.qwen2_tokenizer(header).save_pretrained(str(folder))
    (folder / MARKER_FILE).write_text(json.dumps({"storage": STORAGE, "blocks": len(blocks)}, indent=1) + "\n")
    release_free_memory()


def stored_as_blocks(folder: Path) -> bool:
    """Whether `folder` holds this module's float16 blocks (not a plain transformers checkpoint)."""
    return (folder / MARKER_FILE).is_file()


def int8_kernels_available() -> bool:
    """Whether this torch build has the kernels `load_model` uses for int8: oneDNN's int8 and fbgemm's (x86 CPUs)."""
    import torch

    return (
        bool(torch.backends.mkldnn.is_available())
        and hasattr(torch.ops.onednn, "qlinear_pointwise")
        and "fbgemm" in torch.backends.quantized.supported_engines
    )


ACTIVATION_LEVELS = 63
"""Activations are quantized to -63..63 (7 bits): 8-bit ones can saturate AVX2's int16 pair sums."""


@functools.cache
def _module_classes() -> tuple[Any, Any, Any]:
    """(Int8RowsLinear, Float16Linear, Float16Embedding), defined once torch is imported."""
    import torch

    class Int8RowsLinear(torch.nn.Module):
        """y = x W^T + b with W in int8 per output row and x quantized per token (oneDNN).

        Each row (token) of the input gets its own scale, so one token with large
        values (the first of a prompt often has them) does not flatten the others.
        The bias is added in float32.
        """

        def __init__(self, int8: Any, scale: Any, bias: Any) -> None:
            super().__init__()
            self.out_features, self.in_features = int8.shape
            self._packed = torch.ops.onednn.qlinear_prepack(int8, None)
            self.register_buffer("_scale", scale.float().clone(), persistent=False)
            self.register_buffer("_zero", torch.zeros(self.out_features, dtype=torch.long), persistent=False)
            self.register_buffer("bias", bias, persistent=False)

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, self.in_features)
            largest = flat.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12)
            quantized = (flat * (ACTIVATION_LEVELS / largest)).round_().add_(64).to(torch.uint8)
            out = torch.ops.onednn.qlinear_pointwise(
                quantized,
                1.0 / ACTIVATION_LEVELS,
                64,
                self._packed,
                self._scale,
                self._zero,
                None,
                1.0,
                0,
                torch.float32,
                "none",
                [None],
                "",
            ).mul_(largest)
            if self.bias is not None:
                out.add_(self.bias)
            return out.reshape(*x.shape[:-1], self.out_features)

    class Float16Linear(torch.nn.Module):
        """y = x W^T + b with W in float16 (fbgemm's packed form) and x, y in float32.

        Packed in blocks of `ROWS_PER_CHUNK` output rows, so packing the output head
        never holds its whole float32 copy (0.9 GB for Qwen's vocabulary).
        """

        def __init__(self, weight: Any, bias: Any) -> None:
            super().__init__()
            self.out_features, self.in_features = weight.shape
            self._packed = [
                torch.ops.quantized.linear_prepack_fp16(
                    weight[start : start + ROWS_PER_CHUNK].float(),
                    None if bias is None else bias[start : start + ROWS_PER_CHUNK].float(),
                )
                for start in range(0, self.out_features, ROWS_PER_CHUNK)
            ]

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, self.in_features)
            parts = [torch.ops.quantized.linear_dynamic_fp16(flat, packed) for packed in self._packed]
            out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            return out.reshape(*x.shape[:-1], self.out_features)

    class Float16Embedding(torch.nn.Embedding):
        """Keeps its table in float16 and returns float32 rows."""

        def forward(self, input: Any) -> Any:  # noqa: A002 - torch's parameter name
            return super().forward(input).float()

    return Int8RowsLinear, Float16Linear, Float16Embedding


INT8_LINEARS = frozenset(
    name.rpartition(".")[0].rpartition(".")[2] for name, how in _BLOCK_TENSORS.values() if how == "int8"
)
"""Linear layers that run in int8 on the int8 path (q, k, v, o, gate, up); the others keep float16 weights."""


def _int8_rows_torch(weight: Any) -> tuple[Any, Any]:
    """(int8 rows, float32 scale per row) with weight ~ rows * scale[:, None]; all-zero rows get scale 1."""
    import torch

    rows = torch.empty(weight.shape, dtype=torch.int8)
    scale = torch.empty(weight.shape[0], dtype=torch.float32)
    for start in range(0, weight.shape[0], ROWS_PER_CHUNK):
        block = weight[start : start + ROWS_PER_CHUNK].float()
        largest = block.abs().amax(dim=1)
        block_scale = torch.where(largest > 0, largest / 127.0, torch.ones_like(largest))
        rows[start : start + ROWS_PER_CHUNK] = (block / block_scale[:, None]).round_().clamp_(-127, 127).to(torch.int8)
        scale[start : start + ROWS_PER_CHUNK] = block_scale
    return rows, scale


def release_free_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it per thread otherwise); no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _float_linear(weight: Any, bias: Any, dtype: Any, device: str) -> Any:
    import torch

    out_features, in_features = weight.shape
    module = torch.nn.Linear(in_features, out_features, bias=bias is not None, device="meta")
    module.weight = torch.nn.Parameter(weight.to(device=device, dtype=dtype), False)
    if bias is not None:
        module.bias = torch.nn.Parameter(bias.to(device=device, dtype=dtype), False)
    return module


def load_model(folder: Path, device: str, dtype: str, progress: PreparationProgress | None = None) -> Any:
    """The causal LM stored in `folder`, in eval mode.

    ``dtype="int8"`` (x86 CPU, `int8_kernels_available`): the `INT8_LINEARS` made int8 rows here,
    the other linear layers kept in float16, float32 everywhere else. Any float dtype: every weight in that dtype on
    `device` (CUDA, Apple's MPS, or a CPU without those kernels).
    """
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    int8 = dtype == "int8"
    if int8 and (device != "cpu" or not int8_kernels_available()):
        raise ValueError("int8 linear layers need an x86 CPU and a torch build with oneDNN")
    compute = torch.float32 if int8 else getattr(torch, dtype)
    rows_linear, float16_linear, float16_embedding = _module_classes()
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    if config.tie_word_embeddings:
        raise ValueError(f"{folder} ties its output head to the embeddings, which int8 storage does not support")
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=compute)
    linears = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    files = [folder / EMBEDDING_FILE] + sorted(folder.glob("block-*.safetensors"))
    rest: dict[str, Any] = {}
    for done, path in enumerate(files):
        if progress:
            progress("loading the model", done, len(files))
        tensors = load_file(str(path))
        for name in sorted({key.rsplit(".weight", 1)[0] for key in tensors if ".weight" in key} & linears):
            bias = tensors.pop(f"{name}.bias", None)
            # Copies: a tensor of a loaded file keeps the whole file's buffer alive.
            bias = None if bias is None else bias.clone()
            weight = tensors.pop(f"{name}.weight")
            if not int8:
                module = _float_linear(weight, bias, compute, device)
            elif name.rpartition(".")[2] in INT8_LINEARS:
                rows, scale = _int8_rows_torch(weight)
                module = rows_linear(rows, scale, bias)
            else:
                module = float16_linear(weight, bias)
            model.set_submodule(name, module)
        embedding = tensors.pop("model.embed_tokens.weight", None)
        if embedding is not None:
            if int8:
                table = float16_embedding(*embedding.shape, _weight=embedding, _freeze=True)
            else:
                table = torch.nn.Embedding.from_pretrained(embedding.to(device=device, dtype=compute))
            model.set_input_embeddings(table)
        rest.update({key: value.to(device=device, dtype=compute, copy=True) for key, value in tensors.items()})
        del tensors
    parameters = dict(model.named_parameters())
    unexpected = sorted(set(rest) - set(parameters))
    if unexpected:
        raise ValueError(f"{folder} holds weights the model does not have: {unexpected[:5]}")
    for name, value in rest.items():
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, torch.nn.Parameter(value, requires_grad=False))
    left = [name for name, parameter in model.named_parameters() if parameter.device.type == "meta"]
    if left:
        raise ValueError(f"{folder} lacks weights for {left[:5]}")
    model.to(device)
    model.eval()
    release_free_memory()
    if progress:
        progress("loading the model", len(files), len(files))
    return model
