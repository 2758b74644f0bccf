"""Local parallel files: TSV, CSV, JSON Lines / JSON and plain-text pairs, through load_pairs."""

import csv
import json

import pytest

from hf_l2mt.data import DataFormatError, LanguageNotFoundError, clean_pairs, load_csv, load_pairs, load_tsv
from hf_l2mt.data import files
from hf_l2mt.data.files import _delimited_pairs, delimited_rows


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def pairs_of(dataset):
    return list(zip(dataset["source"], dataset["target"]))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_header_named_by_language_codes_in_either_direction(tmp_path, cache):
    path = write(tmp_path / "a.tsv", "de\ten-US\nHallo\tHello\nWelt\tWorld\n")
    assert pairs_of(load_pairs(path, "en", "de", cache_dir=cache)) == [("Hello", "Hallo"), ("World", "Welt")]
    assert pairs_of(load_pairs(path, "de", "en", cache_dir=cache)) == [("Hallo", "Hello"), ("Welt", "World")]


def test_tsv_without_header_is_positional_and_keeps_quotes(tmp_path, cache):
    path = write(tmp_path / "b.tsv", 'He said "hi\tEr sagte "hallo\textra\r\nYes\tJa\textra\n')
    assert pairs_of(load_tsv(path, "en", "de", cache_dir=cache)) == [('He said "hi', 'Er sagte "hallo'), ("Yes", "Ja")]
    assert pairs_of(load_tsv(path, "de", "en", columns=(1, 0), cache_dir=cache))[1] == ("Ja", "Yes")


def test_csv_quoting_and_named_columns(tmp_path, cache):
    path = write(tmp_path / "c.csv", 'id,english,german\n1,"Hello, world","Hallo, Welt"\n2,"two\nlines",zwei\n')
    dataset = load_csv(path, "en", "de", columns=("english", "german"), cache_dir=cache)
    assert pairs_of(dataset) == [("Hello, world", "Hallo, Welt"), ("two\nlines", "zwei")]


def test_missing_column_names_file_line_and_what_was_found(tmp_path, cache):
    path = write(tmp_path / "short.tsv", "Hello\tHallo\nOnly one column\n")
    with pytest.raises(DataFormatError, match=r"short\.tsv line 2: found 1 column\(s\) \['Only one column'\]"):
        load_tsv(path, "en", "de", cache_dir=cache)


def test_header_without_the_language_is_a_language_error(tmp_path, cache):
    path = write(tmp_path / "h.tsv", "en\tde\nHello\tHallo\n")
    with pytest.raises(ValueError, match="columns=.*no header line"):
        load_tsv(path, "en", "fr", header=False, columns=("en", "fr"), cache_dir=cache)
    expected = r"h\.tsv line 1 \(header\): language code 'fr' not in this dataset; it has: de, en"
    with pytest.raises(LanguageNotFoundError, match=expected):
        load_tsv(path, "en", "fr", header=True, cache_dir=cache)


def test_two_regions_for_one_code_must_be_told_apart(tmp_path, cache):
    path = write(tmp_path / "regions.tsv", "en-US\ten-GB\tde\nColor\tColour\tFarbe\n")
    expected = r"regions\.tsv line 1 \(header\): language code 'en' matches several: en-GB, en-US"
    with pytest.raises(DataFormatError, match=expected):
        load_tsv(path, "en", "de", cache_dir=cache)
    assert pairs_of(load_tsv(path, "en-GB", "de", cache_dir=cache)) == [("Colour", "Farbe")]


def test_invalid_utf8_names_file_and_byte_offset(tmp_path, cache):
    data = "Street\tStraße\n".encode() + b"Foot\tFu\xdf\n"
    path = tmp_path / "latin1.tsv"
    path.write_bytes(data)
    offset = data.index(b"Fu") + 2
    with pytest.raises(DataFormatError, match=rf"latin1\.tsv: invalid UTF-8 at byte offset {offset} \(line 2"):
        load_pairs(str(path), "en", "de", cache_dir=cache)


def test_jsonl_nested_and_flat_records(tmp_path, cache):
    lines = [{"translation": {"en": "Hello", "de": "Hallo"}}, {"en": "World", "de": "Welt", "id": 3}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert pairs_of(load_pairs(path, "en", "de", cache_dir=cache)) == [("Hello", "Hallo"), ("World", "Welt")]


def test_jsonl_missing_language_key_names_line_and_keys_found(tmp_path, cache):
    lines = [{"en": "Hello", "de": "Hallo"}, {"en": "World", "nl": "Wereld"}]
    path = write(tmp_path / "e.jsonl", "\n".join(json.dumps(line) for line in lines))
    expected = r"e\.jsonl line 2: language code 'de' not in this dataset; it has: en, nl"
    with pytest.raises(LanguageNotFoundError, match=expected):
        load_pairs(path, "en", "de", cache_dir=cache)
    with pytest.raises(LanguageNotFoundError, match="language code 'fr' not in this dataset; it has: de, en"):
        load_pairs(path, "en", "fr", cache_dir=cache)


def test_json_array_and_bad_json(tmp_path, cache):
    path = write(tmp_path / "f.json", json.dumps([{"translation": {"en": "Yes", "de": "Ja"}}]))
    assert pairs_of(load_pairs(path, "en", "de", cache_dir=cache)) == [("Yes", "Ja")]
    bad = write(tmp_path / "g.jsonl", '{"en": "a", "de": "b"}\n{"en": "a", \n')
    with pytest.raises(DataFormatError, match=r"g\.jsonl line 2: not valid JSON"):
        load_pairs(bad, "en", "de", cache_dir=cache)


def test_plain_text_pair_from_prefix(tmp_path, cache):
    write(tmp_path / "train.en", "Hello\nWorld\n")
    write(tmp_path / "train.de", "Hallo\nWelt")
    assert pairs_of(load_pairs(str(tmp_path / "train"), "en", "de", cache_dir=cache)) == [
        ("Hello", "Hallo"), ("World", "Welt"),
    ]


def test_misaligned_plain_text_pair_gives_both_counts(tmp_path, cache):
    write(tmp_path / "train.en", "Hello\nWorld\nAgain\n")
    write(tmp_path / "train.de", "Hallo\nWelt\n")
    with pytest.raises(DataFormatError, match=r"train\.en has 3 lines but .*train\.de has 2"):
        load_pairs(str(tmp_path / "train"), "en", "de", cache_dir=cache)


def test_edited_file_is_read_again(tmp_path, cache):
    path = tmp_path / "h.tsv"
    write(path, "Hello\tHallo\n")
    assert len(load_pairs(str(path), "en", "de", cache_dir=cache)) == 1
    write(path, "Hello\tHallo\nYes\tJa\n")
    assert len(load_pairs(str(path), "en", "de", cache_dir=cache)) == 2


def test_unknown_source_lists_what_is_accepted(tmp_path):
    path = write(tmp_path / "corpus.xml", "<corpus/>\n")
    with pytest.raises(ValueError, match=r"cannot tell how to read .*corpus\.xml.*\.tsv, \.csv, .*hub:NAME\[:CONFIG\]"):
        load_pairs(path, "en", "de")
    with pytest.raises(ValueError, match="name the same language"):
        load_pairs("x.tsv", "en", "EN")


def test_csv_field_over_the_csv_module_limit_loads_and_cleaning_drops_it(tmp_path, cache):
    limit_before = csv.field_size_limit()
    long_field = ("A long, quoted\nparagraph. " * 20_000)[:200_000]  # 200 KB: past csv's 131,072
    path = tmp_path / "long.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["en", "de"], ["Hello", "Hallo"], [long_field, "Lang"], ["Yes", "Ja"]])
    dataset = load_csv(str(path), "en", "de", cache_dir=cache)
    assert [len(source) for source in dataset["source"]] == [5, 200_000, 3]
    assert dataset["source"][1] == long_field
    # The process-wide limit is the caller's again, after loading as while the rows are read.
    assert csv.field_size_limit() == limit_before
    rows = _delimited_pairs(**delimited_rows(str(path), "en", "de", ",")[1])
    next(rows), next(rows)
    assert csv.field_size_limit() == limit_before
    kept, report = clean_pairs(dataset)
    assert pairs_of(kept) == [("Hello", "Hallo"), ("Yes", "Ja")]
    assert report.dropped["too_long"] == 1


def test_csv_quote_left_open_in_a_large_file_stops_at_the_field_limit(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(files, "CSV_FIELD_LIMIT", 1_000)
    path = write(tmp_path / "open.csv", 'en,de\nHello,Hallo\n"Yes,Ja\n' + "More,Mehr\n" * 200)
    with pytest.raises(DataFormatError, match=r"open\.csv line 3: a field runs past 1,000 characters; most likely "
                                              r"its opening quote is never closed"):
        load_csv(path, "en", "de", cache_dir=cache)
