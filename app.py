"""Score page: load activation texts, enter or generate candidate explanations, score and compare them.

Run with ``streamlit run app.py``. The page only calls `scoring`; every number
shown comes from `scoring.rank_with_scorers`, every generated candidate from
`scoring.generate_explanations`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import streamlit as st

import dashboard as ui
from scoring import ScoringInputError, default_simulator_spec, viz
from scoring.textformat import explanations_from_object, new_explanations, parse_explanation_lines

SOURCES = ("Bundled example", "Paste", "Upload a file")
DEFAULT_EXAMPLE = "fast_animals.json"
PASTE_PLACEHOLDER = (
    "Paste JSON (Neuronpedia, OpenAI neuron records, a list of {tokens, values}), a CSV/TSV with columns "
    "sequence,token,activation, or one 'token<TAB>activation' per line with a blank line between "
    "sequences:\n\nthe\t0\n quick\t0.5\n fox\t7\n\n spotted\t0\n leopard\t8"
)

ui.page_setup("Score")


def example_paths() -> dict[str, Path]:
    return {path.name: path for path in ui.list_examples()}


def example_explanations(name: str) -> str:
    path = example_paths().get(name)
    if path is None:
        return ""
    try:
        candidates = explanations_from_object(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return ""
    return "\n".join(candidate.text for candidate in candidates)


def use_example_explanations() -> None:
    st.session_state["explanations_text"] = example_explanations(st.session_state.get("example_name", ""))


def switch_source() -> None:
    """The example's explanations belong to the example: leaving it empties the list while it still holds
    them (edited ones stay), and coming back to it fills an empty list with them."""
    # The example box is not drawn under Paste or Upload, so its choice is gone: the page falls back as below.
    name = st.session_state.get("example_name")
    example_text = example_explanations(name if name in example_paths() else DEFAULT_EXAMPLE)
    current = str(st.session_state.get("explanations_text", ""))
    if st.session_state.get("source_kind") == SOURCES[0]:
        if not current.strip():
            st.session_state["explanations_text"] = example_text
    elif parse_explanation_lines(current) == parse_explanation_lines(example_text):
        st.session_state["explanations_text"] = ""
        st.session_state["generated_explanations"] = []


def use_file_explanations(texts: list[str]) -> None:
    st.session_state["explanations_text"] = "\n".join(texts)


def start_from_handed_over_records(records_json: str) -> None:
    """Records built on the Explore page arrive as pasted text, on a clean page.

    The example's explanations and any earlier results belong to other
    activations, and the simulator picked before may be one that cannot run
    here, so the page starts with the default simulator and the explanations
    stored with the records (none, usually).
    """
    st.session_state["source_kind"] = SOURCES[1]
    st.session_state["pasted_text"] = records_json
    try:
        stored = explanations_from_object(json.loads(records_json))
    except json.JSONDecodeError:
        stored = []
    st.session_state["explanations_text"] = "\n".join(candidate.text for candidate in stored)
    st.session_state["score_simulator"] = default_simulator_spec()
    for name in ("score_results", "score_fingerprint"):
        st.session_state.pop(name, None)
    st.session_state["score_results_by_scorer"] = {}
    st.session_state["score_settings"] = {}
    st.session_state["generated_explanations"] = []


handed_over = st.session_state.pop("records_json", None)
if handed_over:
    start_from_handed_over_records(handed_over)

examples = example_paths()
first_example = DEFAULT_EXAMPLE if DEFAULT_EXAMPLE in examples else next(iter(examples), "")
# After the hand-over, which fills some of these keys with the handed-over records.
ui.state_defaults(
    {
        "source_kind": SOURCES[0] if examples else SOURCES[1],
        "example_name": first_example,
        "pasted_text": "",
        "explanations_text": example_explanations(first_example),
        "score_results": None,
        "score_results_by_scorer": {},
        "score_settings": {},
        "generated_explanations": [],
        "generate_n": 3,
    }
)

st.title("Score explanations")
st.caption(
    "Compare candidate explanations of a neuron or SAE latent: a simulator predicts each token's activation "
    "from the explanation alone, and the score is how well that prediction correlates with the real one."
)
with st.expander("About the score"):
    st.markdown(ui.ABOUT_SCORE)

st.header("1 · Activations")
ui.input_limits_widgets()
source = st.radio("Load activations from", SOURCES, horizontal=True, key="source_kind", on_change=switch_source)
loaded: ui.LoadedInput | None = None
try:
    if source == SOURCES[0]:
        if not examples:
            st.error("No bundled examples found in examples/; paste or upload activations instead.")
        else:
            if st.session_state.get("example_name") not in examples:
                st.session_state["example_name"] = first_example
            name = st.selectbox(
                "Example feature",
                list(examples),
                format_func=lambda file_name: ui.example_label(Path(file_name)),
                key="example_name",
                on_change=use_example_explanations,
            )
            loaded = ui.read_input_text(examples[name].read_text(encoding="utf-8"), name)
    elif source == SOURCES[1]:
        text = st.text_area(
            "Activation records", key="pasted_text", height=220, placeholder=PASTE_PLACEHOLDER
        )
        if text.strip():
            loaded = ui.read_input_text(text, "pasted text")
        else:
            st.info("Paste activation records above (the box shows the accepted formats).")
    else:
        upload = st.file_uploader(
            "Activation records file", type=["json", "csv", "tsv", "txt"], key="upload_file"
        )
        if upload is not None:
            loaded = ui.read_upload(upload)
        else:
            st.info("Upload a JSON, CSV/TSV or token<TAB>activation text file.")
except ScoringInputError as exc:
    st.error(f"Could not read the activations: {exc}")
    loaded = None

if loaded is not None:
    feature = f" ({loaded.feature})" if loaded.feature else ""
    st.success(f"Loaded {loaded.name}{feature}: {ui.records_summary(loaded.records)}")
    stored = [candidate.text for candidate in loaded.explanations]
    if stored and source != SOURCES[0]:
        st.button(
            f"Use the {viz.count(len(stored), 'explanation')} stored in the file",
            on_click=use_file_explanations,
            args=(stored,),
            key="use_file_explanations",
        )
    with st.expander("The real activations: histogram, density and the top excerpts"):
        ui.preview_records(loaded, st.session_state.get("score_normalization", "global"), key="score_records_text")

st.header("2 · Explanations and settings")
simulator_column, normalization_column = st.columns([3, 1])
with simulator_column:
    simulator_spec = ui.simulator_select("score_simulator")
with normalization_column:
    # Outside the form: the negative-activation note in step 1 follows it at once.
    normalization = ui.normalization_select("score_normalization")
generate_clicked = False
if ui.can_write_explanations(simulator_spec):
    count_column, button_column = st.columns([1, 3], vertical_alignment="bottom")
    with count_column:
        n_candidates = st.number_input("Candidates", min_value=1, max_value=10, step=1, key="generate_n")
    with button_column:
        generate_clicked = st.button("Generate explanations", key="generate_button", help=ui.GENERATE_HELP)
else:
    st.caption(
        f"`{simulator_spec}` scores explanations but does not write them. To generate candidates, pick a "
        f"simulator that writes: {ui.WRITERS}."
    )
if generate_clicked:
    if loaded is None:
        st.error("Load activations first (step 1): the simulator writes explanations from them.")
    else:
        generated = ui.generate_candidates(
            loaded.records, simulator_spec, int(n_candidates), st.session_state.get("score_use_cache", True)
        )
        if generated is not None:
            current = parse_explanation_lines(st.session_state.get("explanations_text", ""))
            added = new_explanations(current, [candidate.text for candidate in generated])
            # The list widget is drawn below, so its text can still be changed in this run.
            st.session_state["explanations_text"] = "\n".join([*current, *added])
            marks = st.session_state["generated_explanations"]
            st.session_state["generated_explanations"] = [*marks, *(text for text in added if text not in marks)]
            ui.show_generated(generated, added, key="score_generated_table")

with st.form("score_form"):
    st.text_area(
        "Candidate explanations, one per line",
        key="explanations_text",
        height=150,
        placeholder="fast animals\nanimals that run quickly\nthe letter f",
    )
    settings = ui.scoring_settings(
        "score",
        len(loaded.records) if loaded else 1,
        include_simulator=False,
        several_scorers=True,
        include_normalization=False,
    )
    settings["simulator"] = simulator_spec
    settings["normalization"] = normalization
    submitted = st.form_submit_button("Score", type="primary")

explanations = parse_explanation_lines(st.session_state.get("explanations_text", ""))
if loaded is not None and explanations:
    ui.show_estimate(simulator_spec, explanations, loaded.records, settings)

# "Score the chance level" under results scored without it: score again, the chance level included.
chance_requested = bool(st.session_state.pop("score_chance_requested", False))
if chance_requested:
    settings["chance_level"] = True
if submitted or chance_requested:
    if loaded is None:
        st.error("Load activations first (step 1): pick an example, paste records or upload a file.")
    elif not explanations:
        st.error("Enter at least one explanation, one per line, then press Score.")
    else:
        started = time.perf_counter()
        ranked = ui.run_scorers(explanations, loaded.records, settings)
        if ranked is not None:
            st.session_state["score_results"] = ranked[settings["scorer"]]
            st.session_state["score_results_by_scorer"] = ranked
            st.session_state["score_settings"] = {
                **{key: value for key, value in settings.items() if key != "scorers"},
                "scorers": ", ".join(settings["scorers"]),
                "records": loaded.name,
                "records_sha256": loaded.fingerprint,
                "wall_seconds": time.perf_counter() - started,
            }
            st.session_state["score_fingerprint"] = ui.run_fingerprint(loaded, settings, explanations)

results = st.session_state.get("score_results")
if results:
    changed = ui.stale_parts(
        st.session_state.get("score_fingerprint"), ui.run_fingerprint(loaded, settings, explanations)
    )
    st.header("3 · Results (stale)" if changed else "3 · Results")
    ui.warn_if_stale(changed, st.session_state.get("score_settings", {}).get("records", "other input"))
    generated_texts = st.session_state.get("generated_explanations", [])
    by_scorer = st.session_state.get("score_results_by_scorer") or {}
    if len(by_scorer) > 1:
        ui.render_scorer_comparison(by_scorer, "score", generated_texts)
        st.caption(f"Everything below is for the first scorer, `{results[0].scorer}`.")
    ui.render_results(
        results, "score", st.session_state.get("score_settings"), generated_texts, offer_chance_level=not changed
    )
    ui.render_judgements(by_scorer, "score")
