"""The Ding German–English dictionary format (Debian's trans-de-en)."""

import logging
import os

import pyarrow.compute as pc
import pytest

from hf_l2mt.data import DING_PATH, SUBJECT_TAGS, LanguageNotFoundError, load_ding, load_pairs, parse_ding_line

DING_LINES = """\
# Version :: test
Aal {m} [cook.] | Aale {pl} :: eel | eels
Blinddarm {m} [anat.] [med.] :: appendix; vermiform appendix [anat.]
Rechner {m} [comp.]; Computer {m} [ugs.] | Rechner {pl} :: computer [Br.] | computers
kaputt {adj} [ugs.] :: broken [coll.]
Haus {n} | Häuser {pl} | zu Hause :: house | houses
Spieß {m} <Spiess> (Speer) :: spear
helfen {vi} {+Dat.} [med] :: to help {helped; helped} [med.]
"""

ALL_PAIRS = [
    ("Aal", "eel", "cook."),
    ("Aale", "eels", ""),
    ("Blinddarm", "appendix; vermiform appendix", "anat.,med."),
    ("Rechner; Computer", "computer", "comp."),
    ("Rechner", "computers", ""),
    ("kaputt", "broken", ""),
    ("Spieß (Speer)", "spear", ""),
    ("helfen", "to help", "med."),
]


@pytest.fixture
def ding(tmp_path):
    path = tmp_path / "de-en"
    path.write_text(DING_LINES, encoding="utf-8")
    return str(path)


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def rows_of(dataset):
    return list(zip(dataset["source"], dataset["target"], dataset["domain"]))


def test_parse_line_aligns_alternatives_and_moves_subject_tags_to_domain():
    assert parse_ding_line("Aal {m} [cook.] | Aale {pl} :: eel | eels") == [("Aal", "eel", "cook."), ("Aale", "eels", "")]
    assert parse_ding_line("Haus {n} | Häuser {pl} :: house") is None
    assert parse_ding_line("no separator here") is None


def test_load_strips_annotations_and_counts_misaligned_lines(ding, cache, caplog):
    caplog.set_level(logging.INFO, logger="hf_l2mt")
    dataset = load_pairs(f"ding:{ding}", "de", "en", cache_dir=cache)
    assert dataset.column_names == ["source", "target", "domain"]
    assert rows_of(dataset) == ALL_PAIRS
    assert "skipped 1 line(s) whose German and English sides have different numbers of alternatives" in caplog.text


def test_english_to_german_swaps_sides(ding, cache):
    assert rows_of(load_ding(ding, "en", "de", cache_dir=cache))[0] == ("eel", "Aal", "cook.")


def test_domain_subsets(ding, cache):
    assert [row[0] for row in rows_of(load_ding(ding, domain="med.", cache_dir=cache))] == ["Blinddarm", "helfen"]
    untagged = rows_of(load_ding(ding, domain="", cache_dir=cache))
    assert untagged == [row for row in ALL_PAIRS if row[2] == ""]
    assert [row[0] for row in rows_of(load_ding(ding, domain=["cook", "comp."], cache_dir=cache))] == [
        "Aal", "Rechner; Computer",
    ]
    with pytest.raises(ValueError, match=r"domain='cooking' is not a Ding subject tag; accepted: '' .*cook\."):
        load_ding(ding, domain="cooking", cache_dir=cache)


def test_first_synonym_and_no_parentheses(ding, cache):
    rows = rows_of(load_ding(ding, synonyms="first", keep_parentheses=False, cache_dir=cache))
    assert ("Blinddarm", "appendix", "anat.,med.") in rows
    assert ("Rechner", "computer", "comp.") in rows
    assert ("Spieß", "spear", "") in rows


def test_languages_other_than_german_and_english_are_rejected(ding):
    with pytest.raises(LanguageNotFoundError, match="language code 'fr' not in this dataset; it has: de, en"):
        load_ding(ding, "de", "fr")


def test_missing_file_says_which_package_installs_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="trans-de-en"):
        load_ding(str(tmp_path / "absent"))


@pytest.mark.skipif(not os.path.isfile(DING_PATH), reason=f"{DING_PATH} absent (apt-get install trans-de-en)")
def test_real_ding_file(cache):
    dataset = load_pairs("ding", "de", "en", cache_dir=cache)
    assert len(dataset) > 200_000
    for column in ("source", "target"):
        left_over = pc.match_substring_regex(dataset.data.column(column), r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\s::\s")
        assert not pc.any(left_over).as_py()
    domains = set(pc.unique(dataset.data.column("domain")).to_pylist())
    assert {tag for value in domains for tag in value.split(",") if tag} <= SUBJECT_TAGS
    assert "" in domains and "med." in domains
    row = dataset[pc.index(dataset.data.column("source"), "Aalsuppe").as_py()]
    assert (row["target"], row["domain"]) == ("eel soup", "cook.")
