"""Explore page: search neurons and SAE latents by text, open one, see its corpus windows, score it.

The subject model and the SAE are loaded once per server (`st.cache_resource`);
every number comes from `scoring.subjects` and every picture from `scoring.viz`.
The kinds of unit (`subjects.units_to_explore`: the SAE's latents, the MLP
neurons) and the opened `subjects.Unit` answer what differs between a neuron and
a latent, so the page lays out without asking which kind it shows. "Score
explanations for this latent/neuron" puts the unit's records, as
Neuronpedia-format JSON text, into ``st.session_state["records_json"]`` for the
Score page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

import dashboard as ui
from scoring import Progress, ScoringInputError, subjects, viz
from scoring.subjects import SparseAutoencoder, load_sae

RECORDS_STATE = "records_json"
DEFAULT_TEXT = "My favorite color is red. In 1865 the ship sailed from Liverpool to New York."
RANK_LABELS = {
    "specificity": "specificity (corpus percentile × silence)",
    "activation": "raw activation",
    "layer": "activation ÷ the layer's RMS on this text",
}
RANK_HELP = (
    "specificity: where the unit's activation on this text stands among its maxima on the corpus windows (the "
    "share of windows below it), times the share of windows where the unit is silent (1 − density); ties by its "
    "share of the unit's largest window maximum. Units that fire this strongly on few texts come first; a unit "
    "that fires in every window scores 0 however strongly it fires. raw activation: the largest activations "
    "first. ÷ layer RMS: activations divided by the root-mean-square of their layer's activations on this text, "
    "so layers with large activations do not drown the others."
)
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

ui.state_defaults({"explore_hits": None, "explore_unit": None, "explore_corpus": None})


@st.cache_resource(show_spinner="Loading the subject model (the very first time converts it: a minute or more)…")
def subject_model(name: str) -> subjects.SubjectModel:
    return subjects.load_subject(name)


@st.cache_resource(show_spinner="Loading the SAE…")
def sparse_autoencoder(path: str) -> SparseAutoencoder:
    return load_sae(path)


@st.cache_resource(show_spinner="Reading the bundled corpus…")
def default_corpus() -> subjects.Corpus:
    return subjects.default_corpus()


def show_valid(key: str, options: list[Any]) -> None:
    """Before a selectbox whose options follow the search: a missing or stale value becomes the first option,
    set in session state so that the browser is sent it. (A dropped value, `ui.keep_valid`'s way, lets the page
    use the first option while the browser still shows the label of the last search: opening "L7 neuron #271"
    opened a latent.)"""
    if options and st.session_state.get(key) not in options:
        st.session_state[key] = options[0]


def index_under_progress_bar(text: str, build: Callable[[Progress], object]) -> bool:
    """`build(progress)` (an index being built) under the dashboard's progress bar; False when it failed (shown)."""
    built = ui.run_with_progress_bar(text, build, action="index the corpus", activity="Indexing", time_limit=None)
    return built is not None


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

shipped = subjects.default_sae_path(subject.name)
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
            subjects.LATENT_MAX_WINDOWS,
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
        subjects.check_sae_fits(subject, sae)
    except ScoringInputError as exc:
        st.error(f"SAE: {exc}")
        sae = None
corpus: subjects.Corpus = st.session_state["explore_corpus"] or default_corpus()
unit_kinds = subjects.units_to_explore(subject, corpus, sae, latent_windows=latent_windows)
sae_note = (
    f"SAE **{sae.name}** ({sae.d_sae} latents at `{sae.config.hook_name}`, {sae.config.architecture})"
    if sae
    else "no SAE"
)
st.caption(f"{sae_note} · corpus **{viz.shorten(corpus.name, 60)}** ({len(corpus.documents)} documents)")

# --------------------------------------------------------------------------- search


def open_indexes(kinds: tuple[str, ...]) -> list[subjects.ActivationIndex]:
    """The corpus indexes already built for the chosen kinds of unit."""
    return [unit_kinds[kind].index() for kind in kinds if unit_kinds[kind].index_exists()]


def build_indexes(kinds: tuple[str, ...]) -> bool:
    """Build the missing corpus indexes of `kinds` under progress bars; False (with the reason shown) on failure."""
    for kind in kinds:
        units = unit_kinds[kind]
        if not units.index_exists() and not index_under_progress_bar(
            f"indexing the corpus for {units.described}…", lambda progress, units=units: units.index(progress=progress)
        ):
            return False
    return True


def indexing_note(kinds: tuple[str, ...]) -> str | None:
    """What the first search ranked by specificity costs (the indexes still to build), or None when none is."""
    parts = [
        f"{units.described} ({units.max_windows} windows through layer {units.indexed_up_to}: "
        f"{units.indexing_seconds()})"
        for units in (unit_kinds[kind] for kind in kinds)
        if not units.index_exists()
    ]
    if not parts:
        return None
    return (
        "Ranking by specificity and the density filter compare each unit with its own activations on the corpus. "
        f"The first such search indexes the corpus once for {' and '.join(parts)}, on 2 CPU cores; "
        "later searches take about a second."
    )


@st.cache_data(show_spinner="Running the model on the text…", max_entries=32)
def search(
    _subject: subjects.SubjectModel,
    _sae: SparseAutoencoder | None,
    _indexes: list[subjects.ActivationIndex],
    key: tuple[Any, ...],
    text: str,
    units: tuple[str, ...],
    layers: tuple[int, ...],
    rank: str,
    max_density: float | None,
    position: int | None,
    top: int,
) -> tuple[list[str], list[subjects.SearchHit]]:
    return subjects.search_units(
        _subject,
        text,
        layers=list(layers),
        saes=[_sae] if _sae else [],
        units=units,
        rank=rank,
        indexes=_indexes,
        max_density=max_density,
        token_position=position,
        top=top,
    )


st.subheader("Search by text")
unit_choices = list(unit_kinds)
ui.state_defaults(
    {
        "explore_text": DEFAULT_TEXT,
        "explore_units": unit_choices,
        "explore_layers": [],
        "explore_rank": "specificity",
        "explore_max_density": 100,
        "explore_top": 15,
    }
)
ui.keep_valid("explore_units", unit_choices, many=True)
ui.keep_valid("explore_layers", list(range(subject.n_layers)), many=True)
ui.keep_valid("explore_rank", list(RANK_LABELS))
with st.form("explore_form"):
    st.text_area("Text", key="explore_text", height=90)
    units_column, layers_column = st.columns([1, 1])
    units_column.multiselect(
        "Units", unit_choices, format_func=lambda kind: unit_kinds[kind].label, key="explore_units"
    )
    layers_column.multiselect(
        "Layers (none = all)",
        list(range(subject.n_layers)),
        key="explore_layers",
        help="Latents show when their SAE's layer is among these.",
    )
    rank_column, dense_column, top_column = st.columns([3, 3, 1])
    rank_column.radio(
        "Rank by", list(RANK_LABELS), format_func=lambda name: RANK_LABELS[name], key="explore_rank", help=RANK_HELP
    )
    dense_column.slider(
        "Hide units firing in more than this share of corpus windows",
        1,
        100,
        format="%d%%",
        key="explore_max_density",
        help="Applied before the top hits are cut, from each unit's corpus index; 100% hides nothing.",
    )
    top_column.number_input("Top", 1, 100, key="explore_top")
    run = st.form_submit_button("Search", type="primary")
chosen_kinds = tuple(st.session_state["explore_units"]) or tuple(unit_choices)
note = None if run else indexing_note(chosen_kinds)
if note and (st.session_state["explore_rank"] == "specificity" or st.session_state["explore_max_density"] < 100):
    st.caption(note)  # before the user commits to the first, slow search

if run:
    st.session_state["explore_hits"] = {
        "text": st.session_state["explore_text"],
        "units": chosen_kinds,
        "layers": tuple(st.session_state["explore_layers"]) or tuple(range(subject.n_layers)),
        "rank": st.session_state["explore_rank"],
        "top": int(st.session_state["explore_top"]),
        "max_density": int(st.session_state["explore_max_density"]) / 100,
    }
    # A new search has other tokens and other hits: what was chosen among the old ones means nothing now.
    for stale in ("explore_sort_token", "explore_pick"):
        st.session_state.pop(stale, None)

query = st.session_state["explore_hits"]
if query is not None:
    searched = tuple(kind for kind in query["units"] if kind in unit_choices) or tuple(unit_choices)
    max_density = query["max_density"] if query["max_density"] < 1 else None
    needs_index = query["rank"] == "specificity" or max_density is not None
    missing = [kind for kind in searched if not unit_kinds[kind].index_exists()] if needs_index else []
    if missing and not (run and build_indexes(searched)):
        if not run:
            st.info("The corpus or the SAE changed since this search: press **Search** to index it and search again.")
        st.stop()
    tokens: list[str] = []
    hits: list[subjects.SearchHit] = []
    sort_options = [-1]
    try:
        tokens = subject.tokenize(query["text"]).tokens if query["text"] else []
        sort_options = [-1, *range(len(tokens))]
        show_valid("explore_sort_token", sort_options)
        position = int(st.session_state.get("explore_sort_token", -1))
        indexes = open_indexes(searched)
        tokens, hits = search(
            subject,
            sae,
            indexes,
            (subject.name, sae.source if sae else "", *(str(index.directory) for index in indexes)),
            query["text"],
            searched,
            query["layers"],
            query["rank"],
            max_density,
            None if position < 0 else position,
            query["top"],
        )
    except ScoringInputError as exc:
        st.error(str(exc))
        tokens, hits = [], []
    if tokens:
        st.selectbox(
            "Sort by token",
            sort_options,
            format_func=lambda i: "the maximum over the text" if i < 0 else f"{i}: {viz.readable_token(tokens[i])}",
            key="explore_sort_token",
        )
    if hits:
        st.plotly_chart(viz.search_heatmap(tokens, hits), config=PLOT_CONFIG, width="stretch")
        st.dataframe(viz.search_hits_frame(hits, query["rank"]), hide_index=True, width="stretch")
        labels = [viz.hit_label(hit) for hit in hits]
        show_valid("explore_pick", labels)
        picked = st.selectbox("Open a unit", labels, key="explore_pick")
        if st.button("Open", key="explore_open"):
            chosen = hits[labels.index(str(picked))]
            st.session_state["explore_unit"] = (chosen.unit, chosen.layer, chosen.index)
            st.session_state["explore_unit_kind"] = chosen.unit
    elif tokens:
        filtered = f", at most {query['max_density']:.0%} dense," if max_density is not None else ""
        st.info(f"No unit of the chosen kinds and layers{filtered} fires on this text.")
else:
    st.info("Type a text and press **Search** to list the latents and neurons that fire on it.")

# --------------------------------------------------------------------------- one unit

st.divider()
st.subheader("A latent or neuron")
kinds = list(unit_kinds)


def first_layer(units: subjects.Units) -> int:
    """The layer a kind of unit opens at: layer 6 (the shipped SAE's) or the nearest one it has."""
    return min(max(6, units.layers[0]), units.layers[-1])


opened = st.session_state["explore_unit"]
if opened is None or opened[0] not in kinds:
    opened = (kinds[0], first_layer(unit_kinds[kinds[0]]), 0)
left, middle, right = st.columns(3)
ui.keep_valid("explore_unit_kind", kinds)
st.session_state.setdefault("explore_unit_kind", opened[0])
kind = left.radio(
    "Unit", kinds, format_func=lambda kind: unit_kinds[kind].label, horizontal=True, key="explore_unit_kind"
)
units = unit_kinds[kind]
lowest, highest = units.layers[0], units.layers[-1]
start = min(max(int(opened[1]), lowest), highest) if opened[0] == kind else first_layer(units)
layer = int(middle.number_input("Layer", lowest, highest, start, disabled=lowest == highest))
number = int(
    right.number_input(f"Number (0..{units.width - 1})", 0, units.width - 1, min(int(opened[2]), units.width - 1))
)
st.session_state["explore_unit"] = (kind, layer, number)
unit = units.unit(layer, number)
st.markdown(f"### {unit.title}")

if not units.index_exists():
    st.write(
        f"The corpus ({viz.shorten(corpus.name, 60)}) has not been indexed for {units.described} yet. One pass of "
        f"the model up to layer {units.indexed_up_to} over {units.max_windows} windows stores every {units.noun}'s "
        f"maximum per window ({units.indexing_seconds()} on 2 cores, once); after that, any {units.noun}'s top "
        "windows come back at once."
    )
    if st.button(f"Index the corpus for {units.described}", type="primary") and index_under_progress_bar(
        "indexing…", lambda progress: units.index(progress=progress)
    ):
        st.rerun()
    st.stop()


@st.cache_data(show_spinner="Recomputing the unit on its windows…", max_entries=64)
def unit_feature(
    _unit: subjects.Unit, identity: tuple[Any, ...], top: int, random: int, quantiles: int, dedup: str
) -> dict[str, Any]:
    records = _unit.records(top=top, random=random, quantiles=quantiles, per_quantile=1, dedup=dedup)
    return _unit.feature_json(records)


try:
    stats = unit.corpus_stats()
except ScoringInputError as exc:
    st.error(str(exc))
    st.stop()
metrics = st.columns(3)
metrics[0].metric("Density (windows where it fires)", f"{stats.density:.1%}")
metrics[1].metric("Largest window maximum", f"{stats.peak:.3f}")
metrics[2].metric("Windows indexed", f"{stats.windows:,}")
st.plotly_chart(viz.window_maxima_histogram(stats.window_maxima), config=PLOT_CONFIG, width="stretch")

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
    feature = unit_feature(unit, unit.identity, n_top, n_random, n_quantiles, dedup)
except ScoringInputError as exc:
    st.error(str(exc))
    st.stop()
window_records = feature["activations"]
vmax = viz.window_scale(window_records)
st.html(viz.feature_windows_html(window_records, vmax))

if units.has_twins:
    st.markdown("#### Twins: the neurons whose output weights point the same way")
    try:
        twins = unit.twins(top=8)
    except ScoringInputError as exc:
        st.caption(str(exc))
    else:
        st.dataframe(viz.twins_frame(twins), hide_index=True)

st.markdown("#### Test it on your own text")
top_records = [item for item in window_records if item["sample"] == "top"]
prefill = "".join(top_records[0]["tokens"]) if top_records else DEFAULT_TEXT
test_key = f"explore_test_{kind}_{layer}_{number}"
test_text = st.text_area("Text (prefilled with the top window: change a word and test again)", prefill, key=test_key)
if st.button("Test", key="explore_test_run"):
    try:
        tested = unit.activations(test_text)
    except ScoringInputError as exc:
        st.error(str(exc))
    else:
        st.caption(f"max {tested.peak:.3f} (the top window's max is {vmax:.3f}; colours share that scale)")
        st.markdown(viz.tokens_html(tested.tokens, tested.values, vmax=vmax), unsafe_allow_html=True)

if st.button(f"Score explanations for this {units.noun}", type="primary"):
    st.session_state[RECORDS_STATE] = json.dumps(feature, ensure_ascii=False)
    try:
        st.switch_page("app.py")
    except StreamlitAPIException:
        # Run as a lone script (not under app.py) there is no Score page to switch to.
        st.success("The records are ready: open the Score page from the sidebar.")
