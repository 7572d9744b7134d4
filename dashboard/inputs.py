"""Reading what the user loads: examples, pasted and uploaded records, input limits, and their preview."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.sidebar import EXAMPLES_DIR
from scoring import (
    NORMALIZATIONS,
    ActivationRecord,
    Limits,
    ScoringInputError,
    normalize,
    viz,
)
from scoring.textformat import (
    CandidateExplanation,
    describe_records,
    explanations_from_object,
    feature_identity,
    load_pasted,
    records_to_token_text,
)

logger = logging.getLogger(__name__)


def list_examples() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def example_label(path: Path) -> str:
    return path.stem.replace("_", " ")


@dataclass
class LoadedInput:
    """What a page read from the user: records and any explanations stored with them."""

    records: list[ActivationRecord]
    explanations: list[CandidateExplanation] = field(default_factory=list)
    name: str = ""
    groups: list[str] = field(default_factory=list)
    """Per record: "top", "random", "quantile" where the input says so, else ""."""
    feature: str = ""
    """Who the feature is (model / layer / index, or source / id) when the input names it."""
    fingerprint: str = ""
    """`records_fingerprint` of the records, so results can be tied to the exact input they came from."""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = records_fingerprint(self.records)


LIMIT_MAX_TOKENS_STATE = "input_max_tokens"
LIMIT_MAX_SEQUENCES_STATE = "input_max_sequences"
_HARD_MAX_TOKENS = 200_000
_HARD_MAX_SEQUENCES = 100_000


def input_limits() -> Limits:
    """The input limits set on the page (defaults: `scoring.Limits`)."""
    defaults = Limits()
    return Limits(
        max_sequences=int(st.session_state.get(LIMIT_MAX_SEQUENCES_STATE, defaults.max_sequences)),
        max_tokens_per_sequence=int(st.session_state.get(LIMIT_MAX_TOKENS_STATE, defaults.max_tokens_per_sequence)),
    )


def input_limits_widgets() -> None:
    """Max tokens per sequence and max sequences, in an expander (shared by every page)."""
    defaults = Limits()
    st.session_state.setdefault(LIMIT_MAX_TOKENS_STATE, defaults.max_tokens_per_sequence)
    st.session_state.setdefault(LIMIT_MAX_SEQUENCES_STATE, defaults.max_sequences)
    with st.expander("Input limits"):
        st.caption(
            "Longer or more sequences are refused so that one paste cannot stall the page; raise the limits "
            "for large features (scoring time grows with the number of tokens)."
        )
        left, right = st.columns(2)
        left.number_input(
            "Max tokens per sequence", min_value=1, max_value=_HARD_MAX_TOKENS, step=512, key=LIMIT_MAX_TOKENS_STATE
        )
        right.number_input(
            "Max sequences", min_value=1, max_value=_HARD_MAX_SEQUENCES, step=100, key=LIMIT_MAX_SEQUENCES_STATE
        )


def check_input_limits(records: Sequence[ActivationRecord], limits: Limits) -> None:
    """Raise ScoringInputError naming the in-page setting to raise when `records` exceed `limits`."""
    if len(records) > limits.max_sequences:
        raise ScoringInputError(
            f"{len(records):,} sequences, more than the {limits.max_sequences:,} allowed: raise "
            "“Max sequences” under “Input limits” above, or load fewer sequences"
        )
    for index, record in enumerate(records):
        if len(record.tokens) > limits.max_tokens_per_sequence:
            where = record.source or f"sequence {index}"
            raise ScoringInputError(
                f"{where} has {len(record.tokens):,} tokens, more than the {limits.max_tokens_per_sequence:,} "
                "allowed: raise “Max tokens per sequence” under “Input limits” above, or split the sequence"
            )


def records_fingerprint(records: Sequence[ActivationRecord]) -> str:
    """sha256 of the canonical JSON of every record's tokens and raw activations."""
    payload = json.dumps([[record.tokens, record.activations] for record in records], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_GROUP_PREFIXES = (
    ("random_sample_by_quantile", "quantile"),
    ("most_positive_activation_records", "top"),
    ("top_activating_records", "top"),
    ("random_sample", "random"),
    ("random_records", "random"),
)


def record_group(record: ActivationRecord) -> str:
    """ "top", "random" or "quantile" when the record's place in its file says so (OpenAI neuron records), else ""."""
    for prefix, group in _GROUP_PREFIXES:
        if record.source.startswith(prefix):
            return group
    return ""


@st.cache_data(show_spinner=False, max_entries=32)
def _parse_text(text: str) -> tuple[list[ActivationRecord], list[CandidateExplanation], list[str], str, str]:
    # The page checks its own, user-settable limits afterwards, with advice that names the setting.
    records = load_pasted(text, limits=Limits(_HARD_MAX_SEQUENCES, _HARD_MAX_TOKENS))
    explanations: list[CandidateExplanation] = []
    groups = [record_group(record) for record in records]
    feature = ""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        explanations = explanations_from_object(data)
        feature = feature_identity(data)
        items = data.get("activations") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) == len(records):
            # Feature exports (the Explore page's among them) label each excerpt in a "sample" field.
            groups = [str(item.get("sample", "")) if isinstance(item, dict) else "" for item in items]
    # Hashed once per distinct text (this function is cached), not on every rerun of the page.
    return records, explanations, groups, feature, records_fingerprint(records)


def read_input_text(text: str, name: str) -> LoadedInput:
    """Parse pasted/uploaded/bundled text; raises ScoringInputError saying what to fix."""
    records, explanations, groups, feature, fingerprint = _parse_text(text)
    check_input_limits(records, input_limits())
    return LoadedInput(list(records), list(explanations), name, list(groups), feature, fingerprint)


def read_upload(upload: Any) -> LoadedInput:
    data = upload.getvalue()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScoringInputError(f"{upload.name} is not UTF-8 text; save it as UTF-8 JSON, CSV or TSV") from exc
    return read_input_text(text, upload.name)


SAE_ROOT_VARIABLE = "SCORING_SAE_ROOT"
"""Environment variable naming the folder(s) (os.pathsep-separated) under which the Explore page opens SAEs."""


def sae_roots() -> list[Path]:
    """The folders set in SCORING_SAE_ROOT where the dashboard runs (none when it is unset)."""
    value = os.environ.get(SAE_ROOT_VARIABLE, "")
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def allowed_sae_folder(text: str, shipped: Path | None) -> Path:
    """The SAE folder typed on the Explore page, when the dashboard may open it; else ScoringInputError.

    Allowed: the packaged SAE, and folders under SCORING_SAE_ROOT (a relative name is taken under the first
    root). Anything else is refused before it is looked at, so a typed path tells nothing about the machine.
    """
    roots = sae_roots()
    typed = Path(text.strip()).expanduser()
    path = (typed if typed.is_absolute() or not roots else roots[0] / typed).resolve()
    if shipped is not None and path == shipped.resolve():
        return path
    if any(path.is_relative_to(root) for root in roots):
        return path
    listed = ", ".join(str(root) for root in roots)
    where = f"folders under {listed}" if roots else f"no other ({SAE_ROOT_VARIABLE} is unset)"
    raise ScoringInputError(
        f"this dashboard opens the packaged SAE and {where}; ask whoever runs it to set {SAE_ROOT_VARIABLE} to "
        "the folder holding your SAEs"
    )


def records_summary(records: Sequence[ActivationRecord]) -> str:
    facts = describe_records(records)
    density = facts["active_tokens"] / facts["tokens"] if facts["tokens"] else 0.0
    return (
        f"{viz.count(facts['sequences'], 'sequence')} · {viz.count(facts['tokens'], 'token')} · "
        f"{viz.count(facts['active_tokens'], 'active token')} (density {density:.1%}) · "
        f"max activation {facts['max_activation']:g}"
    )


def negative_note(records: Sequence[ActivationRecord], normalization: str) -> str | None:
    """What the normalization does to negative activations, or None when there are none (or they are kept)."""
    negatives = [value for record in records for value in record.activations if value < 0]
    if not negatives:
        return None
    total = sum(len(record.activations) for record in records)
    counted = f"{len(negatives)} of {total} tokens have negative activations (lowest {min(negatives):g})"
    if normalization == "none":
        return f"{counted}; the `none` normalization keeps them (blue in the heatmaps)."
    return (
        f"{counted}. The `{normalization}` normalization sets them to 0 before scoring, so a simulator is not "
        "judged on them; choose `none` to keep them."
    )


def preview_records(loaded: LoadedInput, normalization: str, key: str, limit: int = 12) -> None:
    """Density, a histogram, and the excerpts sorted by max activation as token heatmaps (top `limit`)."""
    records = loaded.records
    note = negative_note(records, normalization)
    if note:
        st.info(note)
    st.plotly_chart(viz.activation_histogram(records), key=f"{key}_histogram")
    scaled = normalize(records, normalization) if normalization in NORMALIZATIONS else normalize(records)
    groups = loaded.groups if len(loaded.groups) == len(records) else [""] * len(records)
    order = sorted(range(len(records)), key=lambda index: -records[index].max_activation)
    vmax = max((abs(value) for values in scaled for value in values), default=1.0) or 1.0
    vmax = viz.SCALE_MAX if normalization != "none" else vmax
    parts = [viz.color_legend_html()]
    for index in order[:limit]:
        record, values = records[index], scaled[index]
        hover = [f"raw {value:g}" for value in record.activations]
        label = viz.sequence_label(record.tokens, index)
        group = f" · {groups[index]}" if groups[index] else ""
        parts.append(
            f"<div class='cmpseq'>{html.escape(label)}{html.escape(group)} · max {record.max_activation:g}</div>"
            + viz.tokens_html(record.tokens, values, hover=hover, vmax=vmax)
        )
    if len(records) > limit:
        parts.append(f"<p>… and {len(records) - limit} more sequences (lower maxima).</p>")
    st.caption("Excerpts sorted by their highest activation, labelled top / random / quantile where the input says so.")
    st.html("".join(parts))
    st.download_button(
        "Download as token<TAB>activation text",
        records_to_token_text(records),
        "records.txt",
        "text/plain",
        on_click="ignore",
        key=key,
        help="The same records in the simple text format, to edit and paste back.",
    )
