import json
import math

import pytest

from scoring import ActivationRecord, Limits, ScoringInputError, load_records, normalize
from scoring.records import to_int_scale

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


def test_integer_scale_rounds_half_up_and_clips():
    assert to_int_scale([0.0, 0.49, 0.5, 9.6, 10.0, 12.0]) == [0, 0, 1, 10, 10, 10]
    assert not math.isnan(sum(to_int_scale([1.2])))
