"""Streamed pairs equal the pairs ``load_pairs`` reads, tokenised the same; the memory benchmark runs."""

import json

import pytest
from datasets import IterableDataset
from transformers import MarianMTModel

from benchmarks import memory_at_scale
from conftest import make_args
from hf_l2mt import L2MTTrainer
from hf_l2mt.data import DataFormatError, load_pairs, make_data_collator, preprocess_pairs, stream_pairs

PAIRS = [("one house", "ein Haus"), ("two  cats ", "zwei Katzen"), ("", "leer"), ("ünïcode «q»", "„Zitat“")]


def write_sources(folder) -> dict[str, str]:
    """The same pairs as a plain-text pair, a TSV with a header and JSON Lines."""
    (folder / "train.en").write_text("".join(f"{source}\n" for source, _ in PAIRS), encoding="utf-8")
    (folder / "train.de").write_text("".join(f"{target}\n" for _, target in PAIRS), encoding="utf-8")
    rows = [f"{source}\t{target}" for source, target in PAIRS]
    (folder / "train.tsv").write_text("en\tde\n" + "\n".join(rows) + "\n", encoding="utf-8")
    lines = [json.dumps({"translation": {"en": source, "de": target}}) for source, target in PAIRS]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"text_pair": str(folder / "train"), "tsv": str(folder / "train.tsv"), "jsonl": str(folder / "train.jsonl")}


@pytest.mark.parametrize("kind", ["text_pair", "tsv", "jsonl"])
def test_streaming_yields_the_pairs_of_the_in_memory_path(kind, tmp_path):
    source = write_sources(tmp_path)[kind]
    streamed = stream_pairs(source, "en", "de")
    assert isinstance(streamed, IterableDataset)
    in_memory = load_pairs(source, "en", "de", cache_dir=str(tmp_path / "cache"))
    assert list(streamed) == in_memory.to_list()
    assert len(in_memory) == len(PAIRS)


def test_streamed_tokens_equal_the_in_memory_tokens(tmp_path):
    source = write_sources(tmp_path)["text_pair"]
    tokenizer = memory_at_scale.word_tokenizer()
    options = dict(tokenizer=tokenizer, src_lang="en", tgt_lang="de", max_source_length=8, max_target_length=8)
    streamed = list(preprocess_pairs(stream_pairs(source, "en", "de"), **options))
    in_memory = preprocess_pairs(load_pairs(source, "en", "de", cache_dir=str(tmp_path / "cache")), **options)
    assert streamed == in_memory.to_list()


def test_misaligned_files_are_refused_before_streaming(tmp_path):
    (tmp_path / "train.en").write_text("a\nb\n")
    (tmp_path / "train.de").write_text("a\n")
    with pytest.raises(DataFormatError, match="has 2 lines but"):
        stream_pairs(str(tmp_path / "train"), "en", "de")


def test_l2mt_trainer_trains_from_a_stream(tmp_path):
    memory_at_scale.write_corpus(str(tmp_path / "corpus" / "pairs"), 50)
    tokenizer = memory_at_scale.word_tokenizer()
    pairs = stream_pairs(str(tmp_path / "corpus" / "pairs"), "en", "de")
    train = preprocess_pairs(pairs, tokenizer, "en", "de", max_source_length=16, max_target_length=16)
    model = MarianMTModel(memory_at_scale.marian_config(tokenizer))
    args = make_args(tmp_path / "run", max_steps=4, l2sp_lambda=0.1, remove_unused_columns=False)
    trainer = L2MTTrainer(model=model, args=args, train_dataset=train, data_collator=make_data_collator(tokenizer))
    trainer.train()
    assert trainer.state.global_step == 4
    assert trainer.regularization_metrics()["l2sp_distance"] > 0


def test_memory_benchmark_reports_both_corpus_sizes(tmp_path):
    rows = memory_at_scale.main(["--pairs", "200", "--updates", "2", "--batch_size", "4",
                                 "--output_dir", str(tmp_path)])
    assert [(row["path"], row["pairs_in_corpus"]) for row in rows] == [("streaming", 20), ("streaming", 200)]
    assert all(row["updates"] == 2 and row["ru_maxrss_mib"] > 0 for row in rows)
    assert (tmp_path / "pairs-200.en").read_text().count("\n") == 200
