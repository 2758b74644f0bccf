"""Translation memories: TMX 1.4 and gettext PO / MO via polib."""

import logging

import polib
import pytest

from hf_l2mt.data import DataFormatError, LanguageNotFoundError, load_pairs, load_po, load_tmx

TMX = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4">
  <header creationtool="test" creationtoolversion="1" datatype="plaintext" segtype="sentence"
          adminlang="en-US" srclang="en-US" o-tmf="none"/>
  <body>
    <tu><tuv xml:lang="en-US"><seg>Hello world</seg></tuv><tuv xml:lang="de-DE"><seg>Hallo Welt</seg></tuv></tu>
    <tu>
      <prop type="x-domain">ui</prop>
      <tuv xml:lang="en-US"><seg>Click <bpt i="1">&lt;b&gt;</bpt>here<ept i="1">&lt;/b&gt;</ept> now</seg></tuv>
      <tuv xml:lang="de-DE"><seg>Jetzt <bpt i="1">&lt;b&gt;</bpt>hier<ept i="1">&lt;/b&gt;</ept> klicken</seg></tuv>
    </tu>
    <tu><tuv xml:lang="en-US"><seg>Only French</seg></tuv><tuv xml:lang="fr-FR"><seg>Seulement</seg></tuv></tu>
    <tu><tuv lang="EN"><seg>Old style</seg></tuv><tuv lang="DE"><seg>Alter Stil</seg></tuv></tu>
  </body>
</tmx>
"""

PO = r'''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Open file"
msgstr "Datei öffnen"

msgid ""
"A long message "
"on two lines"
msgstr ""
"Eine lange Nachricht "
"auf zwei Zeilen"

msgid "One file"
msgid_plural "%d files"
msgstr[0] "Eine Datei"
msgstr[1] "%d Dateien"

#, fuzzy
msgid "Save"
msgstr "Sichern"

msgid "Untranslated"
msgstr ""

#~ msgid "Old"
#~ msgstr "Alt"
'''

PO_PAIRS = [
    ("Open file", "Datei öffnen"),
    ("A long message on two lines", "Eine lange Nachricht auf zwei Zeilen"),
    ("One file", "Eine Datei"),
    ("%d files", "%d Dateien"),
]


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def pairs_of(dataset):
    return list(zip(dataset["source"], dataset["target"]))


@pytest.fixture
def tmx(tmp_path):
    path = tmp_path / "memory.tmx"
    path.write_text(TMX, encoding="utf-8")
    return str(path)


@pytest.fixture
def po(tmp_path):
    path = tmp_path / "messages.po"
    path.write_text(PO, encoding="utf-8")
    return str(path)


def test_tmx_matches_region_variants_and_drops_inline_codes(tmx, cache, caplog):
    caplog.set_level(logging.INFO, logger="hf_l2mt")
    dataset = load_pairs(tmx, "en", "de", cache_dir=cache)
    assert pairs_of(dataset) == [
        ("Hello world", "Hallo Welt"), ("Click here now", "Jetzt hier klicken"), ("Old style", "Alter Stil"),
    ]
    assert "skipped 1 <tu> without both en and de" in caplog.text


def test_tmx_region_given_matches_that_region_or_the_bare_language(tmx, cache):
    assert pairs_of(load_tmx(tmx, "de-DE", "en-US", cache_dir=cache))[0] == ("Hallo Welt", "Hello world")
    assert pairs_of(load_tmx(tmx, "en", "de-AT", cache_dir=cache)) == [("Old style", "Alter Stil")]
    expected = "language code 'ja' not in this dataset; it has: DE, EN, de-DE, en-US, fr-FR"
    with pytest.raises(LanguageNotFoundError, match=expected):
        load_tmx(tmx, "en", "ja", cache_dir=cache)


def test_tmx_syntax_error_names_line(tmp_path, cache):
    path = tmp_path / "broken.tmx"
    path.write_text(TMX.replace("</body>", ""), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken\.tmx line \d+: not valid TMX/XML"):
        load_tmx(str(path), "en", "de", cache_dir=cache)


def test_po_skips_fuzzy_obsolete_untranslated_and_pairs_plurals(po, cache, caplog):
    caplog.set_level(logging.INFO, logger="hf_l2mt")
    assert pairs_of(load_pairs(po, "en", "de", cache_dir=cache)) == PO_PAIRS
    assert "skipped 1 fuzzy, 1 obsolete, 1 untranslated" in caplog.text


def test_po_language_header_reverses_or_rejects(po, cache):
    assert pairs_of(load_po(po, "de", "en", cache_dir=cache)) == [(target, source) for source, target in PO_PAIRS]
    with pytest.raises(LanguageNotFoundError, match="language code 'fr' not in this dataset; it has: de"):
        load_po(po, "en", "fr", cache_dir=cache)


def test_mo_compiled_from_the_po_gives_the_same_pairs(po, tmp_path, cache):
    mo = str(tmp_path / "messages.mo")
    polib.pofile(po).save_as_mofile(mo)
    assert sorted(pairs_of(load_pairs(mo, "en", "de", cache_dir=cache))) == sorted(PO_PAIRS)


def test_po_in_latin1_reports_the_byte_offset(tmp_path, cache):
    text = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Street"\nmsgstr "Straße"\n'
    data = text.encode("latin-1")
    path = tmp_path / "latin1.po"
    path.write_bytes(data)
    offset = data.index("ß".encode("latin-1"))
    with pytest.raises(DataFormatError, match=rf"latin1\.po: invalid UTF-8 at byte offset {offset}"):
        load_po(str(path), "en", "de", cache_dir=cache)


def test_tmx_with_latin1_bytes_reports_the_byte_offset(tmp_path, cache):
    data = TMX.replace("Hallo Welt", "Straße").encode("utf-8").replace("ß".encode("utf-8"), "ß".encode("latin-1"))
    path = tmp_path / "latin1.tmx"
    path.write_bytes(data)
    offset = data.index("ß".encode("latin-1"))
    with pytest.raises(DataFormatError, match=rf"latin1\.tmx: invalid UTF-8 at byte offset {offset}"):
        load_tmx(str(path), "en", "de", cache_dir=cache)


def test_tmx_comments_and_processing_instructions_in_a_segment_are_not_text(tmp_path, cache):
    path = tmp_path / "commented.tmx"
    path.write_text(TMX.replace("Hallo Welt", "Hallo <!-- check -->Welt<?review done?>"), encoding="utf-8")
    assert pairs_of(load_tmx(str(path), "de", "en", cache_dir=cache))[0] == ("Hallo Welt", "Hello world")
