"""Glossary term use: reading TSV, CSV and TBX term pairs, the matching rule, and the rate with its counts."""

import pytest

from hf_l2mt.evaluation.glossary import (
    NO_TERM_USED,
    GlossaryError,
    languages_of_test_files,
    read_glossary,
    term_use,
    terms_in,
    uses_term,
)

TBX = """<?xml version="1.0" encoding="UTF-8"?>
<martif type="TBX" xml:lang="en">
<martifHeader><fileDesc><sourceDesc><p>terms</p></sourceDesc></fileDesc></martifHeader>
<text><body>
<termEntry id="1">
 <langSet xml:lang="en"><tig><term>contract</term></tig></langSet>
 <langSet xml:lang="de-DE"><tig><term>Vertrag</term></tig><tig><term>Kontrakt</term></tig></langSet>
 <langSet xml:lang="fr"><tig><term>contrat</term></tig></langSet>
</termEntry>
<termEntry id="2">
 <langSet xml:lang="en"><tig><term>data protection</term></tig></langSet>
 <langSet xml:lang="de-DE"><tig><term>Datenschutz</term></tig></langSet>
</termEntry>
</body></text></martif>
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def glossary(tmp_path):
    text = "source\ttarget\ncontract\tVertrag\ndata\tDaten\ndata protection\tDatenschutz\nContract\tKontrakt\n"
    return read_glossary(write(tmp_path, "terms.tsv", text))


def test_tsv_pairs_with_a_header_and_several_targets_for_one_term(glossary):
    assert glossary.terms == {
        "contract": ("Vertrag", "Kontrakt"), "data": ("Daten",), "data protection": ("Datenschutz",)
    }


def test_csv_with_quoted_commas_and_comment_lines(tmp_path):
    path = write(tmp_path, "terms.csv", '# terms of the contract team\n"terms, conditions","AGB"\nfee,Gebühr\n')
    assert read_glossary(path).terms == {"terms, conditions": ("AGB",), "fee": ("Gebühr",)}


def test_tbx_picks_the_languages_asked_for(tmp_path):
    path = write(tmp_path, "terms.tbx", TBX)
    german = read_glossary(path, "en", "de")  # "de" picks the only German: de-DE
    assert german.terms == {"contract": ("Vertrag", "Kontrakt"), "data protection": ("Datenschutz",)}
    assert german.languages == ("en", "de-DE")
    assert read_glossary(path, "en", "fr").terms == {"contract": ("contrat",)}


def test_tbx_without_the_languages_lists_what_it_has(tmp_path):
    path = write(tmp_path, "terms.tbx", TBX)
    with pytest.raises(GlossaryError, match="the TBX has the languages en, de-DE, fr, not both en and es"):
        read_glossary(path, "en", "es")
    with pytest.raises(GlossaryError, match="has the languages en, de-DE, fr, and the pair is not known"):
        read_glossary(path)


def test_a_tbx_with_two_languages_needs_no_pair(tmp_path):
    two = TBX.replace('<langSet xml:lang="fr"><tig><term>contrat</term></tig></langSet>', "")
    glossary = read_glossary(write(tmp_path, "terms.tbx", two))
    assert glossary.languages == ("en", "de-DE")


def test_an_empty_glossary_names_the_file(tmp_path):
    path = write(tmp_path, "terms.tsv", "source\ttarget\n\n")
    with pytest.raises(GlossaryError, match=r"terms.tsv: the file holds no term pairs"):
        read_glossary(path)


def test_a_line_without_a_target_names_the_line(tmp_path):
    path = write(tmp_path, "terms.tsv", "contract\tVertrag\nfee\n")
    with pytest.raises(GlossaryError, match=r"terms.tsv line 2: \['fee'\] has no target term"):
        read_glossary(path)


def test_an_unknown_format_and_a_missing_file(tmp_path):
    with pytest.raises(GlossaryError, match=r"terms.xlsx: cannot tell how to read it; accepted: a file ending in"):
        read_glossary(str(tmp_path / "terms.xlsx"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_glossary(str(tmp_path / "terms.tsv"))


def test_matching_is_case_insensitive_and_on_whole_words(glossary):
    assert terms_in("The CONTRACT is signed", glossary) == ["contract"]
    assert terms_in("Contractors and subcontracts", glossary) == []
    assert uses_term("Der VERTRAG gilt.", ("Vertrag",))
    assert uses_term("Straße", ("STRASSE",))  # case folding, not just lower-casing
    assert uses_term("Vertrag-Entwurf", ("Vertrag",))  # a hyphen separates words


def test_a_compound_containing_the_target_term_does_not_use_it():
    assert not uses_term("Der Mietvertrag gilt.", ("Vertrag",))
    assert not uses_term("Die Vertragsdauer", ("Vertrag",))


def test_multi_word_terms_match_across_any_white_space_and_the_longest_overlap_wins(glossary):
    assert terms_in("our data\n protection officer", glossary) == ["data protection"]
    assert terms_in("data protection of the data in the contract", glossary) == [
        "data protection", "data", "contract"
    ]


def test_term_use_rate_counts_and_missed_terms(glossary):
    sources = [
        "The contract is signed.",  # hit
        "No term here.",  # not counted
        "Data protection and the contract.",  # Datenschutz used, Vertrag missing
        "A contract about data.",  # hit: Kontrakt is also accepted
        "The contract.",  # a compound only: missed
    ]
    translations = [
        "Der Vertrag ist unterschrieben.",
        "Der Vertrag.",
        "Datenschutz und die Abmachung.",
        "Ein Kontrakt über Daten.",
        "Der Mietvertrag.",
    ]
    result = term_use(sources, translations, glossary)
    assert (result["hits"], result["sentences_with_term"]) == (2, 4)
    assert result["rate"] == pytest.approx(0.5)
    assert result["missed"] == [
        {"line": 3, "terms": [{"source": "contract", "target": ["Vertrag", "Kontrakt"]}]},
        {"line": 5, "terms": [{"source": "contract", "target": ["Vertrag", "Kontrakt"]}]},
    ]


def test_term_use_is_undefined_when_no_sentence_uses_a_term(glossary):
    result = term_use(["Nothing to see.", "Still nothing."], ["Nichts.", "Vertrag"], glossary)
    assert result["rate"] is None
    assert result["why"] == NO_TERM_USED == "undefined: no sentence uses a glossary term"


def test_languages_come_from_the_test_file_suffixes():
    assert languages_of_test_files({"a": ("x/a.en", "x/a.de"), "b": ("b.en", "b.de")}) == ("en", "de")
    assert languages_of_test_files({"a": ("a.en", "a.de"), "b": ("b.en", "b.fr")}) == (None, None)
    assert languages_of_test_files({"a": ("a.txt.src", "a.txt.ref-file")}) == (None, None)
