"""The tokenizer of a Marian export read with sentencepiece alone gives the ids and the text of transformers'
``MarianTokenizer``, and ``hf-l2mt translate EXPORT`` then imports neither torch nor transformers."""

import json
import os
import subprocess
import sys

import pytest
from tiny_checkpoints import save_opus_mt_checkpoint, sentence_pairs
from transformers import AutoTokenizer

from hf_l2mt.evaluation.export_tokenizer import MarianPieces, load_export_tokenizer, marian_pieces_settings
from hf_l2mt.evaluation.source_ids import encode_sources
from hf_l2mt.tokenizer_warnings import without_sacremoses_recommendation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = [
    "the dog barks", "", "   leading and trailing spaces  ", "zebra quartz ünïcödé 42 ?!", "the cat </s> sleeps",
    "<unk><pad>the</s>", ">>de<< the sun is red", "the " * 40,
]


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("marian")
    return save_opus_mt_checkpoint(path, sentence_pairs(64, seed=1))


def test_marian_pieces_encode_and_decode_as_marian_tokenizer(marian_dir):
    with without_sacremoses_recommendation():
        theirs = AutoTokenizer.from_pretrained(marian_dir)
    ours = load_export_tokenizer(marian_dir)
    assert isinstance(ours, MarianPieces)
    theirs.model_max_length = ours.model_max_length = 16  # the last sentence is longer: truncated

    their_ids, our_ids = encode_sources(theirs, SENTENCES), encode_sources(ours, SENTENCES)

    assert our_ids == their_ids
    assert max(map(len, our_ids)) == 16
    for ids in our_ids:
        tokens = ours.convert_ids_to_tokens(ids)
        assert tokens == theirs.convert_ids_to_tokens(ids)
        assert ours.convert_tokens_to_ids(tokens) == ids
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)


def test_settings_marian_pieces_does_not_cover_are_left_to_transformers(marian_dir, tmp_path):
    config_path = os.path.join(marian_dir, "tokenizer_config.json")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    assert marian_pieces_settings(marian_dir) == config
    for key, value in (("separate_vocabs", True), ("clean_up_tokenization_spaces", True), ("sp_model_kwargs", {"alpha": 0.1})):
        folder = tmp_path / key
        folder.mkdir()
        for name in os.listdir(marian_dir):
            os.symlink(os.path.join(marian_dir, name), folder / name)
        os.unlink(folder / "tokenizer_config.json")
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, key: value}), encoding="utf-8")
        assert marian_pieces_settings(str(folder)) is None, key


def test_translate_with_a_marian_export_imports_neither_torch_nor_transformers(marian_dir, tmp_path):
    pytest.importorskip("ctranslate2")
    from hf_l2mt.apps.export.convert import ExportSettings, export_model

    export_dir = str(tmp_path / "ct2")
    probe = tmp_path / "probe.en"
    probe.write_text("the dog barks\nthe sun is red\n", encoding="utf-8")
    export_model(ExportSettings(model_dir=marian_dir, probe=str(probe), output_dir=export_dir, parity_tolerance=100,
                                max_new_tokens=8))
    script = f"""
import sys
import hf_l2mt.apps.cli as cli
cli.main(["translate", {export_dir!r}, "--input", {str(probe)!r}, "--num_beams", "1", "--max_new_tokens", "8"])
print("loaded", sorted(name for name in ("torch", "transformers") if name in sys.modules), file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": ROOT},
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr.splitlines()[-1] == "loaded []"
