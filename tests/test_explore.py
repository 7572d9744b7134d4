"""The Explore page and the text search behind it (tiny random Gemma 3; `model` tests use the packaged one).

The page runs under AppTest on the tiny model of `test_subjects`, the bundled
corpus and a tiny SAE. A seeded random sweep drives its widgets in many orders
and fails on any exception, with stale option labels fed back as a browser
does after the options change.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_sae import planted_sae  # noqa: E402
from test_subjects import DOCUMENTS, make_tiny_subject  # noqa: E402

from scoring import load_records, viz  # noqa: E402
from scoring.errors import ScoringInputError  # noqa: E402
from scoring.subjects import (  # noqa: E402
    Corpus,
    SubjectModel,
    corpus_standing,
    open_latent_index,
    search_units,
)
from scoring.subjects.sae import SAEConfig, SparseAutoencoder  # noqa: E402

EXPLORE = str(Path(__file__).parent.parent / "pages" / "4_Explore.py")


@pytest.fixture(scope="module")
def tiny_subject() -> SubjectModel:
    return make_tiny_subject()


# --------------------------------------------------------------------------- ranking by specificity


def test_corpus_standing_places_an_activation_in_each_units_window_maxima() -> None:
    maxima = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 1.0], [0.0, 4.0, 0.0]], dtype=np.float32)
    standing = corpus_standing(maxima, np.array([0.5, 2.5, 2.0]))
    assert list(standing.percentile) == [1.0, 0.5, 1.0]
    assert standing.of_max[0] == np.inf and standing.of_max[1] == pytest.approx(0.625) and standing.of_max[2] == 2.0
    assert list(standing.density) == [0.0, 1.0, 0.25]
    # the always-on unit 1 scores 0; unit 2, silent in 3 of the 4 windows, keeps 3/4 of its percentile
    assert list(standing.specificity) == [1.0, 0.0, 0.75]
    with pytest.raises(ScoringInputError, match="rebuild the index"):
        corpus_standing(maxima, np.array([1.0, 2.0]))


TEXT = "A spotted leopard sprints across the plain."
DENSE = 12


def selective_and_dense_sae(subject: SubjectModel) -> tuple[SparseAutoencoder, int]:
    """A ReLU SAE at layer 2: latent 5 fires only at the peak of TEXT (as in test_sae), latents 0-4 and 6-12
    fire on every token, far more strongly (a large bias), like the always-on latents of real SAEs."""
    others = [document for document in DOCUMENTS if "leopard" not in document]
    planted, selective = planted_sae(subject, TEXT, others)
    width = planted.config.d_in
    encoder = planted.W_enc.copy()
    bias = planted.b_enc.copy()
    dense = [latent for latent in range(DENSE + 1) if latent != selective]
    encoder = np.concatenate([encoder, np.zeros((width, DENSE + 1 - encoder.shape[1]), np.float32)], axis=1)
    bias = np.concatenate([bias, np.zeros(DENSE + 1 - bias.shape[0], np.float32)])
    bias[dense] = 50.0 + np.arange(len(dense), dtype=np.float32)
    rng = np.random.default_rng(1)
    config = SAEConfig(d_in=width, d_sae=DENSE + 1, hook_name=planted.config.hook_name)
    decoder = rng.normal(size=(DENSE + 1, width)).astype(np.float32)
    return SparseAutoencoder(config, encoder, bias, decoder, planted.b_dec), selective


@pytest.fixture(scope="module")
def selective_search(tiny_subject: SubjectModel, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    sae, selective = selective_and_dense_sae(tiny_subject)
    others = [document for document in DOCUMENTS if "leopard" not in document]
    corpus = Corpus("others", [" ".join(others * 3)] * 4)
    index = open_latent_index(
        tiny_subject, sae, corpus, window_tokens=12, max_windows=64, directory=tmp_path_factory.mktemp("latents")
    )
    return sae, selective, index


def test_a_selective_latent_ranks_in_the_top_five_by_specificity_not_by_activation(
    tiny_subject: SubjectModel, selective_search: tuple[SparseAutoencoder, int, Any]
) -> None:
    sae, selective, index = selective_search
    _, by_activation = search_units(tiny_subject, TEXT, saes=[sae], units=["latent"], top=5)
    assert selective not in [hit.index for hit in by_activation]  # the always-on latents are stronger
    _, hits = search_units(
        tiny_subject, TEXT, saes=[sae], units=["latent"], rank="specificity", indexes=[index], top=5
    )
    assert selective in [hit.index for hit in hits[:5]]
    first = hits[0]
    assert first.index == selective and first.percentile == 1.0 and first.density == 0.0
    assert first.of_max == np.inf  # it never fired in the corpus
    assert all(hit.activation > 0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_the_density_filter_applies_before_the_top_cut(
    tiny_subject: SubjectModel, selective_search: tuple[SparseAutoencoder, int, Any]
) -> None:
    sae, selective, index = selective_search
    for rank in ("activation", "specificity"):
        _, hits = search_units(
            tiny_subject, TEXT, saes=[sae], units=["latent"], rank=rank, indexes=[index], max_density=0.2, top=2
        )
        # DENSE always-on latents outrank it by activation; they are removed before the 2 best are kept
        assert hits and hits[0].index == selective, rank
        assert all(hit.density is not None and hit.density <= 0.2 for hit in hits)
    with pytest.raises(ScoringInputError, match="corpus index of the SAE"):
        search_units(tiny_subject, TEXT, saes=[sae], units=["latent"], max_density=0.2)
    with pytest.raises(ScoringInputError, match="max_density"):
        search_units(tiny_subject, TEXT, saes=[sae], units=["latent"], indexes=[index], max_density=1.5)


@pytest.mark.model
def test_the_red_latent_is_in_the_top_five_of_its_sentence(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Latent 1347 of the shipped SAE fires on " red" (docs/explorer.md): ranked by specificity among all
    18 layers' neurons and the SAE's latents, it is in the top 5 of "My favorite color is red.".

    The indexes are the ones users get (the defaults: 256 windows for the neurons, 512 for the latents), kept
    in the session's folder so that the Explore browser test reuses the neurons' index."""
    from test_subjects import session_subjects_directory

    from scoring import subjects
    from scoring.subjects import latents

    directory = session_subjects_directory(tmp_path_factory)
    monkeypatch.setenv("SCORING_SUBJECT_DIR", str(directory))
    subject = subjects.load_subject()
    sae = subjects.load_sae(latents.default_sae_path(subject.name))
    corpus = subjects.default_corpus()
    indexes = [subjects.open_index(subject, corpus), latents.open_latent_index(subject, sae, corpus)]
    assert all(str(index.directory).startswith(str(directory)) for index in indexes)
    assert [index.n_windows for index in indexes] == [subjects.MAX_WINDOWS, latents.LATENT_MAX_WINDOWS]
    _, hits = search_units(subject, "My favorite color is red.", saes=[sae], rank="specificity", indexes=indexes)
    top = [(hit.unit, hit.index) for hit in hits[:5]]
    assert ("latent", 1347) in top, [viz.hit_label(hit) for hit in hits[:10]]
    _, by_activation = search_units(subject, "My favorite color is red.", saes=[sae], indexes=indexes, top=12)
    assert ("latent", 1347) not in [(hit.unit, hit.index) for hit in by_activation]


# --------------------------------------------------------------------------- the page


@pytest.fixture
def explore_page(tiny_subject: SubjectModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The Explore page on the tiny model, the bundled corpus and a tiny top-k SAE standing in for the shipped one."""
    from streamlit.testing.v1 import AppTest

    import scoring.subjects as subjects

    rng = np.random.default_rng(0)
    sae = SparseAutoencoder(
        SAEConfig(d_in=32, d_sae=24, hook_name="blocks.1.hook_resid_post", architecture="topk", k=4),
        rng.normal(size=(32, 24)).astype(np.float32),
        np.zeros(24, np.float32),
        rng.normal(size=(24, 32)).astype(np.float32),
        np.zeros(32, np.float32),
    )
    sae.save(tmp_path / "tiny-sae")
    monkeypatch.setattr(subjects, "load_subject", lambda name=subjects.DEFAULT_SUBJECT, **_kw: tiny_subject)
    # the page reads these through the public facade
    monkeypatch.setattr(subjects, "default_sae_path", lambda name="": tmp_path / "tiny-sae")
    monkeypatch.setattr(subjects, "LATENT_MAX_WINDOWS", 96)
    monkeypatch.setattr(subjects.index, "embedding_similarity", lambda: _bag_of_words)
    page = AppTest.from_file(EXPLORE, default_timeout=120)
    page.run()
    assert not page.exception
    return page


def _bag_of_words(texts: list[str]) -> np.ndarray:
    vocabulary = sorted({word for text in texts for word in text.lower().split()})
    return np.asarray([[text.lower().split().count(word) for word in vocabulary] for text in texts], dtype=float)


def _button(page, label: str):  # noqa: ANN001, ANN202 (AppTest element types are not public)
    return next(button for button in page.button if button.label == label)


def _clean(page) -> None:  # noqa: ANN001
    assert not page.exception, [element.value for element in page.exception]


def _hits_table(page):  # noqa: ANN001, ANN202
    return next(frame.value for frame in page.dataframe if "unit" in frame.value.columns)


def _run_with_stale_label(page, key: str, label: str) -> None:  # noqa: ANN001
    """Rerun as a browser does when it still shows an option that the last run removed: it sends that option's
    label as the selectbox's value (AppTest itself only sends labels of current options, hence its internals)."""
    states = page._tree.get_widget_states()
    widget_id = page.selectbox(key=key).id
    for state in states.widgets:
        if state.id == widget_id:
            state.string_value = label
    page._run(states)


def _search(page, text: str) -> None:  # noqa: ANN001
    page.text_area(key="explore_text").set_value(text)
    _button(page, "Search").click().run()
    _clean(page)


def test_explore_searches_opens_a_latent_and_hands_it_to_the_score_page(explore_page) -> None:  # noqa: ANN001
    page = explore_page
    assert "World Factbook" in " ".join(caption.value for caption in page.caption)
    assert page.radio(key="explore_rank").value == "specificity"
    notes = [caption.value for caption in page.caption if "indexes the corpus once" in caption.value]
    assert notes and "about" in notes[0]  # the cost of the first search, before it is run
    _search(page, "The fox ran to the river.")
    assert len(page.get("plotly_chart")) == 2  # the search heatmap, and the histogram of the unit shown below
    assert '"displayModeBar": false' in page.get("plotly_chart")[0].proto.config  # the toolbar covered the heatmap
    table = _hits_table(page)
    columns = ["unit", "activation", "at token", "specificity", "corpus percentile", "of corpus max", "density"]
    assert list(table.columns) == columns
    assert list(table["specificity"]) == sorted(table["specificity"], reverse=True)  # the column ranked by
    units = list(table["unit"])
    assert any("latent" in unit for unit in units) and any("neuron" in unit for unit in units)
    assert all(text.endswith("%") for text in table["density"])  # the first search indexed the corpus
    assert not [caption for caption in page.caption if "indexes the corpus once" in caption.value]
    latent_rows = [unit for unit in _hits_table(page)["unit"] if "latent" in unit]
    page.selectbox(key="explore_sort_token").set_value(2).run()
    _clean(page)
    assert {text.split(":")[0] for text in _hits_table(page)["at token"]} == {"2"}
    page.selectbox(key="explore_sort_token").set_value(-1).run()
    page.selectbox(key="explore_pick").set_value(latent_rows[0]).run()
    _button(page, "Open").click().run()
    _clean(page)
    assert any(metric.label.startswith("Density") for metric in page.metric)
    assert len(page.get("plotly_chart")) == 2  # the search heatmap and the density histogram
    windows = "".join(str(node.proto.body) for node in page.get("html"))
    assert "top · window" in windows and "random · window" in windows and "quantile" in windows
    assert any("weight cosine" in frame.value.columns for frame in page.dataframe)
    test_box = next(area for area in page.text_area if area.key and area.key.startswith("explore_test_latent"))
    assert test_box.value.strip()
    _button(page, "Test").click().run()
    _clean(page)
    assert any("the top window's max" in caption.value for caption in page.caption)
    _button(page, "Score explanations for this latent").click().run()
    _clean(page)
    feature = json.loads(page.session_state["records_json"])
    assert feature["unit"] == "latent" and feature["layer"] == "1-tiny-sae"
    assert load_records(feature)
    top = [item["maxValue"] for item in feature["activations"] if item["sample"] == "top"]
    assert top == sorted(top, reverse=True)


def test_the_density_filter_keeps_every_unit_under_the_limit_up_to_top(explore_page, tiny_subject) -> None:  # noqa: ANN001
    """The issue: with "hide units firing in more than 20%" the page said nothing fires, because it filtered only
    the strongest 5 x top hits. Now the page lists what the library's search, filtering first, returns
    (test_the_density_filter_applies_before_the_top_cut shows the difference on planted latents)."""
    from scoring import subjects
    from scoring.subjects import default_corpus, load_sae, open_index

    page = explore_page
    text = "The capital of France is Paris."
    page.radio(key="explore_rank").set_value("activation")
    _search(page, text)  # builds both corpus indexes (the rank needs none; the density column shows once built)
    sae = load_sae(subjects.default_sae_path())
    corpus = default_corpus()
    indexes = [open_index(tiny_subject, corpus), subjects.open_latent_index(tiny_subject, sae, corpus, max_windows=96)]
    _, everything = search_units(tiny_subject, text, saes=[sae], indexes=indexes, top=10**6)
    densities = sorted(hit.density for hit in everything if hit.density is not None)
    limit = int(np.ceil(100 * densities[0]))  # the sparsest firing unit is under it
    assert limit < 100, densities[:10]
    _, under_limit = search_units(
        tiny_subject, text, saes=[sae], indexes=indexes, max_density=limit / 100, top=10**6
    )
    page.slider(key="explore_max_density").set_value(limit)
    page.number_input(key="explore_top").set_value(5)
    _button(page, "Search").click().run()
    _clean(page)
    table = _hits_table(page)
    assert len(table) == min(5, len(under_limit)) > 0
    assert all(float(text.rstrip("%")) <= limit for text in table["density"])
    assert list(table["unit"]) == [viz.hit_label(hit) for hit in under_limit[:5]]


def test_the_layout_names_units_in_full_and_shows_whitespace_tokens(explore_page) -> None:  # noqa: ANN001
    page = explore_page
    boxes = [column for column in page.columns if column.multiselect]
    units_column = next(column for column in boxes if column.multiselect[0].key == "explore_units")
    assert units_column.weight >= 0.5 * sum(  # the Units box is as wide as the Layers box: no "ML…"
        column.weight for column in boxes
    )
    page.radio(key="explore_rank").set_value("activation")
    _search(page, "fox  \n  dog")
    shown = list(_hits_table(page)["at token"])
    assert all(text.split(": ", 1)[1].strip() for text in shown)  # never blank, whitespace drawn as · and ↵
    assert "score" not in _hits_table(page).columns  # it duplicated "activation"
    page.radio(key="explore_rank").set_value("layer")
    _button(page, "Search").click().run()
    assert "÷ layer RMS" in _hits_table(page).columns


def test_the_crash_of_the_issue_does_not_happen(explore_page) -> None:  # noqa: ANN001
    """Search, pick a neuron, drop neurons from Units, search twice more: every run is clean, and a label of a
    vanished option sent back by the browser is dropped rather than read as a number."""
    page = explore_page
    page.radio(key="explore_rank").set_value("activation")
    _search(page, "country")
    neuron = next(label for label in page.selectbox(key="explore_pick").options if "neuron" in label)
    page.selectbox(key="explore_pick").set_value(neuron).run()
    page.multiselect(key="explore_units").unselect("neuron")
    _search(page, "country")
    _search(page, "population")
    assert all("latent" in label for label in page.selectbox(key="explore_pick").options)
    _run_with_stale_label(page, "explore_pick", neuron)
    _clean(page)
    _run_with_stale_label(page, "explore_sort_token", "99: ·gone")
    _clean(page)
    _search(page, "population")


TEXTS = ("The fox ran to the river.", "country", "  \n\t ", "Cats sleep all day; dogs bark at night.", "a", "x" * 40)
LABELS = {
    "SAE latents": "latent",
    "MLP neurons": "neuron",
    "the bundled World Factbook corpus": "bundled",
    "my own texts": "mine",
    "specificity (corpus percentile × silence)": "specificity",
    "raw activation": "activation",
    "activation ÷ the layer's RMS on this text": "layer",
    "same top token + similar context (MiniLM cosine ≥ 0.9)": "embedding",
    "same words only": "lexical",
}


def _raw(key: str | None, shown: str) -> Any:
    """The option value behind a label as the page formats it (AppTest sets widgets by value)."""
    if key == "explore_layers":
        return int(shown)
    if key == "explore_sort_token":
        return -1 if shown == "the maximum over the text" else int(shown.split(":", 1)[0])
    if key is None and " — " in shown:  # the subject model box
        return shown.split(" — ", 1)[0]
    return LABELS.get(shown, shown)


def _actions(page, rng: random.Random, sae_path: str) -> list[tuple[str, Callable[[], object]]]:  # noqa: ANN001
    """Every widget of the page as it is drawn now, each with a random change to it."""
    actions: list[tuple[str, Callable[[], object]]] = []
    for box in page.selectbox:
        if box.options:
            actions.append(
                (f"select {box.key}", lambda box=box: box.set_value(_raw(box.key, rng.choice(box.options))))
            )
    for radio in page.radio:
        actions.append(
            (f"radio {radio.key}", lambda radio=radio: radio.set_value(_raw(radio.key, rng.choice(radio.options))))
        )
    for multi in page.multiselect:
        actions.append(
            (
                f"multiselect {multi.key}",
                lambda multi=multi: multi.set_value(
                    [_raw(multi.key, shown) for shown in rng.sample(multi.options, rng.randint(0, len(multi.options)))]
                ),
            )
        )
    for area in page.text_area:
        if area.key == "explore_text" or (area.key or "").startswith("explore_test"):
            actions.append((f"type {area.key}", lambda area=area: area.set_value(rng.choice(TEXTS))))
    for number in page.number_input:
        low, high = int(number.min), int(number.max)
        actions.append(
            (
                f"number {number.label}",
                lambda number=number, low=low, high=high: number.set_value(rng.randint(low, min(high, low + 40))),
            )
        )
    for slider in page.slider:
        actions.append((f"slider {slider.key}", lambda slider=slider: slider.set_value(rng.choice([1, 5, 20, 100]))))
    for button in page.button:
        actions.append((f"click {button.label}", lambda button=button: button.click()))
    path_box = page.text_input(key="explore_sae_path")
    actions.append(("sae path", lambda: path_box.set_value(rng.choice([sae_path, sae_path, "", "/nowhere"]))))
    return actions


@pytest.mark.parametrize("seed", [0, 1])
def test_a_random_sweep_over_explores_widgets_never_raises(explore_page, seed: int) -> None:  # noqa: ANN001
    page = explore_page
    rng = random.Random(seed)
    sae_path = page.text_input(key="explore_sae_path").value
    steps: list[str] = []
    for _ in range(22):
        actions = _actions(page, rng, sae_path)
        stale = [box.key for box in page.selectbox if box.key in ("explore_pick", "explore_sort_token")]
        if stale and rng.random() < 0.2:
            # the label of an option that an earlier search offered, sent back by the browser
            key = rng.choice(stale)
            steps.append(f"stale {key}")
            _run_with_stale_label(page, key, "L0 neuron #9999" if key == "explore_pick" else "99: ·gone")
        else:
            name, act = rng.choice(actions)
            steps.append(name)
            act()
            page.run()
        assert not page.exception, (steps, [element.value for element in page.exception])


def test_explore_neurons_on_pasted_texts(explore_page) -> None:  # noqa: ANN001
    page = explore_page
    page.radio(key="explore_corpus_source").set_value("mine").run()
    page.text_area(key="explore_corpus_text").set_value("\n---\n".join(DOCUMENTS))
    _button(page, "Use these texts").click().run()
    page.radio(key="explore_unit_kind").set_value("neuron").run()
    _button(page, "Index the corpus for the neurons").click().run()
    assert any("shorter than one window" in error.value for error in page.error)
    page.text_area(key="explore_corpus_text").set_value("\n---\n".join([" ".join(DOCUMENTS * 3)] * 3))
    _button(page, "Use these texts").click().run()
    _clean(page)
    assert "my texts (3)" in " ".join(caption.value for caption in page.caption)
    _button(page, "Index the corpus for the neurons").click().run()
    _clean(page)
    _button(page, "Score explanations for this neuron").click().run()
    feature = json.loads(page.session_state["records_json"])
    assert feature["unit"] == "neuron" and feature["corpus"] == "my texts (3)"
    assert load_records(feature)


def test_explore_reports_a_bad_sae_folder_and_empty_texts(
    explore_page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    page = explore_page
    monkeypatch.setenv("SCORING_SAE_ROOT", str(tmp_path))  # the page opens SAE folders only under it
    page.text_input(key="explore_sae_path").set_value(str(tmp_path / "nowhere")).run()
    _clean(page)
    assert any("is not an SAE folder" in error.value for error in page.error)
    page.radio(key="explore_corpus_source").set_value("mine").run()
    _button(page, "Use these texts").click().run()
    assert any("no text to index" in error.value for error in page.error)
