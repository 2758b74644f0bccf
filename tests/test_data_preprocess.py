"""Tokenisation: T5 prefix, max lengths against the model, length column, dynamic padding."""

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import MarianConfig, PreTrainedTokenizerFast, T5Config
from transformers.trainer_pt_utils import LengthGroupedSampler

from conftest import EOS, PAD, VOCAB, make_args, tiny_marian
from hf_l2mt import L2MTTrainer
from hf_l2mt.data import make_data_collator, preprocess_pairs, t5_prefix

SOURCES = ["the cat sleeps", "a dog runs fast", "the bird sings", "a cat runs"]
TARGETS = ["die katze schläft", "ein hund läuft schnell", "der vogel singt", "eine katze läuft"]


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the test sentences, ids laid out as the tiny Marian expects."""
    words = sorted({word for text in SOURCES + TARGETS for word in text.split()})
    vocab = {"</s>": EOS, "<pad>": PAD, "<unk>": 2, **{word: 3 + i for i, word in enumerate(words)}}
    assert len(vocab) <= VOCAB
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture
def tokenizer():
    return word_tokenizer()


@pytest.fixture
def pairs():
    return Dataset.from_dict({"source": SOURCES, "target": TARGETS, "domain": ["", "", "zool.", ""]})


def test_t5_gets_the_task_prefix_from_language_names(pairs, tokenizer):
    assert t5_prefix("en", "de-AT") == "translate English to German: "
    features = preprocess_pairs(pairs, tokenizer, "en", "de", 32, 32, model_config=T5Config())
    assert features.column_names == ["input_ids", "attention_mask", "labels", "length"]
    assert features[0]["input_ids"] == tokenizer("translate English to German: the cat sleeps")["input_ids"]
    assert features[0]["labels"] == tokenizer(text_target="die katze schläft")["input_ids"]
    assert features["length"] == [max(len(a), len(b)) for a, b in zip(features["input_ids"], features["labels"])]


def test_prefix_only_for_t5_unless_given(pairs, tokenizer):
    marian = preprocess_pairs(pairs, tokenizer, "en", "de", 32, 32, model_config=MarianConfig(max_position_embeddings=32))
    assert marian[0]["input_ids"] == tokenizer("the cat sleeps")["input_ids"]
    given = preprocess_pairs(pairs, tokenizer, "xx", "de", 32, 32, source_prefix="", model_config=T5Config())
    assert given[0]["input_ids"] == tokenizer("the cat sleeps")["input_ids"]
    with pytest.raises(ValueError, match="no English name for language code 'xx'.*source_prefix="):
        preprocess_pairs(pairs, tokenizer, "xx", "de", 32, 32, model_config=T5Config())


def test_max_lengths_are_checked_against_position_embeddings(pairs, tokenizer):
    config = MarianConfig(max_position_embeddings=32)
    with pytest.raises(ValueError, match="max_source_length=64 exceeds the model's max_position_embeddings=32"):
        preprocess_pairs(pairs, tokenizer, "en", "de", 64, 16, model_config=config)
    with pytest.raises(ValueError, match="set max_target_length to at most 32"):
        preprocess_pairs(pairs, tokenizer, "en", "de", 16, 33, model_config=config)
    with pytest.raises(ValueError, match="max_source_length=0: give a positive number"):
        preprocess_pairs(pairs, tokenizer, "en", "de", 0, 16)
    relative = preprocess_pairs(pairs, tokenizer, "en", "de", 4096, 4096, model_config=T5Config())
    assert len(relative) == 4


def test_truncation_to_each_side_maximum(pairs, tokenizer):
    features = preprocess_pairs(pairs, tokenizer, "en", "de", 3, 2)
    assert max(map(len, features["input_ids"])) == 3 and max(map(len, features["labels"])) == 2


def test_collator_pads_per_batch_and_drops_length(pairs, tokenizer):
    features = preprocess_pairs(pairs, tokenizer, "en", "de", 32, 32)
    batch = make_data_collator(tokenizer, pad_to_multiple_of=8)([features[0], features[1]])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].shape == (2, 8)
    assert batch["input_ids"][0].tolist()[len(features[0]["input_ids"]):] == [PAD] * (8 - len(features[0]["input_ids"]))
    assert batch["labels"][0].tolist()[len(features[0]["labels"]):] == [-100] * (8 - len(features[0]["labels"]))
    unpadded = make_data_collator(tokenizer)([features[0], features[1]])
    assert unpadded["input_ids"].shape[1] == max(len(features[0]["input_ids"]), len(features[1]["input_ids"]))


def test_length_grouped_training_reads_the_length_column(pairs, tokenizer, tmp_path):
    model = tiny_marian()
    features = preprocess_pairs(pairs, tokenizer, "en", "de", 16, 16, model_config=model.config)
    args = make_args(tmp_path, train_sampling_strategy="group_by_length", remove_unused_columns=False,
                     per_device_train_batch_size=2, max_steps=2)
    trainer = L2MTTrainer(model=model, args=args, train_dataset=features, data_collator=make_data_collator(tokenizer, model))
    sampler = trainer._get_train_sampler(features)
    assert isinstance(sampler, LengthGroupedSampler) and list(sampler.lengths) == list(features["length"])
    trainer.train()
    assert trainer.state.global_step == 2
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in trainer.state.log_history if "loss" in entry)
