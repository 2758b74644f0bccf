"""Datasets in the Hub's ``translation`` format, exercised offline with local copies."""

import json
import os

import pytest
from datasets import Dataset, DatasetDict, Features, Translation

from hf_l2mt.data import DataFormatError, LanguageNotFoundError, load_hub_pairs, load_pairs, translation_pairs

ROWS = [{"translation": {"de": "Hallo", "en": "Hello"}}, {"translation": {"de": "Welt", "en": "World"}}]


def pairs_of(dataset):
    return list(zip(dataset["source"], dataset["target"]))


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "wmt_like.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n", encoding="utf-8")
    return str(path)


def test_translation_feature_converts_in_both_directions():
    features = Features({"translation": Translation(languages=["de", "en"])})
    dataset = Dataset.from_list(ROWS, features=features)
    assert pairs_of(translation_pairs(dataset, "en", "de")) == [("Hello", "Hallo"), ("World", "Welt")]
    assert pairs_of(translation_pairs(dataset, "de", "en")) == [("Hallo", "Hello"), ("Welt", "World")]
    with pytest.raises(LanguageNotFoundError, match="language code 'fr' not in this dataset; it has: de, en"):
        translation_pairs(dataset, "en", "fr")


def test_load_dataset_path_with_local_json(jsonl, tmp_path):
    """The same ``load_dataset`` call as for wmt16, on the packaged json builder."""
    dataset = load_hub_pairs("json", split="train", src_lang="en", tgt_lang="de", data_files=jsonl,
                             cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == ["source", "target"]
    assert pairs_of(dataset) == [("Hello", "Hallo"), ("World", "Welt")]
    via_dispatcher = load_pairs("hub:json", "de", "en", data_files=jsonl, cache_dir=str(tmp_path / "cache"))
    assert pairs_of(via_dispatcher)[0] == ("Hallo", "Hello")


def test_saved_dataset_dict_folder(tmp_path):
    folder = str(tmp_path / "saved")
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(folder)
    assert pairs_of(load_pairs(folder, "en", "de", split="test")) == [("Hello", "Hallo")]
    with pytest.raises(ValueError, match="no split 'validation'; it has: train, test"):
        load_hub_pairs(folder, split="validation", src_lang="en", tgt_lang="de")


def test_dataset_without_translation_column(tmp_path):
    folder = str(tmp_path / "flat")
    Dataset.from_list([{"en": "Hello", "de": "Hallo"}]).save_to_disk(folder)
    with pytest.raises(DataFormatError, match="no 'translation' column; found columns: en, de"):
        load_hub_pairs(folder, src_lang="en", tgt_lang="de")


@pytest.mark.hub
@pytest.mark.skipif(not os.environ.get("HF_L2MT_HUB_TESTS"), reason="needs the Hugging Face Hub; set HF_L2MT_HUB_TESTS=1")
def test_wmt16_from_the_hub():
    dataset = load_hub_pairs("wmt16", "de-en", split="validation[:5]", src_lang="en", tgt_lang="de")
    assert len(dataset) == 5 and all(dataset["source"]) and all(dataset["target"])
