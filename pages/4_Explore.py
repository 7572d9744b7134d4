"""Explore page: search neurons and SAE latents by text, open one, see its corpus windows, score it.

The subject model and the SAE are loaded once per server (`st.cache_resource`);
every number comes from `scoring.subjects`. "Score explanations for this
latent/neuron" puts the unit's records, as Neuronpedia-format JSON text, into
``st.session_state["records_json"]`` for the Score page.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

import dashboard as ui
from scoring import ScoringInputError, subjects, viz
from scoring.subjects import latents
from scoring.subjects.sae import SparseAutoencoder, load_sae

RECORDS_STATE = "records_json"
DEFAULT_TEXT = "My favorite color is red. In 1865 the ship sailed from Liverpool to New York."
UNIT_LABELS = {"latent": "SAE latents", "neuron": "MLP neurons"}
NORMALIZE_LABELS = {"none": "raw activations", "layer": "per layer (÷ the layer's RMS on this text)"}
DEDUP_LABELS = {"embedding": "same top token + similar context (MiniLM cosine ≥ 0.9)", "lexical": "same words only"}
TEXT_SEPARATOR = "---"
# The toolbar floats over the top of a plot; the heatmaps are read, not zoomed, so it is switched off.
PLOT_CONFIG = {"displayModeBar": False}

ui.page_setup("Explore")
st.title("Explore neurons and SAE latents")
st.caption(
    "Search a text for the SAE latents and MLP neurons that fire on it, open one to see the corpus windows "
    "where it fires most, test it on your own text, and score explanations of it."
)

ui.state_defaults({"explore_hits": None, "explore_unit": None, "explore_corpus": None, "explore_sort_token": -1})


@st.cache_resource(show_spinner="Loading the subject model (the very first time converts it: a minute or more)…")
def subject_model(name: str) -> subjects.SubjectModel:
    return subjects.load_subject(name)


@st.cache_resource(show_spinner="Loading the SAE…")
def sparse_autoencoder(path: str) -> SparseAutoencoder:
    return load_sae(path)


@st.cache_resource(show_spinner="Reading the bundled corpus…")
def default_corpus() -> subjects.Corpus:
    return subjects.default_corpus()


def progress_bar(text: str) -> Any:
    bar = st.progress(0.0, text=text)

    def show(done: int, total: int, message: str) -> None:
        # the index wants a callback returning None; bar.progress returns the element
        bar.progress(min(1.0, done / max(total, 1)), text=message)

    return show


def heatmap(tokens: list[str], rows: list[list[float]], labels: list[str], what: str) -> go.Figure:
    columns = [f"{position}:{viz.shorten(token.replace(chr(10), '⏎'), 12)}" for position, token in enumerate(tokens)]
    figure = go.Figure(
        go.Heatmap(
            z=rows,
            x=columns,
            y=labels,
            colorscale="Oranges",
            hovertemplate=f"{what} %{{y}}<br>token %{{x}}<br>activation %{{z:.3f}}<extra></extra>",
        )
    )
    figure.update_layout(
        height=90 + 24 * len(rows),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category"},
    )
    return figure


def hit_label(hit: latents.SearchHit) -> str:
    return f"L{hit.layer} {hit.unit} #{hit.index}"


# --------------------------------------------------------------------------- model, SAE, corpus

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

shipped = latents.default_sae_path(subject.name)
with st.expander("SAE and corpus", expanded=False):
    sae_path = st.text_input(
        "SAE folder (SAELens format: cfg.json + sae_weights.safetensors); empty for neurons only",
        str(shipped) if shipped else "",
        key="explore_sae_path",
    )
    latent_windows = int(
        st.number_input(
            "Windows to index for the SAE's latents",
            16,
            8192,
            latents.LATENT_MAX_WINDOWS,
            step=64,
            key="explore_latent_windows",
            help="More windows find rarer latents' top examples; indexing takes about 1 s per 8 windows on 2 cores.",
        )
    )
    source = st.radio(
        "Corpus the top windows come from",
        ["bundled", "mine"],
        format_func={"bundled": "the bundled World Factbook corpus", "mine": "my own texts"}.get,
        horizontal=True,
        key="explore_corpus_source",
    )
    if source == "mine":
        pasted = st.text_area(
            f"Texts to index (separate texts with a line holding only {TEXT_SEPARATOR})", key="explore_corpus_text"
        )
        uploads = st.file_uploader("…or upload .txt files", type=["txt"], accept_multiple_files=True)
        if st.button("Use these texts", key="explore_corpus_use"):
            texts = [part.strip() for part in pasted.split(f"\n{TEXT_SEPARATOR}\n")] if pasted.strip() else []
            texts += [upload.getvalue().decode("utf-8", errors="replace") for upload in uploads or []]
            try:
                st.session_state["explore_corpus"] = subjects.corpus_from_texts(texts, f"my texts ({len(texts)})")
            except ScoringInputError as exc:
                st.error(str(exc))
    elif st.session_state["explore_corpus"] is not None:
        st.session_state["explore_corpus"] = None

sae: SparseAutoencoder | None = None
if sae_path.strip():
    try:
        sae = sparse_autoencoder(str(ui.allowed_sae_folder(sae_path, shipped)))
        latents.check_sae_fits(subject, sae)
    except ScoringInputError as exc:
        st.error(f"SAE: {exc}")
        sae = None
corpus: subjects.Corpus = st.session_state["explore_corpus"] or default_corpus()
sae_note = (
    f"SAE **{sae.name}** ({sae.d_sae} latents at `{sae.config.hook_name}`, {sae.config.architecture})"
    if sae
    else "no SAE"
)
st.caption(f"{sae_note} · corpus **{viz.shorten(corpus.name, 60)}** ({len(corpus.documents)} documents)")

# --------------------------------------------------------------------------- search


@st.cache_data(show_spinner="Running the model on the text…", max_entries=32)
def search(
    _subject: subjects.SubjectModel,
    _sae: SparseAutoencoder | None,
    key: tuple[Any, ...],
    text: str,
    units: tuple[str, ...],
    layers: tuple[int, ...],
    normalize: str,
    position: int | None,
    top: int,
) -> tuple[list[str], list[latents.SearchHit]]:
    return latents.search_units(
        _subject,
        text,
        layers=list(layers),
        saes=[_sae] if _sae else [],
        units=units,
        normalize=normalize,
        token_position=position,
        top=top,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def layer_densities(_index: subjects.ActivationIndex, index_key: str, kind: str, layer: int) -> np.ndarray:
    """Share of the indexed windows in which each unit of a layer fires."""
    table = np.asarray(_index.maxima[kind])
    return (table > 0).mean(axis=0) if kind == latents.LATENT else (table[:, layer, :] > 0).mean(axis=0)


def hit_densities(hits: list[latents.SearchHit]) -> dict[str, float | None]:
    """Each hit's density over its corpus index (None while that index is not built)."""
    found: dict[str, subjects.ActivationIndex | None] = {"latent": None, "neuron": None}
    if sae is not None and latents.latent_index_exists(subject, sae, corpus, latent_windows):
        found["latent"] = latents.open_latent_index(subject, sae, corpus, max_windows=latent_windows)
    if (subjects.index_directory(subject, corpus) / "meta.json").exists():
        found["neuron"] = subjects.open_index(subject, corpus)
    densities: dict[str, float | None] = {}
    for hit in hits:
        index = found[hit.unit]
        kind = latents.LATENT if hit.unit == "latent" else "mlp"
        densities[hit_label(hit)] = (
            None if index is None else float(layer_densities(index, str(index.directory), kind, hit.layer)[hit.index])
        )
    return densities


st.subheader("Search by text")
with st.form("explore_form"):
    st.text_area("Text", DEFAULT_TEXT, key="explore_text", height=90)
    left, middle, right, dense, far = st.columns([2, 3, 3, 2, 1])
    unit_choices = ["latent", "neuron"] if sae else ["neuron"]
    left.multiselect(
        "Units", unit_choices, default=unit_choices, format_func=lambda unit: UNIT_LABELS[unit], key="explore_units"
    )
    middle.multiselect(
        "Layers (none = all)",
        list(range(subject.n_layers)),
        default=[],
        key="explore_layers",
        help="Latents show when their SAE's layer is among these.",
    )
    right.radio(
        "Normalize", list(NORMALIZE_LABELS), format_func=lambda name: NORMALIZE_LABELS[name], key="explore_normalize"
    )
    dense.slider(
        "Hide units firing in more than this share of windows",
        1,
        100,
        100,
        format="%d%%",
        key="explore_max_density",
        help="Needs the corpus index of that kind of unit (built when you open one); 100% hides nothing.",
    )
    far.number_input("Top", 1, 100, 15, key="explore_top")
    run = st.form_submit_button("Search", type="primary")

if run:
    st.session_state["explore_sort_token"] = -1
    st.session_state["explore_hits"] = {
        "text": st.session_state["explore_text"],
        "units": tuple(st.session_state["explore_units"]),
        "layers": tuple(st.session_state["explore_layers"]) or tuple(range(subject.n_layers)),
        "normalize": st.session_state["explore_normalize"],
        "top": int(st.session_state["explore_top"]),
        "max_density": int(st.session_state["explore_max_density"]) / 100,
    }

query = st.session_state["explore_hits"]
if query is not None:
    position = int(st.session_state["explore_sort_token"])
    try:
        tokens, hits = search(
            subject,
            sae,
            (subject.name, sae.source if sae else ""),
            query["text"],
            query["units"],
            query["layers"],
            query["normalize"],
            None if position < 0 else position,
            query["top"] * (5 if query["max_density"] < 1 else 1),
        )
    except ScoringInputError as exc:
        st.error(str(exc))
        tokens, hits = [], []
    densities = hit_densities(hits)
    # a unit whose index is not built yet has no known density, and is kept
    hits = [hit for hit in hits if (densities[hit_label(hit)] or 0.0) <= query["max_density"]][: query["top"]]
    if tokens:
        st.selectbox(
            "Sort by token",
            [-1, *range(len(tokens))],
            format_func=lambda i: "the maximum over the text" if i < 0 else f"{i}: {tokens[i]!r}",
            key="explore_sort_token",
        )
    if hits:
        st.plotly_chart(
            heatmap(tokens, [hit.values for hit in hits], [hit_label(hit) for hit in hits], "unit"),
            config=PLOT_CONFIG,
            width="stretch",
        )
        st.dataframe(
            [
                {
                    "unit": hit_label(hit),
                    "activation": round(hit.activation, 4),
                    "score": round(hit.score, 4),
                    "at token": hit.token,
                    "density": "" if densities[hit_label(hit)] is None else f"{densities[hit_label(hit)]:.1%}",
                }
                for hit in hits
            ],
            hide_index=True,
            width="stretch",
        )
        if int(st.session_state.get("explore_pick", 0)) >= len(hits):
            st.session_state["explore_pick"] = 0  # a new search can return fewer hits than the last
        picked = st.selectbox(
            "Open a unit", range(len(hits)), format_func=lambda i: hit_label(hits[i]), key="explore_pick"
        )
        if st.button("Open", key="explore_open"):
            chosen = hits[int(picked)]
            st.session_state["explore_unit"] = (chosen.unit, chosen.layer, chosen.index)
            st.session_state["explore_unit_kind"] = chosen.unit
    elif tokens:
        st.info("No unit of the chosen kinds and layers fires on this text.")
else:
    st.info("Type a text and press **Search** to list the latents and neurons that fire on it.")

# --------------------------------------------------------------------------- one unit

st.divider()
st.subheader("A latent or neuron")
opened = st.session_state["explore_unit"]
kinds = ["latent", "neuron"] if sae else ["neuron"]
if opened is None or opened[0] not in kinds:
    opened = (kinds[0], sae.config.layer if sae else min(6, subject.n_layers - 1), 0)
left, middle, right = st.columns(3)
if st.session_state.get("explore_unit_kind") not in kinds:
    st.session_state["explore_unit_kind"] = opened[0]
unit = left.radio("Unit", kinds, format_func=lambda unit: UNIT_LABELS[unit], horizontal=True, key="explore_unit_kind")
if unit == "latent" and sae is not None:
    layer = sae.config.layer
    middle.number_input("Layer (the SAE's)", layer, layer, layer, disabled=True)
    width = sae.d_sae
else:
    layer = int(
        middle.number_input(
            "Layer", 0, subject.n_layers - 1, int(opened[1]) if opened[0] == unit else min(6, subject.n_layers - 1)
        )
    )
    width = subject.width("mlp")
number = int(right.number_input(f"Number (0..{width - 1})", 0, width - 1, min(int(opened[2]), width - 1)))
st.session_state["explore_unit"] = (unit, layer, number)
title = f"Latent #{number} of {sae.name}" if unit == "latent" and sae else f"Neuron #{number} of layer {layer}"
st.markdown(f"### {title}")

index: subjects.ActivationIndex | None = None
if unit == "latent" and sae is not None:
    if latents.latent_index_exists(subject, sae, corpus, latent_windows):
        index = latents.open_latent_index(subject, sae, corpus, max_windows=latent_windows)
    else:
        st.write(
            f"The corpus has not been indexed for this SAE yet. One pass of the model up to layer {sae.config.layer} "
            f"over {latent_windows} windows stores every latent's maximum per window (a few minutes on "
            "2 cores, once); after that, any latent's top windows come back at once."
        )
        if st.button("Index the corpus for the SAE's latents", type="primary"):
            try:
                latents.open_latent_index(
                    subject, sae, corpus, max_windows=latent_windows, progress=progress_bar("indexing…")
                )
            except ScoringInputError as exc:
                st.error(str(exc))
            else:
                st.rerun()
else:
    if (subjects.index_directory(subject, corpus) / "meta.json").exists():
        index = subjects.open_index(subject, corpus)
    else:
        st.write(
            f"The corpus ({viz.shorten(corpus.name, 60)}) has not been indexed for {subject.name}'s neurons yet. "
            "One pass over it stores every neuron's maximum per window; after that, any neuron's top windows "
            "come back at once."
        )
        if st.button("Index the corpus"):
            try:
                subjects.open_index(subject, corpus, progress=progress_bar("indexing…"))
            except ScoringInputError as exc:
                st.error(str(exc))
            else:
                st.rerun()


@st.cache_data(show_spinner="Recomputing the unit on its windows…", max_entries=64)
def unit_feature(
    _subject: subjects.SubjectModel,
    _index: subjects.ActivationIndex,
    index_key: str,
    unit: str,
    layer: int,
    number: int,
    top: int,
    random: int,
    quantiles: int,
    dedup: str,
    sae_name: str,
    corpus_name: str,
) -> dict[str, Any]:
    kind = latents.LATENT if unit == "latent" else "mlp"
    records = _index.records(
        _subject,
        layer,
        number,
        kind=kind,
        top=top,
        random=random,
        quantiles=quantiles,
        per_quantile=1,
        embed=subjects.index.embedding_similarity() if dedup == "embedding" else None,
    )
    return subjects.feature_json(
        records,
        model=_subject.name,
        layer=layer,
        index=number,
        kind=kind,
        corpus=corpus_name,
        sae=sae_name or None,
    )


if index is None:
    st.stop()

kind = latents.LATENT if unit == "latent" else "mlp"
try:
    maxima = index.window_maxima(layer, number, kind)
except ScoringInputError as exc:
    st.error(str(exc))
    st.stop()
density = float((maxima > 0).mean())
stats = st.columns(3)
stats[0].metric("Density (windows where it fires)", f"{density:.1%}")
stats[1].metric("Largest window maximum", f"{float(maxima.max()):.3f}")
stats[2].metric("Windows indexed", f"{index.n_windows:,}")
histogram = go.Figure(go.Histogram(x=maxima[maxima > 0] if density > 0 else maxima, nbinsx=40))
histogram.update_layout(
    height=200,
    margin={"l": 10, "r": 10, "t": 30, "b": 10},
    title={"text": "Per-window maximum where it fires (> 0)", "font": {"size": 13}},
    xaxis_title="activation",
    yaxis_title="windows",
)
st.plotly_chart(histogram, config=PLOT_CONFIG, width="stretch")

left, middle, right, far = st.columns(4)
n_top = int(left.number_input("Top windows", 1, 50, 10, key="explore_n_top"))
n_random = int(middle.number_input("Random windows", 0, 50, 5, key="explore_n_random"))
n_quantiles = int(right.number_input("Quantile windows", 0, 10, 4, key="explore_n_quantiles"))
dedup = str(
    far.selectbox(
        "Merge near-duplicates", list(DEDUP_LABELS), format_func=lambda name: DEDUP_LABELS[name], key="explore_dedup"
    )
)
try:
    feature = unit_feature(
        subject,
        index,
        str(index.directory),
        unit,
        layer,
        number,
        n_top,
        n_random,
        n_quantiles,
        dedup,
        sae.name if unit == "latent" and sae else "",
        corpus.name,
    )
except ScoringInputError as exc:
    st.error(str(exc))
    st.stop()
window_records = feature["activations"]
vmax = max((max(item["values"]) for item in window_records), default=1.0) or 1.0
for item in window_records:
    merged = f" · {item['duplicates']} similar window(s) merged" if item.get("duplicates") else ""
    st.caption(f"{item['sample']} · window {item['window']} · max {item['maxValue']:.3f}{merged}")
    st.markdown(viz.tokens_html(item["tokens"], item["values"], vmax=vmax), unsafe_allow_html=True)

if unit == "latent" and sae is not None:
    st.markdown("#### Twins: the neurons whose output weights point the same way")
    try:
        twins = latents.twin_neurons(subject, sae, number, top=8)
    except ScoringInputError as exc:
        st.caption(str(exc))
    else:
        st.dataframe(
            [{"neuron": f"L{twin.layer} #{twin.index}", "weight cosine": round(twin.cosine, 3)} for twin in twins],
            hide_index=True,
        )

st.markdown("#### Test it on your own text")
top_records = [item for item in window_records if item["sample"] == "top"]
prefill = "".join(top_records[0]["tokens"]) if top_records else DEFAULT_TEXT
test_key = f"explore_test_{unit}_{layer}_{number}"
test_text = st.text_area("Text (prefilled with the top window: change a word and test again)", prefill, key=test_key)
if st.button("Test", key="explore_test_run"):
    try:
        if unit == "latent" and sae is not None:
            captured = latents.latent_activations(subject, sae, test_text)
        else:
            captured = subject.activations(test_text, [layer], "mlp")
        values = captured.unit(layer, number)
    except ScoringInputError as exc:
        st.error(str(exc))
    else:
        st.caption(f"max {max(values):.3f} (the top window's max is {vmax:.3f}; colours share that scale)")
        st.markdown(viz.tokens_html(captured.tokens, values, vmax=vmax), unsafe_allow_html=True)

label = "latent" if unit == "latent" else "neuron"
if st.button(f"Score explanations for this {label}", type="primary"):
    st.session_state[RECORDS_STATE] = json.dumps(feature, ensure_ascii=False)
    try:
        st.switch_page("app.py")
    except StreamlitAPIException:
        # Run as a lone script (not under app.py) there is no Score page to switch to.
        st.success("The records are ready: open the Score page from the sidebar.")
