"""The unit object: one neuron or latent that knows its corpus density, its records and its activations.

On the tiny random Gemma 3 of `test_subjects` and the planted SAE of `test_sae`,
every answer of a `Unit` is checked against the model run directly: window
maxima and density against a capture of every corpus window, records against
the index's own, activations against a capture of the text. The Explore page
and the ``activations``/``neurons``/``records`` commands ask only these objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_sae import planted_sae  # noqa: E402
from test_subjects import DOCUMENTS, make_tiny_subject  # noqa: E402

import scoring.subjects as subjects  # noqa: E402
from scoring import load_records  # noqa: E402
from scoring.errors import ScoringInputError  # noqa: E402
from scoring.subjects import (  # noqa: E402
    Corpus,
    Latents,
    Neurons,
    SparseAutoencoder,
    SubjectModel,
    Unit,
    search_units,
    units_to_explore,
)

TEXT = "A spotted leopard sprints across the plain."
OTHERS = [document for document in DOCUMENTS if "leopard" not in document]
CORPUS = Corpus("others", [" ".join(OTHERS * 3)] * 2)
WINDOWS = {"window_tokens": 12, "max_windows": 32}
LAYER = 1


@pytest.fixture(scope="module")
def tiny_subject() -> SubjectModel:
    return make_tiny_subject()


@pytest.fixture(scope="module")
def planted(tiny_subject: SubjectModel) -> tuple[SparseAutoencoder, int]:
    """An SAE at layer 2 whose latent 5 fires at the peak of TEXT and on none of the other documents."""
    return planted_sae(tiny_subject, TEXT, OTHERS)


def window_truth(subject: SubjectModel, token_ids: np.ndarray, values_of: Any) -> np.ndarray:
    """(windows, tokens) ids -> each window's maximum of the values `values_of(ids with BOS)` gives per token."""
    ids = np.asarray([subject.with_bos(row.tolist()) for row in token_ids])
    skip = 1 if subject.bos_token_id is not None else 0
    return np.asarray(values_of(ids))[:, skip:].max(axis=1)


def strongest_neuron(subject: SubjectModel, units: Neurons) -> int:
    """The neuron of LAYER with the largest maximum in the corpus (one that fires)."""
    return int(np.argmax(np.asarray(units.index().maxima["mlp"][:, LAYER, :]).max(axis=0)))


def test_a_neuron_knows_its_density_and_window_maxima(tiny_subject: SubjectModel) -> None:
    neurons = Neurons(tiny_subject, CORPUS, **WINDOWS)
    assert not neurons.index_exists()
    reports: list[tuple[int, int]] = []
    index = neurons.index(progress=lambda done, total, _what: reports.append((done, total)))
    assert neurons.index_exists() and reports[-1][0] == reports[-1][1] == index.n_windows
    number = strongest_neuron(tiny_subject, neurons)
    unit = neurons.unit(LAYER, number)
    truth = window_truth(
        tiny_subject, index.token_ids, lambda ids: tiny_subject.capture(ids, [LAYER], "mlp")[:, 0, :, number]
    )
    np.testing.assert_allclose(unit.window_maxima(), truth, rtol=1e-4, atol=1e-5)
    assert unit.density() == pytest.approx(float((truth > 0).mean()))
    assert 0 < unit.density() <= 1
    stats = unit.corpus_stats()
    assert stats.windows == index.n_windows == truth.size
    assert stats.peak == pytest.approx(float(truth.max()), rel=1e-4)
    assert stats.density == unit.density()
    # the search's density column is the same number (one definition of density)
    _, hits = search_units(tiny_subject, TEXT, layers=[LAYER], units=["neuron"], indexes=[index], top=10**6)
    assert all(hit.density == pytest.approx(neurons.unit(LAYER, hit.index).density()) for hit in hits[:20])


def test_a_neuron_knows_its_records_and_activations(tiny_subject: SubjectModel) -> None:
    neurons = Neurons(tiny_subject, CORPUS, **WINDOWS)
    number = strongest_neuron(tiny_subject, neurons)
    unit = neurons.unit(LAYER, number)
    records = unit.records(top=3, random=2, quantiles=2, per_quantile=1, dedup="lexical")
    index = neurons.index()
    assert records == index.records(
        tiny_subject, LAYER, number, kind="mlp", top=3, random=2, quantiles=2, per_quantile=1
    )
    assert [record.sample for record in records][:4] == ["top"] * 3 + ["random"]
    maxima = unit.window_maxima()
    for record in records:
        assert record.max_value == pytest.approx(float(maxima[record.window]), rel=1e-4, abs=1e-5)
    feature = unit.feature_json(records)
    assert (feature["unit"], feature["layer"], feature["index"], feature["corpus"]) == (
        "neuron",
        f"{LAYER}-mlp",
        str(number),
        "others",
    )
    assert len(load_records(json.dumps(feature))) == len(records)
    tested = unit.activations(TEXT)
    assert "".join(tested.tokens) == TEXT
    assert tested.values == tiny_subject.activations(TEXT, [LAYER]).unit(LAYER, number)
    assert tested.peak == max(tested.values)
    assert unit.title == f"Neuron #{number} of layer {LAYER}" and unit.name.endswith(f"layer {LAYER} mlp {number}")


def test_a_latent_knows_its_density_records_and_activations(
    tiny_subject: SubjectModel, planted: tuple[SparseAutoencoder, int]
) -> None:
    sae, selective = planted
    latents = Latents(tiny_subject, sae, CORPUS, **WINDOWS)
    assert latents.layers == range(2, 3) and latents.width == sae.d_sae
    index = latents.index()
    hooked = tiny_subject.capture  # the SAE reads the residual stream after layer 2
    truth = window_truth(tiny_subject, index.token_ids, lambda ids: sae.encode(hooked(ids, [2], "resid")[:, 0]))
    for number in range(sae.d_sae):
        unit = latents.unit(2, number)
        np.testing.assert_allclose(unit.window_maxima(), truth[:, number], rtol=1e-4, atol=1e-5)
        assert unit.density() == pytest.approx(float((truth[:, number] > 0).mean()))
    unit = latents.unit(2, selective)
    assert unit.density() == 0.0  # it fires on the leopard text only, which the corpus lacks
    records = unit.records(top=5, random=3, dedup="none")
    assert [record.sample for record in records] == ["random"] * 3  # a silent window is never a top one
    assert all(max(record.values) <= 0 for record in records)
    feature = unit.feature_json(records)
    assert (feature["unit"], feature["layer"]) == ("latent", f"2-{sae.name}")
    tested = unit.activations(TEXT)
    assert tested.peak > 0 and tested.values == subjects.latent_activations(tiny_subject, sae, TEXT).unit(2, selective)
    assert unit.activations(OTHERS[0]).peak <= 0
    assert unit.title == f"Latent #{selective} of {sae.name}"
    twins = unit.twins(top=3)
    assert [twin.cosine for twin in twins] == sorted((twin.cosine for twin in twins), reverse=True)
    assert twins == subjects.twin_neurons(tiny_subject, sae, selective, top=3)


def test_records_merge_near_duplicates_as_dedup_says(
    tiny_subject: SubjectModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[int] = []

    def bag_of_words(texts: Sequence[str]) -> np.ndarray:
        embedded.append(len(texts))
        vocabulary = sorted({word for text in texts for word in text.lower().split()})
        return np.asarray([[text.lower().split().count(word) for word in vocabulary] for text in texts], float)

    monkeypatch.setattr(subjects.index, "embedding_similarity", lambda: bag_of_words)
    neurons = Neurons(tiny_subject, Corpus("repeats", [DOCUMENTS[0]] * 6 + DOCUMENTS[1:3]), window_tokens=8)
    unit = neurons.unit(LAYER, strongest_neuron(tiny_subject, neurons))
    kept = unit.records(top=5, random=0, dedup="none")
    assert not embedded
    merged = unit.records(top=5, random=0, dedup="embedding")
    assert embedded  # the embedding test ran
    assert sum(record.duplicates for record in merged) > 0 == sum(record.duplicates for record in kept)
    texts = ["".join(record.tokens) for record in merged]
    assert len(texts) == len(set(texts))


def test_units_refuse_what_does_not_exist(
    tiny_subject: SubjectModel, planted: tuple[SparseAutoencoder, int]
) -> None:
    sae, _ = planted
    neurons, latents = Neurons(tiny_subject, CORPUS), Latents(tiny_subject, sae, CORPUS)
    with pytest.raises(ScoringInputError, match="layer 7 does not exist"):
        neurons.unit(7, 0)
    with pytest.raises(ScoringInputError, match="unit 99999 does not exist"):
        neurons.unit(LAYER, 99999)
    with pytest.raises(ScoringInputError, match="reads layer 2, not layer 1"):
        latents.unit(1, 0)
    with pytest.raises(ScoringInputError, match="latent 12 does not exist: the SAE has 12"):
        latents.unit(2, 12)
    with pytest.raises(ScoringInputError, match="unknown unit kind"):
        Neurons(tiny_subject, kind="attention")
    with pytest.raises(ScoringInputError, match="dedup must be one of embedding, lexical, none"):
        neurons.unit(LAYER, 0).records(dedup="fuzzy")
    with pytest.raises(ScoringInputError, match="only SAE latents have weight twins"):
        neurons.unit(LAYER, 0).twins()
    with pytest.raises(ScoringInputError, match="text is empty"):
        latents.unit(2, 0).activations("")
    assert not neurons.has_twins and latents.has_twins


def test_the_kinds_to_explore_and_what_tells_units_apart(
    tiny_subject: SubjectModel, planted: tuple[SparseAutoencoder, int]
) -> None:
    sae, _ = planted
    assert list(units_to_explore(tiny_subject, CORPUS)) == ["neuron"]
    kinds = units_to_explore(tiny_subject, CORPUS, sae, latent_windows=48)
    assert list(kinds) == ["latent", "neuron"]
    assert [units.label for units in kinds.values()] == ["SAE latents", "MLP neurons"]
    assert kinds["latent"].max_windows == 48 and kinds["neuron"].max_windows == subjects.MAX_WINDOWS
    assert kinds["latent"].indexed_up_to == 2 and kinds["neuron"].indexed_up_to == tiny_subject.n_layers - 1
    assert "about" in kinds["latent"].indexing_seconds()
    latent, neuron = kinds["latent"].unit(2, 0), kinds["neuron"].unit(2, 0)
    other_corpus = Neurons(tiny_subject, Corpus("other", [" ".join(DOCUMENTS * 2)])).unit(2, 0)
    renamed = Neurons(tiny_subject, Corpus("renamed", CORPUS.documents)).unit(2, 0)
    assert renamed.units.index_directory() == neuron.units.index_directory()  # the same texts: the same index
    assert len({latent.identity, neuron.identity, other_corpus.identity, renamed.identity}) == 4  # the file differs
    assert neuron == Unit(kinds["neuron"], 2, 0) and neuron.identity == kinds["neuron"].unit(2, 0).identity
    residual = Neurons(tiny_subject, CORPUS, kind="resid")
    assert residual.width == tiny_subject.widths["resid"] and residual.unit(0, 1).title.startswith("Residual")
