"""Reading a packaged GGUF file without loading it whole: its header, its tensors row by row, its tokenizer.

`gguf.GGUFReader` and transformers' GGUF loader build a numpy view per vocabulary
string; on the 151,936-token Qwen vocabulary that takes 20-60 s each, and the
conversion called them three times. The header here is parsed straight from the
bytes (a second or two), tensors are read by offset with ordinary file reads (so
nothing of the file stays mapped into the process), and `gguf.quants` dequantizes
them. The tokenizer and config of the ``qwen2`` architecture are rebuilt from the
header the way transformers' GGUF loader builds them (`tests/test_gguf_file.py`
pins the token ids it gives).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
"""GGUF value types with a fixed size -> struct format."""
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
"""GGUF token types that transformers registers as added (special) tokens."""

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""The pre-tokenizer split of GGUF's ``qwen2`` tokenizer (``tokenizer.ggml.pre``), as transformers applies it."""


@dataclass(frozen=True)
class Tensor:
    """One tensor of the file: where its bytes are and how to read them."""

    name: str
    shape: tuple[int, ...]
    """Shape in torch order (slowest-moving dimension first)."""
    ggml_type: int
    offset: int
    """Absolute offset of its data in the file."""
    size: int
    """Bytes of data."""

    @property
    def rows(self) -> int:
        return self.shape[0]


@dataclass(frozen=True)
class Header:
    """A GGUF file's metadata and tensor table."""

    metadata: dict[str, Any]
    tensors: dict[str, Tensor]


class _Cursor:
    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def take(self, size: int) -> bytes:
        data = self.source.read(size)
        if len(data) != size:
            raise ValueError("the GGUF header ends early; the file is truncated")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind in _SCALARS:
                fmt = _SCALARS[item_kind]
                width = struct.calcsize(fmt)
                return list(np.frombuffer(self.take(width * count), dtype=np.dtype(fmt)).tolist())
            return [self.value(item_kind) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {kind}")


def read_header(path: Path) -> Header:
    """The metadata and tensor table of the GGUF file at `path` (no tensor data is read)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with path.open("rb") as source:
        cursor = _Cursor(source)
        if cursor.take(4) != b"GGUF":
            raise ValueError(f"{path.name} is not a GGUF file (no GGUF magic bytes)")
        version = cursor.unpack("<I")
        if version not in (2, 3):
            raise ValueError(f"{path.name} is GGUF version {version}; versions 2 and 3 are read")
        tensor_count, metadata_count = cursor.unpack("<Q"), cursor.unpack("<Q")
        metadata: dict[str, Any] = {}
        for _ in range(metadata_count):
            key = cursor.string()
            metadata[key] = cursor.value(cursor.unpack("<I"))
        table = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
            ggml_type, relative = cursor.unpack("<I"), cursor.unpack("<Q")
            table.append((name, tuple(reversed(dims)), ggml_type, relative))
        alignment = int(metadata.get("general.alignment", _DEFAULT_ALIGNMENT))
        start = -(-source.tell() // alignment) * alignment
    tensors = {}
    for name, shape, ggml_type, relative in table:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        elements = int(np.prod(shape))
        tensors[name] = Tensor(name, shape, ggml_type, start + relative, elements // block * block_bytes)
    return Header(metadata, tensors)


def read_rows(source: BinaryIO, tensor: Tensor, start: int, stop: int) -> np.ndarray:
    """Rows `start:stop` of a tensor, dequantized to float32, read from the open file."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    row_bytes = tensor.size // tensor.rows
    source.seek(tensor.offset + start * row_bytes)
    raw = np.frombuffer(source.read((stop - start) * row_bytes), dtype=np.uint8)
    kind = GGMLQuantizationType(tensor.ggml_type)
    inner = tensor.shape[1:]
    if kind == GGMLQuantizationType.F32:
        return raw.view(np.float32).reshape((stop - start, *inner)).copy()
    if kind == GGMLQuantizationType.F16:
        return raw.view(np.float16).reshape((stop - start, *inner)).astype(np.float32)
    return np.asarray(dequantize(raw.reshape(stop - start, row_bytes), kind), dtype=np.float32)


def qwen2_config(header: Header) -> Any:
    """The transformers config of a ``qwen2`` GGUF file, with the values transformers' GGUF loader reads."""
    from transformers import Qwen2Config

    metadata = header.metadata
    if metadata.get("general.architecture") != "qwen2":
        raise ValueError(f"not a qwen2 GGUF file: {metadata.get('general.architecture')!r}")
    layers = int(metadata["qwen2.block_count"])
    embedding = header.tensors["token_embd.weight"]
    return Qwen2Config(
        vocab_size=embedding.shape[0],
        hidden_size=int(metadata["qwen2.embedding_length"]),
        intermediate_size=int(metadata["qwen2.feed_forward_length"]),
        num_hidden_layers=layers,
        num_attention_heads=int(metadata["qwen2.attention.head_count"]),
        num_key_value_heads=int(metadata["qwen2.attention.head_count_kv"]),
        max_position_embeddings=int(metadata["qwen2.context_length"]),
        rms_norm_eps=float(metadata["qwen2.attention.layer_norm_rms_epsilon"]),
        rope_parameters={"rope_theta": float(metadata["qwen2.rope.freq_base"]), "rope_type": "default"},
        max_window_layers=layers,
        tie_word_embeddings="output.weight" not in header.tensors,
        bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=metadata.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=metadata.get("tokenizer.ggml.padding_token_id"),
        architectures=["Qwen2ForCausalLM"],
    )


def qwen2_tokenizer(header: Header) -> Any:
    """The byte-level BPE tokenizer of a ``qwen2`` GGUF file, as a transformers fast tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    metadata = header.metadata
    if metadata.get("tokenizer.ggml.model") != "gpt2" or metadata.get("tokenizer.ggml.pre") != "qwen2":
        raise ValueError("not a qwen2 byte-level BPE tokenizer")
    tokens: list[str] = metadata["tokenizer.ggml.tokens"]
    kinds: list[int] = metadata["tokenizer.ggml.token_type"]
    merges = [tuple(merge.split(" ", 1)) for merge in metadata["tokenizer.ggml.merges"]]
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A:0 $B:1")
    special = [
        AddedToken(token, normalized=False, special=True)
        for token, kind in zip(tokens, kinds, strict=True)
        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    ]
    backend.add_special_tokens(special)

    def named(key: str) -> str | None:
        index = metadata.get(f"tokenizer.ggml.{key}")
        return tokens[index] if index is not None else None

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=named("bos_token_id"),
        eos_token=named("eos_token_id"),
        pad_token=named("padding_token_id"),
        unk_token=None,
        chat_template=metadata.get("tokenizer.chat_template"),
        add_prefix_space=None,
    )
