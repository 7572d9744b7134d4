"""Sparse autoencoders in SAELens's on-disk format: load, encode, decode, save.

A folder holds ``cfg.json`` and ``sae_weights.safetensors`` with ``W_enc``
(d_in, d_sae), ``b_enc`` (d_sae), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in)
and, for JumpReLU, ``threshold`` (d_sae), as SAELens writes them. Both the
flat config of SAELens 3-5 (``hook_name``, ``activation_fn_str``,
``activation_fn_kwargs``) and the v6 layout (``architecture``, ``k``, a
``metadata`` object holding ``hook_name``) are read. SAELens itself is not a
dependency: it pulls in transformer-lens and wandb; this reader needs only
safetensors and numpy.

The hook is named as in TransformerLens and mapped onto `SubjectModel` kinds:
``blocks.L.hook_resid_post`` -> ``resid`` of layer L, ``blocks.L.hook_resid_pre``
-> ``resid`` of layer L-1, ``blocks.L.hook_mlp_out`` -> ``mlp_out`` of layer L,
``blocks.L.mlp.hook_post`` -> ``mlp`` (the neurons) of layer L.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scoring.errors import ScoringInputError

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
ARCHITECTURES = ("standard", "topk", "jumprelu")
"""standard: ReLU(x W_enc + b_enc); topk: the k largest pre-activations, ReLU'd; jumprelu: kept above a threshold."""
NORMALIZATIONS = ("none", "constant_norm_rescale")
SAVE_DTYPES = ("float32", "float16")

_HOOKS = (
    (re.compile(r"^blocks\.(\d+)\.hook_resid_post$"), "resid", 0),
    (re.compile(r"^blocks\.(\d+)\.hook_resid_pre$"), "resid", -1),
    (re.compile(r"^blocks\.(\d+)\.hook_mlp_out$"), "mlp_out", 0),
    (re.compile(r"^blocks\.(\d+)\.mlp\.hook_post$"), "mlp", 0),
)


def parse_hook(hook_name: str) -> tuple[str, int]:
    """(kind, layer) of `SubjectModel.capture` that reads the activations a TransformerLens hook name means."""
    for pattern, kind, shift in _HOOKS:
        match = pattern.match(hook_name)
        if match:
            layer = int(match.group(1)) + shift
            if layer < 0:
                raise ScoringInputError(
                    f"hook {hook_name!r} reads the embeddings, which this tool does not capture; "
                    "use an SAE on a later layer"
                )
            return kind, layer
    raise ScoringInputError(
        f"unsupported hook {hook_name!r}: expected blocks.L.hook_resid_post, blocks.L.hook_resid_pre, "
        "blocks.L.hook_mlp_out or blocks.L.mlp.hook_post"
    )


def hook_name_for(kind: str, layer: int) -> str:
    """The TransformerLens hook name of a `SubjectModel` position (the inverse of `parse_hook`)."""
    names = {"resid": "hook_resid_post", "mlp_out": "hook_mlp_out", "mlp": "mlp.hook_post"}
    if kind not in names:
        raise ScoringInputError(f"no SAE hook for kind {kind!r}; choose one of {', '.join(names)}")
    return f"blocks.{layer}.{names[kind]}"


@dataclass
class SAEConfig:
    """What ``cfg.json`` says, in the fields this tool uses (everything else is kept in `extra`)."""

    d_in: int
    """Width of the hooked activations."""
    d_sae: int
    """Number of latents."""
    hook_name: str
    """TransformerLens hook name, e.g. ``blocks.6.hook_resid_post``."""
    architecture: str = "standard"
    """One of `ARCHITECTURES`."""
    k: int | None = None
    """Latents kept per token (top-k only)."""
    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` from the input before encoding."""
    normalize_activations: str = "none"
    """One of `NORMALIZATIONS`."""
    model_name: str = ""
    """The model the SAE was trained on."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The rest of cfg.json, written back unchanged on save."""

    @property
    def hook(self) -> tuple[str, int]:
        return parse_hook(self.hook_name)

    @property
    def layer(self) -> int:
        return self.hook[1]

    @property
    def kind(self) -> str:
        return self.hook[0]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SAEConfig:
        """Read either SAELens config layout; unknown architectures or normalizations are a clear error."""
        found = raw.get("metadata")
        metadata: dict[str, Any] = found if isinstance(found, dict) else {}
        merged = {**metadata, **raw}
        missing = [name for name in ("d_in", "d_sae", "hook_name") if merged.get(name) in (None, "")]
        if missing:
            raise ScoringInputError(f"cfg.json lacks {', '.join(missing)}; is this an SAELens SAE folder?")
        function = str(merged.get("activation_fn_str") or merged.get("activation_fn") or "relu")
        architecture = str(merged.get("architecture") or ("topk" if function == "topk" else "standard"))
        if architecture == "standard" and function == "topk":
            architecture = "topk"
        if architecture not in ARCHITECTURES:
            raise ScoringInputError(
                f"SAE architecture {architecture!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
            )
        k_value = merged.get("k")
        kwargs = merged.get("activation_fn_kwargs")
        if k_value is None and isinstance(kwargs, dict):
            k_value = kwargs.get("k")
        if architecture == "topk" and (k_value is None or int(k_value) < 1):
            raise ScoringInputError("a top-k SAE's cfg.json must give k (a positive whole number)")
        normalization = str(merged.get("normalize_activations") or "none")
        if normalization not in NORMALIZATIONS:
            raise ScoringInputError(
                f"normalize_activations={normalization!r} is not supported (it needs a scaling factor estimated "
                f"on the training data); supported: {', '.join(NORMALIZATIONS)}"
            )
        known = {"d_in", "d_sae", "hook_name", "architecture", "k", "apply_b_dec_to_input", "normalize_activations"}
        config = cls(
            d_in=int(merged["d_in"]),
            d_sae=int(merged["d_sae"]),
            hook_name=str(merged["hook_name"]),
            architecture=architecture,
            k=int(k_value) if architecture == "topk" and k_value is not None else None,
            apply_b_dec_to_input=bool(merged.get("apply_b_dec_to_input", True)),
            normalize_activations=normalization,
            model_name=str(merged.get("model_name") or ""),
            extra={key: value for key, value in raw.items() if key not in known and key != "model_name"},
        )
        parse_hook(config.hook_name)
        return config

    def to_dict(self) -> dict[str, Any]:
        """cfg.json in the flat layout every SAELens version reads."""
        written = {key: value for key, value in asdict(self).items() if key != "extra"}
        written.update(
            {
                "activation_fn_str": "topk" if self.architecture == "topk" else "relu",
                "activation_fn_kwargs": {"k": self.k} if self.k is not None else {},
                "hook_layer": self.layer,
                "dtype": "float32",
                "device": "cpu",
            }
        )
        if self.k is None:
            written.pop("k")
        return {**self.extra, **written}


@dataclass
class SparseAutoencoder:
    """A loaded SAE: weights as float32 numpy arrays and the config."""

    config: SAEConfig
    W_enc: np.ndarray  # noqa: N815 (SAELens's names, so files and code read the same)
    """(d_in, d_sae)"""
    b_enc: np.ndarray
    """(d_sae,)"""
    W_dec: np.ndarray  # noqa: N815
    """(d_sae, d_in)"""
    b_dec: np.ndarray
    """(d_in,)"""
    threshold: np.ndarray | None = None
    """(d_sae,) for JumpReLU."""
    source: str = ""
    """Folder it was loaded from."""

    def __post_init__(self) -> None:
        d_in, d_sae = self.config.d_in, self.config.d_sae
        expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
        if self.config.architecture == "jumprelu":
            if self.threshold is None:
                raise ScoringInputError("a JumpReLU SAE needs a 'threshold' tensor in sae_weights.safetensors")
            expected["threshold"] = (d_sae,)
        for name, shape in expected.items():
            array = getattr(self, name)
            if tuple(array.shape) != shape:
                raise ScoringInputError(
                    f"SAE weight {name} has shape {tuple(array.shape)}, but cfg.json (d_in={d_in}, d_sae={d_sae}) "
                    f"needs {shape}"
                )
            setattr(self, name, np.ascontiguousarray(array, dtype=np.float32))

    @property
    def d_sae(self) -> int:
        return self.config.d_sae

    @property
    def name(self) -> str:
        """Short label: the folder name, else the hook."""
        return Path(self.source).name if self.source else self.config.hook_name

    def _prepare(self, activations: np.ndarray) -> np.ndarray:
        x = np.asarray(activations, dtype=np.float32)
        if x.shape[-1] != self.config.d_in:
            raise ScoringInputError(f"activations have width {x.shape[-1]}; this SAE reads {self.config.d_in}")
        if self.config.normalize_activations == "constant_norm_rescale":
            norms = np.linalg.norm(x, axis=-1, keepdims=True)
            x = x * (np.sqrt(self.config.d_in) / np.maximum(norms, 1e-12))
        if self.config.apply_b_dec_to_input:
            x = x - self.b_dec
        return x

    def pre_activations(self, activations: np.ndarray) -> np.ndarray:
        """(..., d_sae): x W_enc + b_enc, before the sparsifying non-linearity."""
        x = self._prepare(activations)
        return np.asarray(x @ self.W_enc + self.b_enc, dtype=np.float32)

    def encode(self, activations: np.ndarray) -> np.ndarray:
        """(..., d_in) hooked activations -> (..., d_sae) latent activations (float32)."""
        pre = self.pre_activations(activations)
        if self.config.architecture == "standard":
            return np.maximum(pre, 0.0)
        if self.config.architecture == "jumprelu":
            assert self.threshold is not None
            return np.where(pre > self.threshold, pre, 0.0).astype(np.float32)
        k = min(int(self.config.k or 1), self.d_sae)
        flat = pre.reshape(-1, self.d_sae)
        keep = np.argpartition(-flat, k - 1, axis=1)[:, :k]
        latents = np.zeros_like(flat)
        rows = np.arange(flat.shape[0])[:, None]
        latents[rows, keep] = np.maximum(flat[rows, keep], 0.0)
        return latents.reshape(pre.shape)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """(..., d_sae) -> (..., d_in) reconstruction (in the normalized space when the config rescales)."""
        return np.asarray(np.asarray(latents, dtype=np.float32) @ self.W_dec + self.b_dec, dtype=np.float32)

    def save(self, directory: str | Path, dtype: str = "float32") -> Path:
        """Write cfg.json and sae_weights.safetensors (`dtype`: float32 or float16) to `directory`."""
        from safetensors.numpy import save_file

        if dtype not in SAVE_DTYPES:
            raise ScoringInputError(f"save an SAE as one of {', '.join(SAVE_DTYPES)}, not {dtype!r}")
        home = Path(directory)
        home.mkdir(parents=True, exist_ok=True)
        tensors = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            tensors["threshold"] = self.threshold
        save_file(
            {name: np.ascontiguousarray(value, dtype=dtype) for name, value in tensors.items()},
            str(home / WEIGHTS_FILE),
        )
        config = {**self.config.to_dict(), "dtype": dtype}
        (home / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        return home

    def rounded(self, dtype: str) -> SparseAutoencoder:
        """The same SAE with its weights rounded to `dtype` (what `save(..., dtype)` then `load_sae` gives)."""
        if dtype not in SAVE_DTYPES:
            raise ScoringInputError(f"save an SAE as one of {', '.join(SAVE_DTYPES)}, not {dtype!r}")
        rounded = {
            name: None if value is None else np.asarray(value, dtype=dtype).astype(np.float32)
            for name, value in (
                ("W_enc", self.W_enc),
                ("b_enc", self.b_enc),
                ("W_dec", self.W_dec),
                ("b_dec", self.b_dec),
                ("threshold", self.threshold),
            )
        }
        return SparseAutoencoder(self.config, source=self.source, **rounded)  # type: ignore[arg-type]


def load_sae(directory: str | Path) -> SparseAutoencoder:
    """An SAE from a folder in SAELens's format (any float dtype; computed in float32)."""
    from safetensors.numpy import load_file

    home = Path(directory).expanduser()
    if not (home / CONFIG_FILE).is_file() or not (home / WEIGHTS_FILE).is_file():
        raise ScoringInputError(
            f"{home} is not an SAE folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE} (SAELens format)"
        )
    try:
        raw = json.loads((home / CONFIG_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScoringInputError(f"{home / CONFIG_FILE} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ScoringInputError(f"{home / CONFIG_FILE} must hold a JSON object")
    config = SAEConfig.from_dict(raw)
    tensors = load_file(str(home / WEIGHTS_FILE))
    missing = [name for name in ("W_enc", "b_enc", "W_dec", "b_dec") if name not in tensors]
    if missing:
        raise ScoringInputError(f"{home / WEIGHTS_FILE} lacks {', '.join(missing)}")
    return SparseAutoencoder(
        config,
        tensors["W_enc"],
        tensors["b_enc"],
        tensors["W_dec"],
        tensors["b_dec"],
        tensors.get("threshold"),
        source=str(home),
    )
