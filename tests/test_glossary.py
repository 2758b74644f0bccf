"""Glossary term use: reading TSV, CSV and TBX term pairs, the matching rule, and the rate with its counts."""

import json

import pytest
from conftest import EOS, PAD, make_args, tiny_marian
from tiny_checkpoints import word_tokenizer

from hf_l2mt.apps.cli import main
from hf_l2mt.apps.publish.model_card import build_model_card
from hf_l2mt.evaluation.forgetting import build_report, format_report
from hf_l2mt.evaluation.glossary import (
    NO_TERM_USED,
    GlossaryError,
    languages_of_test_files,
    read_glossary,
    term_use,
    terms_in,
    uses_term,
)
from hf_l2mt.evaluation.translate import load_translation_model, translate

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


def test_terms_with_punctuation_or_no_word_are_found(tmp_path):
    glossary = read_glossary(write(tmp_path, "terms.tsv", "C++\tC++\ne-mail\tE-Mail\n→\tnach\nmail\tPost\n"))
    assert terms_in("Write C++ code, send an E-Mail → done", glossary) == ["C++", "e-mail", "→"]
    assert terms_in("Write C code by mail", glossary) == ["mail"]


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


# ---- In the forgetting report: JSON, table, model card and hf-l2mt evaluate --glossary -----------------------


def report_with_checks(glossary):
    sources = {
        "in_domain": ["The contract ends.", "Delete %d files?", "Hello."],
        "general": ["Good morning.", "Thank you."],
    }
    references = {
        "in_domain": ["Der Vertrag endet.", "%d Dateien löschen?", "Hallo."],
        "general": ["Guten Morgen.", "Danke."],
    }
    translations = {
        "base": {"in_domain": ["Der Kontrakt endet.", "Dateien löschen?", "Hallo."],
                 "general": ["Guten Morgen.", "Danke."]},
        "run": {"in_domain": ["Der Mietvertrag endet.", "%d Dateien löschen?", "Hallo."],
                "general": ["Morgen.", "Danke."]},
    }
    return build_report(references, translations, ["general"], seed=9, resamples=50, sources=sources,
                        glossary=glossary)


def test_the_report_holds_term_use_and_placeholders_per_set_and_model(glossary):
    report = report_with_checks(glossary)
    in_domain, general = report["sets"]["in_domain"], report["sets"]["general"]
    assert in_domain["glossary"]["base"]["rate"] == 1.0
    assert in_domain["glossary"]["run"] == {
        "hits": 0, "sentences_with_term": 1, "rate": 0.0, "why": "hits / sentences_with_term",
        "missed": [{"line": 1, "terms": [{"source": "contract", "target": ["Vertrag", "Kontrakt"]}]}],
    }
    assert general["glossary"]["run"]["rate"] is None  # the set has no term: undefined, not 0 %
    assert in_domain["placeholders"]["base"]["accuracy"] == 0.0
    assert in_domain["placeholders"]["run"]["accuracy"] == 1.0
    assert "placeholders" not in general  # no source of the set has one
    assert report["glossary"]["terms"] == 3 and report["glossary"]["file"] == glossary.path

    table = format_report(report)
    assert "term use: base 1/1 (100 %), run 0/1 (0 %)" in table
    assert "placeholders kept: base 0/1 (0 %), run 1/1 (100 %)" in table
    assert "term use: undefined: no sentence uses a glossary term" in table


def test_without_a_glossary_or_placeholders_the_report_has_neither():
    report = build_report({"general": ["Hallo."]}, {"base": {"general": ["Hallo."]}, "run": {"general": ["Hi."]}},
                          ["general"], seed=9, resamples=50, sources={"general": ["Hello."]})
    assert report["glossary"] is None and set(report["sets"]["general"]).isdisjoint({"glossary", "placeholders"})
    assert "term use" not in format_report(report) and "placeholders kept" not in format_report(report)


def test_a_glossary_without_sources_is_refused(glossary):
    with pytest.raises(ValueError, match="a glossary needs the source sentences"):
        build_report({"general": ["Hallo."]}, {"base": {"general": ["Hallo."]}, "run": {"general": ["Hi."]}},
                     ["general"], seed=9, resamples=50, glossary=glossary)


def test_the_model_card_has_a_term_use_table_and_a_placeholder_line(glossary, tmp_path):
    report = report_with_checks(glossary)
    card = str(build_model_card(
        base_model="base", src_lang="en", tgt_lang="de", training_args=make_args(tmp_path / "run"), scores={},
        forgetting=report,
    ))
    assert "| Set | Base | This model |\n|---|---:|---:|\n| in_domain | 100 % (1/1) | 0 % (0/1) |" in card
    assert "| general | undefined: no sentence uses a glossary term | |" in card
    assert "Placeholders kept exactly (%s, {0}, $1, ...): in_domain: base 0 % (0/1), this model 100 % (1/1)." in card


def test_evaluate_with_a_glossary_reports_term_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    models = {}
    for name, seed in (("base", 3), ("run", 4)):
        models[name] = str(tmp_path / name)
        tiny_marian(seed=seed).save_pretrained(models[name])
        word_tokenizer(PAD, EOS).save_pretrained(models[name])
    run_model = load_translation_model(models["run"])
    sources = ["the dog sees a cat", "a cat", "the sun"]
    hypotheses = translate(sources, *run_model, num_beams=1, max_new_tokens=6, progress=False)
    # A glossary whose target for "cat" is the run's own first word of sentence 1, so at least one hit is known.
    first_word = (hypotheses[0].split() or ["<none>"])[0]
    write(tmp_path, "terms.tbx", TBX.replace("contract", "cat").replace("Vertrag", first_word))
    write(tmp_path, "t.en", "\n".join(sources) + "\n")
    write(tmp_path, "t.de", "der Hund\neine Katze\ndie Sonne\n")
    test = f"general={tmp_path / 't.en'},{tmp_path / 't.de'}"
    main(["evaluate", models["run"], "--base", models["base"], "--test", test, "--glossary", str(tmp_path / "terms.tbx"), "--num_beams", "1",
          "--max_new_tokens", "6", "--device", "cpu", "--bootstrap_resamples", "50"])
    out = capsys.readouterr().out
    with open(tmp_path / "run" / "forgetting_report.json", encoding="utf-8") as handle:
        report = json.load(handle)
    run = report["sets"]["general"]["glossary"]["run"]
    expected_hits = sum(uses_term(h, (first_word, "Kontrakt")) for h in hypotheses[:2])
    assert (run["hits"], run["sentences_with_term"]) == (expected_hits, 2) and expected_hits >= 1
    assert report["glossary"]["languages"] == ["en", "de-DE"]
    assert report["command"].endswith(f"--glossary {tmp_path / 'terms.tbx'}")
    assert f"run {expected_hits}/2" in out


def test_glossary_needs_base(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "RUN", "--test", "t=a.en,a.de", "--glossary", "terms.tsv"])
    assert "--glossary terms.tsv: needs --base BASE_MODEL" in capsys.readouterr().err
