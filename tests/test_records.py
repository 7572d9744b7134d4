import json
import re
from pathlib import Path

import pytest

from scoring import (
    ActivationRecord,
    AttentionRecord,
    Limits,
    ScoringInputError,
    load_attention_records,
    load_records,
    normalize,
)

SEED_TOKENS = [["the", " quick", " brown", " fox"], ["spotted", " leopard", " sprints", " at"]]


@pytest.mark.parametrize(
    "filename", ["neuronpedia_request.json", "bare_list.json", "long.csv", "long.tsv"]
)
def test_every_seed_format_loads_the_same_records(data_dir, filename):
    records = load_records(data_dir / filename)
    assert [r.tokens for r in records] == SEED_TOKENS
    assert [r.activations for r in records] == [[0, 0, 0, 8], [0, 9, 4, 0]]


def test_neuronpedia_feature_export(data_dir):
    records = load_records(data_dir / "neuronpedia_feature.json")
    assert len(records) == 3
    assert records[2].tokens == ["a", " slow", " snail"]
    assert records[2].activations == [0, 0, 0.5]


def test_openai_neuron_record_reads_every_group_and_quantile_lists(data_dir):
    records = load_records(data_dir / "openai_neuron_record.json")
    assert [r.source for r in records] == [
        "most_positive_activation_records[0]",
        "most_positive_activation_records[1]",
        "random_sample[0]",
        "random_sample_by_quantile[0][0]",
        "random_sample_by_quantile[1][0]",
    ]
    assert records[0].activations == [0.0, 0.1, -0.05, 3.2]


def test_path_json_text_and_parsed_object_agree(data_dir):
    path = data_dir / "neuronpedia_request.json"
    text = path.read_text()
    from_path = load_records(str(path))
    from_text = load_records(text)
    from_object = load_records(json.loads(text))
    assert [r.tokens for r in from_path] == [r.tokens for r in from_text] == [r.tokens for r in from_object]


def test_csv_text_without_file():
    records = load_records("sequence,token,activation\na,x,1\na,y,0\nb,z,2\n")
    assert [r.tokens for r in records] == [["x", "y"], ["z"]]


def test_activations_key_is_accepted_for_values():
    records = load_records([{"tokens": ["a"], "activations": [1]}])
    assert records[0].activations == [1.0]


def test_numeric_strings_are_numbers():
    records = load_records([{"tokens": ["a", "b"], "values": ["1.5", 2]}])
    assert records[0].activations == [1.5, 2.0]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([{"tokens": ["a", "b"], "values": [1]}], "2 tokens but 1 values"),
        ({"activations": [{"tokens": ["a"], "values": [1]}, {"tokens": ["a", "b"], "values": [1]}]},
         "activations[1] has 2 tokens but 1 values"),
        ([{"tokens": ["a"], "values": [float("nan")]}], "NaN/inf"),
        ('[{"tokens": ["a"], "values": [Infinity]}]', "NaN/inf"),
        ([{"tokens": ["a"], "values": ["abc"]}], "not a number"),
        ([{"tokens": ["a"], "values": [True]}], "must be numbers"),
        ([{"tokens": ["a"], "values": [None]}], "must be numbers"),
        ([{"tokens": ["a"], "values": [[1]]}], "must be numbers"),
        ([{"tokens": [1], "values": [1]}], "tokens must be strings"),
        ([{"tokens": [], "values": []}], "has no tokens"),
        ([], "no activation sequences"),
        ({"activations": []}, "no activation sequences"),
        ("", "empty"),
        ("   ", "empty"),
        ("{not json", "not valid JSON"),
        ({"foo": 1}, "could not find activation records"),
        ([{"values": [1]}], "no 'tokens'"),
        ([{"tokens": ["a"]}], "no 'values'"),
        ([{"tokens": "abc", "values": [1]}], "'tokens' must be a list"),
        ([{"tokens": ["a"], "values": 3}], "'values' must be a list"),
        (["just a string"], "must be an object"),
        (42, "not int"),
        ("sequence,token\n0,a\n", "needs a header row"),
        ("missing-file.json", "file not found"),
    ],
)
def test_bad_input_says_what_to_fix(source, message):
    with pytest.raises(ScoringInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_records(source)


def test_limits_on_sequences_and_tokens():
    many = [{"tokens": ["a"], "values": [1]}] * 5
    with pytest.raises(ScoringInputError, match="more than the limit of 4"):
        load_records(many, limits=Limits(max_sequences=4))
    long = [{"tokens": ["a"] * 10, "values": [1] * 10}]
    with pytest.raises(ScoringInputError, match="10 tokens, more than the limit of 8"):
        load_records(long, limits=Limits(max_tokens_per_sequence=8))


def test_empty_file_and_folder(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ScoringInputError, match="empty"):
        load_records(empty)
    with pytest.raises(ScoringInputError, match="folder"):
        load_records(tmp_path)


def test_global_normalisation_scales_by_max_over_all_records_and_clips_negatives():
    records = [ActivationRecord(["a", "b"], [-1.0, 2.0]), ActivationRecord(["c", "d"], [4.0, 1.0])]
    assert normalize(records, "global") == [[0.0, 5.0], [10.0, 2.5]]


def test_per_record_normalisation_scales_each_record_by_its_own_max():
    records = [ActivationRecord(["a", "b"], [-1.0, 2.0]), ActivationRecord(["c", "d"], [4.0, 1.0])]
    assert normalize(records, "per_record") == [[0.0, 10.0], [10.0, 2.5]]


def test_no_normalisation_keeps_raw_and_raw_is_never_changed():
    records = [ActivationRecord(["a", "b"], [-1.0, 2.0])]
    assert normalize(records, "none") == [[-1.0, 2.0]]
    normalize(records, "global")
    assert records[0].activations == [-1.0, 2.0]


def test_all_zero_normalises_to_zero_and_unknown_mode_is_an_error():
    assert normalize([ActivationRecord(["a"], [0.0])], "global") == [[0.0]]
    assert normalize([ActivationRecord(["a"], [-3.0])], "per_record") == [[0.0]]
    with pytest.raises(ScoringInputError, match="unknown normalization"):
        normalize([ActivationRecord(["a"], [1.0])], "max")


# --- attention records --------------------------------------------------------

def test_attention_matrix_is_to_by_from_and_a_causal_one_keeps_its_lower_half():
    tokens = ["a", "b", "c"]
    matrix = [[1.0, 0.5, 0.2], [0.0, 0.5, 0.3], [0.0, 0.0, 0.5]]  # matrix[to][from]
    (record,) = load_attention_records({"tokens": tokens, "attention": matrix})
    assert record.pairs == [(0, 0, 1.0), (1, 0, 0.5), (1, 1, 0.5), (2, 0, 0.2), (2, 1, 0.3), (2, 2, 0.5)]
    assert record.max_value == 1.0 and record.source == "attention record 0"
    full = AttentionRecord.from_matrix(["a", "b"], [[0.5, 0.5], [0.5, 0.5]])
    assert len(full.pairs) == 4


def test_attention_pairs_in_every_form(tmp_path):
    import numpy as np

    expected = [(1, 0, 0.9), (1, 1, 0.1)]
    as_lists = {"tokens": ["a", "b"], "pairs": [[1, 0, 0.9], [1, 1, 0.1]]}
    objects = [{"from": 1, "to": 0, "value": 0.9}, {"from": 1, "to": 1, "value": 0.1}]
    as_objects = {"tokens": ["a", "b"], "pairs": objects}
    path = tmp_path / "attention.json"
    path.write_text(json.dumps({"records": [as_lists]}))
    for source in (as_lists, [as_objects], json.dumps([as_lists]), path, str(path)):
        assert load_attention_records(source)[0].pairs == expected
    assert load_attention_records(AttentionRecord(["a", "b"], expected))[0].pairs == expected
    matrix = np.array([[0.0, 0.9], [0.0, 0.1]])
    assert AttentionRecord.from_matrix(["a", "b"], matrix).pairs == [(0, 0, 0.0), (1, 0, 0.9), (1, 1, 0.1)]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"tokens": ["a", "b"], "attention": [[1.0, 0.5], [0.2]]}, "attention row 1 has 1 values for 2 tokens"),
        ({"tokens": ["a", "b"], "attention": [[1.0, 0.5]]}, "1 rows for 2 tokens"),
        ({"tokens": ["a", "b"], "attention": [[1.0, 0.5], 0.2]}, "attention row 1 is float, not a list"),
        ({"tokens": ["a", "b"], "attention": [[1.0, float("nan")], [0, 1]]}, "replace NaN/inf"),
        ({"tokens": ["a", "b"], "attention": [[1.0, float("inf")], [0, 1]]}, "replace NaN/inf"),
        ({"tokens": ["a", "b"], "attention": [[1.0, -0.5], [0, 1]]}, "must be >= 0"),
        ({"tokens": ["a", "b"], "attention": [[1.0, "x"], [0, 1]]}, "attention[0][1] is str"),
        ({"tokens": ["a", "b"], "attention": [[True, 0], [0, 1]]}, "attention values must be numbers"),
        ({"tokens": ["a", "b"], "attention": "[[1]]"}, "must be a list of rows"),
        ({"tokens": ["a"], "pairs": [[0, 1, 0.5]]}, "to index 1 is out of range for 1 tokens"),
        ({"tokens": ["a"], "pairs": [[-1, 0, 0.5]]}, "from index -1 is out of range"),
        ({"tokens": ["a"], "pairs": [[0.0, 0, 0.5]]}, "from index 0.0 must be a whole number"),
        ({"tokens": ["a"], "pairs": [[0, 0, 0.5], [0, 0, 0.2]]}, "repeats the pair"),
        ({"tokens": ["a"], "pairs": [[0, 0]]}, "give [from_index, to_index, value]"),
        ({"tokens": ["a"], "pairs": [{"from": 0, "value": 1}]}, "has no to"),
        ({"tokens": ["a"], "pairs": []}, "has no attention pairs"),
        ({"tokens": ["a"], "pairs": [[0, 0, None]]}, "attention values must be numbers"),
        ({"tokens": [], "pairs": [[0, 0, 1]]}, "has no tokens"),
        ({"tokens": "ab", "pairs": [[0, 0, 1]]}, "'tokens' must be a list"),
        ({"tokens": ["a", 3], "attention": [[1, 0], [0, 1]]}, "token 1 is int"),
        ({"tokens": ["a"]}, "neither 'attention'"),
        ({"attention": [[1]]}, "has no 'tokens'"),
        ([["a", [[1]]]], "must be an object"),
        ([], "no attention records found"),
        ("sequence,token,activation\n0,a,1\n", "attention records must be JSON"),
        (42, "records must be a path"),
    ],
)
def test_bad_attention_records_say_what_to_fix(source, message):
    with pytest.raises(ScoringInputError, match=re.escape(message)):
        load_attention_records(source)


def test_attention_records_respect_limits():
    records = [{"tokens": ["a", "b", "c"], "pairs": [[0, 0, 1.0]]}] * 3
    with pytest.raises(ScoringInputError, match="more than the limit of 2"):
        load_attention_records(records, limits=Limits(max_sequences=2))
    with pytest.raises(ScoringInputError, match="3 tokens, more than the limit of 2"):
        load_attention_records(records[:1], limits=Limits(max_tokens_per_sequence=2))


def test_values_beyond_the_magnitude_limit_are_rejected_not_scored_as_nan() -> None:
    from scoring.records import MAX_ABS_ACTIVATION

    with pytest.raises(ScoringInputError, match=r"sequence\[0\] value 1 is 1\.8e\+307, beyond the limit"):
        load_records([{"tokens": ["a", "b"], "values": [1.0, 1.8e307]}])
    with pytest.raises(ScoringInputError, match="beyond the limit"):
        load_records([{"tokens": ["a", "b"], "values": [-2 * MAX_ABS_ACTIVATION, 1]}])
    assert load_records([{"tokens": ["a", "b"], "values": [0, MAX_ABS_ACTIVATION]}])[0].activations[1] == 1e30


def test_a_token_with_a_lone_surrogate_is_an_input_error() -> None:
    with pytest.raises(ScoringInputError, match=r"sequence\[0\] token 1 holds a lone surrogate '\\udc80'"):
        load_records([{"tokens": ["a", "b\udc80"], "values": [0, 1]}])


def test_a_negative_seed_is_an_input_error() -> None:
    from scoring.api import score_explanation

    records = load_records([{"tokens": ["a", "b"], "values": [0, 1]}])
    with pytest.raises(ScoringInputError, match="seed must be a whole number from 0"):
        score_explanation("b", records, simulator="lexical", seed=-1, cache=False)


def test_text_only_input_never_opens_a_path(tmp_path: Path) -> None:
    """allowed_dirs=() (the dashboard's paste box): a path is text, and the error is the same whether it exists."""
    from support.file_reads import watch_reads

    records_file = tmp_path / "feature.json"
    records_file.write_text(json.dumps([{"tokens": ["a", " fox"], "values": [0, 3]}]))
    messages = set()
    with watch_reads(tmp_path) as opened:
        for text in (str(records_file), str(tmp_path / "missing.json"), f"{tmp_path}/../{tmp_path.name}/feature.json"):
            with pytest.raises(ScoringInputError, match="not opened") as raised:
                load_records(text, allowed_dirs=())
            messages.add(str(raised.value))
    assert opened == [] and len(messages) == 1
    assert load_records(str(records_file))[0].tokens == ["a", " fox"]  # the library's default still reads paths


def test_errors_about_a_files_contents_never_quote_it(tmp_path: Path) -> None:
    secret = "sk-canary-55d0"
    cases = {
        ".env": f"OPENAI_API_KEY={secret}\n",
        "values.csv": f"sequence,token,activation\n0,a,{secret}\n",
        "text.txt": f"{secret}\t1\n b\t{secret}\n",
        "object.json": json.dumps({secret: 1}),
        "values.json": json.dumps([{"tokens": ["a"], "values": [secret]}]),
        "token.json": json.dumps([{"tokens": [{"t": secret}], "values": [1]}]),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ScoringInputError) as raised:
            load_records(path)
        assert secret not in str(raised.value), (name, str(raised.value))
        with pytest.raises(ScoringInputError) as pasted:
            load_records(content, allowed_dirs=())
        if name != ".env":  # the same text pasted is the user's own: its errors may quote it
            assert secret in str(pasted.value), (name, str(pasted.value))
