"""Explore page: run a real model on your text, find the neurons that fire, see their top corpus windows.

The subject model is loaded once per server (`st.cache_resource`); every number
comes from `scoring.subjects`. "Score explanations for this neuron" puts the
neuron's records, as Neuronpedia-format JSON text, into
``st.session_state["records_json"]`` for the Score page.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

import dashboard as ui
from scoring import ScoringInputError, subjects, viz

RECORDS_STATE = "records_json"
DEFAULT_TEXT = (
    "The quick brown fox jumps over the lazy dog. In 1865 the ship sailed from Liverpool to New York, "
    "and the captain wrote: 'Fair winds, calm seas.'"
)
KIND_LABELS = {"mlp": "MLP neurons", "resid": "residual-stream dimensions"}

ui.page_setup("Explore")
st.title("Explore a subject model's neurons")
st.caption(
    "Type a text, pick a layer: the model runs on CPU and shows which neurons fire on which tokens. "
    "Pick a neuron to see the corpus windows where it fires most, then score explanations of it."
)

st.session_state.setdefault("explore_hits", None)


@st.cache_resource(show_spinner="Loading the subject model (the very first time converts it: a minute or more)…")
def subject_model(name: str) -> subjects.SubjectModel:
    return subjects.load_subject(name)


@st.cache_resource(show_spinner=False)
def default_corpus() -> subjects.Corpus:
    return subjects.default_corpus()


@st.cache_data(show_spinner="Recomputing the neuron on its windows…", max_entries=64)
def neuron_feature(
    _subject: subjects.SubjectModel, model: str, layer: int, neuron: int, kind: str, top: int, random: int
) -> dict[str, Any]:
    corpus = default_corpus()
    index = subjects.open_index(_subject, corpus)
    records = index.records(_subject, layer, neuron, kind=kind, top=top, random=random)
    return subjects.feature_json(records, model=model, layer=layer, index=neuron, kind=kind, corpus=corpus.name)


def heatmap(captured: subjects.TextActivations, layer: int, hits: list[subjects.UnitHit]) -> go.Figure:
    values = captured.layer_values(layer)
    labels = [
        f"{position}:{viz.shorten(token.replace(chr(10), '⏎'), 12)}" for position, token in enumerate(captured.tokens)
    ]
    figure = go.Figure(
        go.Heatmap(
            z=[values[:, hit.index].tolist() for hit in hits],
            x=labels,
            y=[f"#{hit.index}" for hit in hits],
            colorscale="Oranges",
            hovertemplate="neuron %{y}<br>token %{x}<br>activation %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        height=120 + 24 * len(hits),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category"},
    )
    return figure


try:
    model_name = st.selectbox(
        "Subject model",
        list(subjects.SUBJECT_MODELS),
        format_func=lambda name: f"{name} — {subjects.SUBJECT_MODELS[name].description}",
    )
    subject = subject_model(model_name)
except ScoringInputError as exc:
    st.error(str(exc))
    st.stop()

with st.form("explore_form"):
    st.text_area("Text", DEFAULT_TEXT, key="explore_text", height=110)
    left, middle, right = st.columns(3)
    left.slider("Layer", 0, subject.n_layers - 1, min(6, subject.n_layers - 1), key="explore_layer")
    middle.radio("Units", list(KIND_LABELS), format_func=KIND_LABELS.get, key="explore_kind", horizontal=True)
    right.number_input("Top units", 1, 50, 10, key="explore_top")
    run = st.form_submit_button("Run the model", type="primary")

if run:
    try:
        captured, hits = subject.top_units(
            st.session_state["explore_text"],
            int(st.session_state["explore_layer"]),
            int(st.session_state["explore_top"]),
            st.session_state["explore_kind"],
        )
    except ScoringInputError as exc:
        st.error(str(exc))
    else:
        st.session_state["explore_hits"] = (captured, hits, int(st.session_state["explore_layer"]))

if st.session_state["explore_hits"] is None:
    st.info("Press **Run the model** to see which units fire on the text.")
    st.stop()

captured, hits, layer = st.session_state["explore_hits"]
kind = captured.kind
st.subheader(f"Top {KIND_LABELS[kind]} of layer {layer}")
st.plotly_chart(heatmap(captured, layer, hits), width="stretch")
st.dataframe(
    [{"unit": hit.index, "max activation": round(hit.max_activation, 4), "at token": hit.token} for hit in hits],
    hide_index=True,
    width="stretch",
)

choices = [hit.index for hit in hits]
neuron = st.selectbox("Unit to inspect", choices, format_func=lambda index: f"#{index}", key="explore_neuron")
other = st.number_input(
    f"…or any unit number (0..{subject.width(kind) - 1}; -1 to use the one above)",
    -1,
    subject.width(kind) - 1,
    -1,
    key="explore_other",
)
if other >= 0:
    neuron = int(other)
values = captured.unit(layer, int(neuron))
st.markdown(
    viz.tokens_html(captured.tokens, values, vmax=max(max(values), 1e-6)),
    unsafe_allow_html=True,
)

st.subheader(f"Unit #{neuron}: top corpus windows")
try:
    corpus = default_corpus()
except ScoringInputError as exc:
    st.warning(str(exc))
    st.stop()
if not (subjects.index_directory(subject, corpus) / "meta.json").exists():
    st.write(
        f"The corpus ({corpus.name}) has not been indexed for {subject.name} yet. One pass over it stores "
        "every unit's maximum per window; after that, any unit's top windows come back at once."
    )
    if st.button("Index the corpus"):
        bar = st.progress(0.0, text="indexing…")

        def show_progress(done: int, total: int, message: str) -> None:
            # open_index wants a callback returning None; bar.progress returns the element.
            bar.progress(done / max(total, 1), text=message)

        subjects.open_index(subject, corpus, progress=show_progress)
        st.rerun()
    st.stop()

left, right = st.columns(2)
n_top = int(left.number_input("Top windows", 1, 50, 10, key="explore_n_top"))
n_random = int(right.number_input("Random windows", 0, 50, 5, key="explore_n_random"))
feature = neuron_feature(subject, subject.name, layer, int(neuron), kind, n_top, n_random)
window_records = feature["activations"]
vmax = max((max(item["values"]) for item in window_records), default=1.0) or 1.0
for item in window_records:
    st.caption(f"{item['sample']} · window {item['window']} · max {item['maxValue']:.3f}")
    st.markdown(viz.tokens_html(item["tokens"], item["values"], vmax=vmax), unsafe_allow_html=True)

if st.button("Score explanations for this neuron", type="primary"):
    st.session_state[RECORDS_STATE] = json.dumps(feature, ensure_ascii=False)
    try:
        st.switch_page("app.py")
    except StreamlitAPIException:
        # Run as a lone script (not under app.py) there is no Score page to switch to.
        st.success("The records are ready: open the Score page from the sidebar.")
