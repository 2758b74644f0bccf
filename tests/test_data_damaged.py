"""Files from the wild: each one gives the right pairs or a short error naming the file and the place.

The error for each kind of damage is checked in test_errors_catalogue.py (one row of
docs/errors.md each); here, what must load still loads, a file cut at any byte is never read as
fewer or shorter pairs, and no message pastes a huge line.
"""

import json
import logging
import os
import socket

import huggingface_hub
import polib
import pytest

from hf_l2mt.data import DataFormatError, EmptyCorpusError, load_pairs
from hf_l2mt.data.errors import SourceUnavailableError

PAIRS = [("Hello", "Hallo"), ("Open file", "Datei öffnen"), ("Save as", "Speichern unter")]
MESSAGE_LIMIT = 600


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def pairs_of(dataset):
    return list(zip(dataset["source"], dataset["target"]))


def catalogue(pairs=PAIRS, plural_forms="nplurals=2; plural=(n != 1);") -> polib.POFile:
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "de", "Plural-Forms": plural_forms}
    for msgid, msgstr in pairs:
        po.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    return po


def test_crlf_and_byte_order_mark_give_the_right_pairs(tmp_path, cache):
    tsv = tmp_path / "windows.tsv"
    tsv.write_bytes("\ufeffen\tde\r\nHello\tHallo\r\nYes\tJa\r\n".encode())
    csv = tmp_path / "windows.csv"
    csv.write_bytes("\ufeffen,de\r\n\"Hello, world\",\"Hallo, Welt\"\r\nYes,Ja\r\n".encode())
    assert pairs_of(load_pairs(str(tsv), "en", "de", cache_dir=cache)) == [("Hello", "Hallo"), ("Yes", "Ja")]
    assert pairs_of(load_pairs(str(csv), "de", "en", cache_dir=cache)) == [("Hallo, Welt", "Hello, world"),
                                                                          ("Ja", "Yes")]


@pytest.mark.parametrize("src_lang, tgt_lang", [("en-US", "de"), ("en", "de-DE"), ("de-DE", "en-US")])
def test_a_region_finds_the_bare_column_and_the_other_side_its_own(tmp_path, cache, src_lang, tgt_lang):
    path = tmp_path / "bare.tsv"
    path.write_text("en\tde\nHello\tHallo\n", encoding="utf-8")
    expected = ("Hello", "Hallo") if src_lang.startswith("en") else ("Hallo", "Hello")
    assert pairs_of(load_pairs(str(path), src_lang, tgt_lang, cache_dir=cache)) == [expected]


def test_same_column_for_both_sides_is_refused_in_json_and_tmx_too(tmp_path, cache):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(json.dumps({"en": "Hello", "de": "Hallo"}) + "\n", encoding="utf-8")
    tmx = tmp_path / "memory.tmx"
    tmx.write_text('<tmx version="1.4"><body><tu><tuv xml:lang="en"><seg>Hello</seg></tuv>'
                   '<tuv xml:lang="de"><seg>Hallo</seg></tuv></tu></body></tmx>\n', encoding="utf-8")
    for path in (jsonl, tmx):
        with pytest.raises(DataFormatError, match=r"line 1: src_lang='en' and tgt_lang='en-GB' both match 'en'"):
            load_pairs(str(path), "en", "en-GB", cache_dir=cache)


def test_mo_cut_at_any_byte_is_refused_or_whole(tmp_path, cache):
    full = tmp_path / "full.mo"
    catalogue().save_as_mofile(str(full))
    data = full.read_bytes()
    refused = 0
    for size in range(len(data)):
        cut = tmp_path / f"cut-{size}.mo"
        cut.write_bytes(data[:size])
        try:
            assert sorted(pairs_of(load_pairs(str(cut), "en", "de", cache_dir=cache))) == sorted(PAIRS)
        except DataFormatError:
            refused += 1
    # Only the NUL that ends the last string may go: no string reaches into it.
    assert refused == len(data) - 1


def test_po_cut_at_any_byte_is_refused_or_gives_whole_pairs(tmp_path, cache):
    full = tmp_path / "full.po"
    catalogue().save(str(full))
    data = full.read_bytes()
    for size in range(len(data)):
        cut = tmp_path / f"cut-{size}.po"
        cut.write_bytes(data[:size])
        try:
            loaded = pairs_of(load_pairs(str(cut), "en", "de", cache_dir=cache))
        except (DataFormatError, EmptyCorpusError):
            continue
        assert loaded == PAIRS[:len(loaded)], f"cut at byte {size} gave {loaded}"


def test_one_plural_form_pairs_msgid_only_and_says_so(tmp_path, cache, caplog):
    po = catalogue([], "nplurals=1; plural=0;")
    po.metadata["Language"] = "ja"
    po.append(polib.POEntry(msgid="One file", msgid_plural="%d files", msgstr_plural={0: "%d 個のファイル"}))
    path = str(tmp_path / "ja.po")
    po.save(path)
    caplog.set_level(logging.INFO, logger="hf_l2mt")
    assert pairs_of(load_pairs(path, "en", "ja", cache_dir=cache)) == [("One file", "%d 個のファイル")]
    assert pairs_of(load_pairs(path, "ja", "en", cache_dir=cache)) == [("%d 個のファイル", "One file")]
    assert "1 msgid_plural (one plural form: msgstr[0] pairs with msgid only)" in caplog.text


@pytest.mark.parametrize("name, content, options", [
    ("huge.tsv", "x" * 10_000_000 + "\n", {}),
    ("huge-header.tsv", "en\t" + "x" * 10_000_000 + "\nHello\tHallo\n", {"header": True}),
    ("huge.csv", "x" * 10_000_000 + "\n", {"columns": ("en", "de"), "header": False}),
    ("huge.po", 'msgid "' + "x" * 10_000_000 + "\n", {}),
    ("huge.jsonl", json.dumps({"en": "x" * 10_000_000}) + "\n", {}),
])
def test_a_ten_megabyte_line_is_not_pasted_into_the_message(tmp_path, cache, name, content, options):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_pairs(str(path), "en", "de", cache_dir=cache, **options)
    message = str(raised.value)
    assert str(path) in message and ("line 1" in message or "first line" in message)
    assert len(message) < MESSAGE_LIMIT + len(str(path)), message[:MESSAGE_LIMIT]


def test_unreachable_hub_fails_after_one_connection_and_local_builders_still_load(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    # Every TCP connection goes through socket.socket.connect; datasets' retries, which the probe replaces,
    # would each be one more attempt.
    attempts = []
    connect = socket.socket.connect

    def counted_connect(sock, address):
        attempts.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counted_connect)
    with pytest.raises(SourceUnavailableError, match=r"hub:wmt/wmt16:de-en \(split 'train'\): .* cannot be reached"):
        load_pairs("hub:wmt/wmt16:de-en", "en", "de", cache_dir=cache)
    assert attempts == [("127.0.0.1", 9)]
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"translation": {"en": "Hello", "de": "Hallo"}}) + "\n", encoding="utf-8")
    dataset = load_pairs("hub:json", "en", "de", data_files=str(data), cache_dir=cache)
    assert pairs_of(dataset) == [("Hello", "Hallo")]
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False, "offline mode must end with the call"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_says_permission_denied(tmp_path):
    path = tmp_path / "secret.tsv"
    path.write_text("Hello\tHallo\n", encoding="utf-8")
    path.chmod(0)
    with pytest.raises(PermissionError, match=r"secret\.tsv: permission denied: this user may not read it"):
        load_pairs(str(path), "en", "de")
