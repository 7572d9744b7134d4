"""Spot-check page (moderators): re-score a feature's explanations and flag claimed scores that disagree.

Load a Neuronpedia-style feature (activations plus ``explanations`` with their
claimed scores), re-score every explanation through `scoring`, and compare the
claim with the re-score's bootstrap interval.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import streamlit as st

import dashboard as ui
from scoring import ScoringInputError, viz
from scoring.api import sort_results

SOURCES = ("Bundled example", "Paste JSON", "Upload a file")
EXAMPLE = ui.EXAMPLES_DIR / "neuronpedia_spot_check.json"

ui.page_setup(
    "Spot-check",
    "🕵️",
    state={
        "spot_source": SOURCES[0] if EXAMPLE.exists() else SOURCES[1],
        "spot_pasted": "",
        "spot_results": None,
        "spot_claims": None,
        "spot_settings": {},
        "spot_tolerance": 0.05,
    },
)

st.title("Spot-check claimed scores")
st.caption(
    "For moderators: load a feature with its explanations and the scores claimed for them, re-score each "
    "explanation, and see which claims fall outside the re-score's 95% interval."
)
with st.expander("How disagreements are flagged"):
    st.markdown(
        "A claim **agrees** when it lies inside the re-score's bootstrap interval widened by the tolerance "
        "on each side (or within the tolerance of the score when there is no interval).\n\n"
        "A claim is only comparable with a re-score made **the same way**: the same kind of score (Neuronpedia's "
        "`oai_token-act-pair` is the `simulation` scorer here) with the same simulator model. When the claim's "
        "method differs from the re-score's, or the claim does not say, the verdict reads *(methods differ)* "
        "and is tinted amber instead of red: the gap then measures the difference between the methods as much "
        "as the claim, so it is a reason to re-score with the claim's model (API models appear once a key is set "
        "in the sidebar), not to reject the submission.\n\n"
        "Input: a JSON object with `activations: [{tokens, values}]` (or any format the Score page reads) "
        "and `explanations`: a list of strings, or of objects with `description` and a claimed `score`, "
        "or Neuronpedia's `scores: [{value, explanationScoreTypeName}]`."
    )
    st.markdown(ui.ABOUT_SCORE)

ui.input_limits_widgets()
source = st.radio("Feature from", SOURCES, horizontal=True, key="spot_source")
loaded: ui.LoadedInput | None = None
try:
    if source == SOURCES[0]:
        if EXAMPLE.exists():
            loaded = ui.read_input_text(EXAMPLE.read_text(encoding="utf-8"), EXAMPLE.name)
        else:
            st.error(f"The bundled example {EXAMPLE.name} is missing; paste or upload a feature instead.")
    elif source == SOURCES[1]:
        text = st.text_area(
            "Feature JSON",
            key="spot_pasted",
            height=200,
            placeholder='{"explanations": [{"description": "fast animals", "score": 0.62}], '
            '"activations": [{"tokens": ["the", " fox"], "values": [0, 8]}]}',
        )
        if text.strip():
            loaded = ui.read_input_text(text, "pasted feature")
        else:
            st.info("Paste a feature export: activations plus explanations with their claimed scores.")
    else:
        upload = st.file_uploader("Feature file (JSON)", type=["json"], key="spot_upload")
        if upload is not None:
            loaded = ui.read_upload(upload)
except ScoringInputError as exc:
    st.error(f"Could not read the feature: {exc}")
    loaded = None

if loaded is not None and not loaded.explanations:
    st.error(
        'No explanations found in this feature: add a top-level "explanations" list (strings, or objects '
        'with "description" and a claimed "score"), or use the Score page to enter explanations by hand.'
    )
    loaded = None

if loaded is not None:
    st.success(f"Loaded {loaded.name}: {ui.records_summary(loaded.records)}")
    st.markdown(f"**Feature:** {loaded.feature or 'not named in the input (no model / layer / index)'}")
    claims_frame = pd.DataFrame(
        [
            {
                "explanation": candidate.text,
                "explainer": candidate.explainer_model,
                "claimed score": viz.format_number(candidate.claimed_score),
                "score type": candidate.score_type,
                "scored with": candidate.score_model,
            }
            for candidate in loaded.explanations
        ]
    )
    st.dataframe(claims_frame, hide_index=True, key="spot_claims_table")
    with st.expander("The real activations: histogram, density and the top excerpts"):
        ui.preview_records(loaded, st.session_state.get("spot_normalization", "global"), key="spot_records_text")

    spec = ui.simulator_select("spot_simulator")
    with st.form("spot_form"):
        settings = ui.scoring_settings("spot", len(loaded.records), include_simulator=False)
        settings["simulator"] = spec
        tolerance = st.slider(
            "Tolerance around the interval",
            min_value=0.0,
            max_value=0.5,
            step=0.01,
            key="spot_tolerance",
            help="How far outside the re-score's 95% interval a claim may lie before it is flagged.",
        )
        submitted = st.form_submit_button("Re-score", type="primary")
    texts = [candidate.text for candidate in loaded.explanations]
    ui.show_estimate(spec, texts, loaded.records, settings)
    if submitted:
        started = time.perf_counter()
        results = ui.run_ranking(texts, loaded.records, settings)
        if results is not None:
            by_text = {result.explanation: result for result in results}
            ordered = [by_text[text] for text in texts if text in by_text]
            st.session_state["spot_results"] = ordered
            st.session_state["spot_candidates"] = [
                candidate for candidate in loaded.explanations if candidate.text in by_text
            ]
            st.session_state["spot_claims"] = [
                candidate.claimed_score for candidate in st.session_state["spot_candidates"]
            ]
            st.session_state["spot_settings"] = {
                **settings,
                "records": loaded.name,
                "wall_seconds": time.perf_counter() - started,
            }
            st.session_state["spot_fingerprint"] = ui.run_fingerprint(loaded, settings, texts)

results = st.session_state.get("spot_results")
claims = st.session_state.get("spot_claims")
candidates = st.session_state.get("spot_candidates")
if results and claims is not None and len(claims) == len(results):
    current = ui.run_fingerprint(loaded, settings, texts) if loaded is not None else {}
    changed = ui.stale_parts(st.session_state.get("spot_fingerprint"), current)
    st.header("Verdicts (stale)" if changed else "Verdicts")
    ui.warn_if_stale(changed, st.session_state.get("spot_settings", {}).get("records", "other input"), "Re-score")
    tolerance = float(st.session_state.get("spot_tolerance", 0.05))
    verdicts = viz.spot_check_frame(claims, results, tolerance, candidates)
    flagged = int((verdicts["verdict"] == "disagrees").sum())
    across = int((verdicts["verdict"] == "disagrees (methods differ)").sum())
    like = int(verdicts["verdict"].isin(["agrees", "disagrees"]).sum())
    with_claims = int((verdicts["verdict"] != "no claim").sum())
    if flagged:
        st.error(f"{flagged} of {like} claims made the same way as the re-score disagree with it.")
    elif like:
        st.success(f"All {like} claims made the same way as the re-score agree with it.")
    if with_claims > like:
        st.warning(
            f"{with_claims - like} of {with_claims} claims were made by another method or model than this "
            f"re-score (or do not say how), and {across} of them fall outside its interval. Those verdicts compare "
            "methods, not just explanations: re-score with the claim's model before judging them."
        )
    if not with_claims:
        st.info("No explanation in this feature claims a score; the re-scores are below.")
    st.dataframe(
        viz.highlight_verdicts(verdicts),
        hide_index=True,
        key="spot_verdicts",
        column_config={"comparison": st.column_config.TextColumn("comparison", width="large")},
    )
    not_scored = [result for result in results if not math.isfinite(result.score)]
    if not_scored:
        st.warning(f"{viz.count(len(not_scored), 'explanation')} could not be scored; see the reasons below.")
    st.header("Re-scores in detail")
    ui.render_results(sort_results(list(results)), "spot", st.session_state.get("spot_settings"))
