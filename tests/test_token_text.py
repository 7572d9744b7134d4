"""The token<TAB>activation paste format, read by `scoring.load_records` like every other format."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring import ScoringInputError, load_records
from scoring.records import looks_like_token_text, records_to_token_text


def test_load_records_detects_the_format_and_keeps_leading_spaces() -> None:
    records = load_records("token\tactivation\nthe\t0\n fox\t7.5\n\n spotted\t0\n leopard\t8\n")
    assert [record.tokens for record in records] == [["the", " fox"], [" spotted", " leopard"]]
    assert records[0].activations == [0.0, 7.5]


def test_a_line_missing_its_tab_is_named() -> None:
    with pytest.raises(ScoringInputError, match=r"line 3 \(' quick 3'\) has no tab"):
        load_records("the\t0\n fox\t8\n quick 3\n")


def test_a_long_table_is_not_taken_for_token_text() -> None:
    assert not looks_like_token_text("sequence\ttoken\tactivation\n0\ta\t1\n")
    records = load_records("sequence\ttoken\tactivation\n0\ta\t1\n0\tb\t0\n")
    assert records[0].tokens == ["a", "b"]


def test_a_file_in_the_format_is_read_and_round_trips(tmp_path: Path) -> None:
    original = load_records("a\\tb\t1\n new\\nline\t2\n")
    assert original[0].tokens == ["a\tb", " new\nline"]
    path = tmp_path / "records.txt"
    path.write_text(records_to_token_text(original), encoding="utf-8")
    again = load_records(path)
    assert [record.tokens for record in again] == [record.tokens for record in original]
    assert [record.activations for record in again] == [[1.0, 2.0]]
