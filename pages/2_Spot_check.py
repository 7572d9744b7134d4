"""Spot-check page (moderators): check the scores a Neuronpedia feature claims, with the evidence per example.

Load a feature as Neuronpedia's API returns it; every claimed score is re-derived from the
details stored with it at once, and re-scored like with like by a judge on request
(`scoring.spotcheck`). The page draws what `scoring.viz` makes of the result.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st

import dashboard as ui
from scoring import ScoringInputError, Simulator, viz
from scoring.spotcheck import (
    FLAGGED,
    MODEL_PLACEHOLDER,
    TEMPLATE_KINDS,
    FeatureCheck,
    NeuronpediaFeature,
    SpotCheckOptions,
    Template,
    parse_feature_text,
    spot_check,
    template_from_messages,
    verdict_family,
)

SOURCES = ("Bundled example", "Paste JSON", "Upload a file")
EXAMPLE = ui.EXAMPLES_DIR / "neuronpedia_spot_check.json"
JUDGE_STATE = "spot_judge"

ui.page_setup(
    "Spot-check",
    "🕵️",
    state={
        "spot_source": SOURCES[0] if EXAMPLE.exists() else SOURCES[1],
        "spot_pasted": "",
        "spot_runs": 5,
        "spot_tolerance": 0.05,
        "spot_new_explanations": "",
        "spot_rescored": None,
    },
)

st.title("Spot-check claimed scores")
st.caption(
    "For moderators: load a feature as Neuronpedia's API returns it. Every score shown beside an explanation "
    "(recall_alt, eleuther_fuzz, eleuther_recall, eleuther_embedding) is re-derived at once from the judgments "
    "stored with it, and can be re-scored by a judge of your choice on the same examples. The evidence shows "
    "where each explanation fails."
)
with st.expander("How a claim is checked"):
    st.markdown(
        "1. **Derived**: the score's `jsonDetails` hold every judgment it was computed from. The protocol's own "
        "arithmetic must give the claimed value exactly; if it does not, the claim *contradicts its details*, "
        "whatever else is said. eleuther_fuzz and eleuther_recall leave failed batches out, as Neuronpedia does.\n"
        "2. **Re-scored** (on request): the same protocol on the same examples, by the judge you choose: recall_alt "
        "from the messages stored with the score, delphi's fuzz and detection with the same highlighting, "
        "batches and parsing, run k times because their judge samples at temperature 1 (the claim then agrees "
        "when it lies within the mean ± 2 sd, widened by the tolerance). eleuther_embedding uses the embedding "
        "model shipped here.\n"
        "3. **Verdict**: a re-score made by another judge model, or with our prompt instead of the original, "
        "reads *(methods differ: …)*, tinted amber: the gap then measures the methods as much as the explanation."
        "\n\nWhat can and cannot be reproduced is in docs/scorers.md."
    )

source = st.radio("Feature from", SOURCES, horizontal=True, key="spot_source")


@st.cache_data(show_spinner=False, max_entries=16)
def _parse(text: str, name: str) -> NeuronpediaFeature:
    return parse_feature_text(text, name)


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


feature: NeuronpediaFeature | None = None
feature_text = ""
try:
    if source == SOURCES[0]:
        if EXAMPLE.exists():
            feature_text = EXAMPLE.read_text(encoding="utf-8")
            feature = _parse(feature_text, EXAMPLE.name)
        else:
            st.error(f"The bundled example {EXAMPLE.name} is missing; paste or upload a feature instead.")
    elif source == SOURCES[1]:
        feature_text = st.text_area(
            "Feature JSON",
            key="spot_pasted",
            height=200,
            placeholder='{"modelId": "...", "explanations": [{"description": "...", "scores": [...]}], '
            '"activations": [...]}',
            help="The JSON of Neuronpedia's GET /api/feature/{model}/{layer}/{index}. Only JSON is read here.",
        )
        pasted = feature_text.strip()
        if pasted and pasted[0] not in "[{" and "\n" not in pasted:
            raise ScoringInputError(
                "the pasted text is not JSON. A file path is not opened here: paste the feature's JSON "
                "(or upload the file)"
            )
        if pasted:
            feature = _parse(feature_text, "pasted feature")
        else:
            st.info("Paste a feature's JSON: its explanations with their scores, and its activations.")
    else:
        upload = st.file_uploader("Feature file (JSON)", type=["json"], key="spot_upload")
        if upload is not None:
            try:
                feature_text = upload.getvalue().decode("utf-8")
            except UnicodeDecodeError:
                raise ScoringInputError(f"{upload.name} is not UTF-8 text; save it as UTF-8 JSON") from None
            feature = _parse(feature_text, upload.name)
except ScoringInputError as exc:
    st.error(f"Could not read the feature: {exc}")
    feature = None


def _judge_options() -> list[str]:
    """Specs that can answer the protocols' chat requests: local first, then API models and typed specs."""
    judges = [spec for spec in ui.simulator_options() if spec.split(":", 1)[0] not in ("lexical", "embedding")]
    return sorted(judges, key=lambda spec: spec != "local")


def _prompt_templates() -> dict[str, Template]:
    templates = {}
    for kind in TEMPLATE_KINDS:
        upload = st.session_state.get(f"spot_prompt_{kind}")
        if upload is not None:
            templates[kind] = template_from_messages(json.loads(upload.getvalue().decode("utf-8")), kind)
    return templates


def _show_check(check: FeatureCheck) -> None:
    flagged = [claim for claim in check.claims if claim.verdict in FLAGGED]
    across = [claim for claim in check.claims if verdict_family(claim.verdict).endswith("(methods differ)")]
    claimed = [claim for claim in check.claims if claim.claimed is not None]
    if flagged:
        st.error(
            f"{len(flagged)} of {len(claimed)} claims are refuted: "
            + "; ".join(f"“{claim.explanation}” ({claim.type}): {claim.verdict}" for claim in flagged)
        )
    elif claimed:
        st.success(f"None of the {len(claimed)} claims is refuted by its details or by a like-for-like re-score.")
    if across:
        st.warning(
            f"{len(across)} re-scores were made by another judge model or prompt than the claim: those verdicts "
            "compare methods as much as explanations."
        )
    frame = viz.claims_frame([check])
    st.dataframe(
        viz.claims_table(frame.drop(columns=["feature"])),
        hide_index=True,
        key="spot_claims_table",
        column_config={"reason": st.column_config.TextColumn("reason", width="large")},
    )
    st.download_button(
        "Download the check (JSON)",
        json.dumps(check.to_dict(), indent=2, allow_nan=False),
        "spot_check.json",
        "application/json",
        on_click="ignore",
        key="spot_download",
    )
    st.subheader("Evidence per claim")
    st.caption(
        "Per claim: the examples judged wrongly (tokens coloured by activation; tokens the judge saw highlighted "
        "are outlined), failed calls and dropped batches, from the stored judgments and from the re-score."
    )
    for position, claim in enumerate(check.claims):
        evidence = viz.claim_evidence(claim)
        title = f"{claim.explanation} · {claim.type or 'no claim'} · {claim.verdict}"
        with st.expander(title, expanded=claim.verdict in FLAGGED):
            st.markdown(claim.reason or "—")
            notes = [*(claim.derivation.notes if claim.derivation else [])]
            notes += claim.rescore.notes if claim.rescore else []
            for note in notes:
                st.caption(note)
            if claim.derivation is not None and claim.derivation.alternatives:
                st.caption(
                    "Other readings of the stored details: "
                    + "; ".join(f"{value:.4g} if {label}" for label, value in claim.derivation.alternatives)
                )
            if not evidence:
                st.caption("No per-example judgments for this claim.")
                continue
            tabs = st.tabs([f"{'Stored judgments' if name == 'stored' else 'Re-score'}" for name in evidence])
            for tab, (name, judged) in zip(tabs, evidence.items(), strict=True):
                with tab:
                    st.markdown(viz.evidence_summary(judged))
                    st.dataframe(
                        viz.evidence_table(viz.evidence_frame(judged)),
                        hide_index=True,
                        key=f"spot_evidence_{position}_{name}",
                        column_config={"text": st.column_config.TextColumn("text", width="large")},
                    )
                    st.html(viz.evidence_html(judged))


if feature is not None:
    st.success(
        f"Loaded {feature.name}: {len(feature.explanations)} explanations, "
        f"{sum(len(item.claims) for item in feature.explanations)} claimed scores, {len(feature.rows)} activation rows"
    )
    st.markdown(f"**Feature:** {feature.identity or 'not named in the input (no model / layer / index)'}")
    for problem in feature.problems:
        st.warning(problem)

    with st.form("spot_form"):
        st.markdown("**Re-score like with like**")
        judges = _judge_options()
        if st.session_state.get(JUDGE_STATE) not in judges:
            st.session_state.pop(JUDGE_STATE, None)
        left, middle, right = st.columns(3)
        left.selectbox(
            "Judge",
            judges,
            key=JUDGE_STATE,
            help="Answers the protocols' requests: local (embedded, offline, the stand-in), an API model (set a key "
            "in the sidebar), or an OpenAI-compatible server such as a local vLLM (set its base URL). A spec typed "
            "in the sidebar with {model}, e.g. openai-compatible:{model}@https://openrouter.ai/api/v1, re-scores "
            "each claim by its own model (key in OPENAI_COMPATIBLE_API_KEY).",
        )
        middle.number_input(
            "Runs of a sampled judge", min_value=1, max_value=20, key="spot_runs",
            help="eleuther_fuzz and eleuther_recall sample at temperature 1: each is re-run this often.",
        )
        right.slider("Tolerance", min_value=0.0, max_value=0.3, step=0.01, key="spot_tolerance",
                     help="How far a claim may lie from a re-score (beyond 2 sd of the runs) and still agree.")
        st.text_area(
            "Also score these explanations (one per line) with the feature's protocols and stored examples",
            key="spot_new_explanations",
            height=80,
        )
        with st.expander("Use the original prompts (a JSON list of chat messages per protocol)"):
            st.caption(
                "Our prompts are our own. Upload a protocol's original prompt as a template to re-score with it; "
                "the verdict then no longer says the prompts differ. Format: docs/scorers.md."
            )
            for kind in TEMPLATE_KINDS:
                st.file_uploader(kind, type=["json"], key=f"spot_prompt_{kind}")
        submitted = st.form_submit_button("Re-score", type="primary")

    fingerprint = _fingerprint(feature_text)
    if submitted:
        spec = str(st.session_state[JUDGE_STATE])
        new = tuple(line.strip() for line in st.session_state["spot_new_explanations"].splitlines() if line.strip())
        try:
            templates = _prompt_templates()
        except (ScoringInputError, ValueError) as exc:
            st.error(f"Could not read a prompt template: {exc}")
            templates = None
        judge: Simulator | str | None = None
        if templates is not None and MODEL_PLACEHOLDER in spec:
            judge = spec  # one judge per claim model, built by the check (keys from the environment)
        elif templates is not None:
            try:
                judge = ui.load_simulator(spec)
            except ScoringInputError as exc:
                st.error(f"Judge {spec!r}: {exc}")
        if judge is not None and templates is not None:
            options = SpotCheckOptions(
                rescore=True,
                judge=judge,
                runs=int(st.session_state["spot_runs"]),
                tolerance=float(st.session_state["spot_tolerance"]),
                prompts=templates,
                explanations=new,
                cache=ui.simulation_cache(),
            )
            loaded = feature
            rescored = ui.run_with_progress_bar(
                f"Re-scoring with {spec}…",
                lambda progress: spot_check(loaded, options, progress=progress),
                action="re-score",
                activity="Re-scoring",
            )
            if rescored is not None:
                st.session_state["spot_rescored"] = {"fingerprint": fingerprint, "check": rescored, "judge": spec}

    stored: dict[str, Any] | None = st.session_state.get("spot_rescored")
    if stored is not None and stored["fingerprint"] == fingerprint:
        st.header("Claims, derived and re-scored")
        st.caption(f"Re-scored with `{stored['judge']}`.")
        _show_check(stored["check"])
    else:
        st.header("Claims, derived from their details")
        _show_check(spot_check(feature))
