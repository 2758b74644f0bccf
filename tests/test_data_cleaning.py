"""Cleaning filters: each dropped pair is counted under one reason and logged."""

import logging

import pytest
from datasets import Dataset

from hf_l2mt.data import EmptyCorpusError, clean_pairs, load_pairs, load_tsv

ROWS = [
    ("  Hello\u00a0 world ", "Hallo\tWelt\n", "ui"),   # kept, whitespace normalised
    ("", "leer", ""),                                  # empty source
    ("x", "   ", ""),                                  # empty target once normalised
    ("long " * 300, "lang", ""),                       # too long (and a bad ratio: the first reason counts)
    ("a", "a very long target sentence here", ""),     # length ratio 32 > 9
    ("Hello world", "Hallo  Welt", "ui"),              # duplicate of the first after normalisation
    ("Good", "Gut", ""),                               # kept
]


def corpus(rows=ROWS):
    return Dataset.from_dict({
        "source": [row[0] for row in rows], "target": [row[1] for row in rows], "domain": [row[2] for row in rows],
    })


def test_counts_per_reason_and_kept_rows(caplog):
    caplog.set_level(logging.INFO, logger="hf_l2mt")
    cleaned, report = clean_pairs(corpus(), name="toy")
    assert cleaned.column_names == ["source", "target", "domain"]
    assert list(zip(cleaned["source"], cleaned["target"], cleaned["domain"])) == [
        ("Hello world", "Hallo Welt", "ui"), ("Good", "Gut", ""),
    ]
    assert (report.total, report.kept) == (7, 2)
    assert report.dropped == {"empty": 2, "too_long": 1, "length_ratio": 1, "duplicate": 1}
    assert report.total == report.kept + sum(report.dropped.values())
    assert "cleaning toy: 7 pairs in, 2 kept" in str(report)
    assert "dropped duplicate" in caplog.text and "toy" in caplog.text


def test_word_lengths_and_disabled_filters():
    rows = [("one two three four", "eins zwei drei vier", ""), ("a", "b c d", ""), ("a", "b c d", "")]
    cleaned, report = clean_pairs(corpus(rows), max_length=3, length_unit="words", max_length_ratio=None, dedupe=False)
    assert report.dropped == {"empty": 0, "too_long": 1, "length_ratio": 0, "duplicate": 0}
    assert cleaned["target"] == ["b c d", "b c d"]
    cleaned, report = clean_pairs(corpus(rows), max_length=None, max_length_ratio=None, dedupe=False)
    assert report.kept == 3


def test_nothing_left_names_the_filters():
    expected = r"toy: no pair left after cleaning \(2 pairs in; dropped empty=2, too_long=0"
    with pytest.raises(EmptyCorpusError, match=expected):
        clean_pairs(corpus([("", "a", ""), ("b", "", "")]), name="toy")


def test_empty_file_is_an_empty_corpus(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(EmptyCorpusError, match=r"empty\.tsv: no pair in it: the file is empty \(0 bytes\)"):
        load_pairs(str(path), "en", "de", cache_dir=str(tmp_path / "cache"))
    dataset = load_tsv(str(path), "en", "de", cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 0
    with pytest.raises(EmptyCorpusError, match="0 pairs in"):
        clean_pairs(dataset, name=str(path))


@pytest.mark.parametrize("flags, message", [
    ({"max_length": 0}, "max_length=0"),
    ({"length_unit": "tokens"}, "length_unit='tokens': accepted are chars, words"),
    ({"max_length_ratio": 0.5}, "max_length_ratio=0.5"),
])
def test_bad_flags_are_named(flags, message):
    with pytest.raises(ValueError, match=message):
        clean_pairs(corpus(), **flags)
