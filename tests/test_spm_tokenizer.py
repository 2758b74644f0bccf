"""A SentencePiece model trained here, saved as a MarianTokenizer, loads back through AutoTokenizer."""

import json
import os

import pytest
from transformers import AutoTokenizer, MarianTokenizer

from hf_l2mt.apps.demo.numbers_task import make_pairs
from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pairs = make_pairs("cardinal", range(0, 3000, 7))
    texts = [p["source"] for p in pairs] + [p["target"] for p in pairs]
    directory = str(tmp_path_factory.mktemp("tokenizer"))
    trained = train_marian_tokenizer(texts, directory, vocab_size=120)
    return directory, trained


def test_writes_the_files_marian_tokenizer_reads(saved):
    directory, _ = saved
    for name in ("source.spm", "target.spm", "vocab.json", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(directory, name)), name
    with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as handle:
        vocab = json.load(handle)
    assert vocab["</s>"] == 0 and vocab["<unk>"] == 1
    assert vocab["<pad>"] == len(vocab) - 1
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert len(vocab) <= 121  # the soft limit: at most vocab_size pieces, plus <pad>


def test_round_trip_through_auto_tokenizer(saved):
    directory, trained = saved
    loaded = AutoTokenizer.from_pretrained(directory)
    assert isinstance(loaded, MarianTokenizer)
    assert (loaded.eos_token_id, loaded.unk_token_id, loaded.pad_token_id) == (0, 1, len(loaded) - 1)
    assert loaded.get_vocab() == trained.get_vocab()
    # 4,321 and its year/ordinal phrasings are not in the training texts; umlauts and "ß" must survive.
    unseen = make_pairs("cardinal", [4321, 999]) + make_pairs("year", [1984]) + make_pairs("ordinal", [3])
    for pair in unseen:
        encoded = loaded(pair["source"], text_target=pair["target"])
        assert encoded["input_ids"][-1] == loaded.eos_token_id
        assert loaded.unk_token_id not in encoded["input_ids"] + encoded["labels"]
        assert loaded.decode(encoded["input_ids"], skip_special_tokens=True) == pair["source"]
        assert loaded.decode(encoded["labels"], skip_special_tokens=True) == pair["target"]
    assert loaded.decode(loaded("fünf dreißig")["input_ids"], skip_special_tokens=True) == "fünf dreißig"


def test_batches_pad_with_the_pad_id(saved):
    directory, _ = saved
    loaded = AutoTokenizer.from_pretrained(directory)
    batch = loaded(["one", "nine hundred and ninety-nine"], padding=True)
    assert batch["input_ids"][0][-1] == loaded.pad_token_id
    assert batch["attention_mask"][0][-1] == 0


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="vocab_size: got 3; accepted: an integer >= 8"):
        train_marian_tokenizer(["eins"], str(tmp_path), vocab_size=3)
    with pytest.raises(ValueError, match="texts: no non-empty sentence"):
        train_marian_tokenizer(["", "  "], str(tmp_path))
    assert not os.listdir(tmp_path)
