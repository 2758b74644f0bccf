"""Peak memory of a run that streams its pairs, on a corpus and on one 10 times smaller.

The claim: with ``stream_pairs`` the peak resident memory of a run does not grow with the corpus.
The script writes N synthetic pairs (random words; the target spells each source word in another
"language") as ``PREFIX.en`` / ``PREFIX.de`` under ``--output_dir``, then trains a tiny Marian
model for ``--updates`` updates with L2-SP, streaming from the files, once on N/10 pairs and once
on N pairs, each in a fresh process so that each peak is its own. Both runs read both files whole
before the first update (the line-count check), then as many pairs as the updates consume.

    python benchmarks/memory_at_scale.py --threads 1          # 3,000,000 pairs, 300 updates
    python benchmarks/memory_at_scale.py --pairs 2000 --updates 5 --in_memory   # also the recipes' path
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.data import clean_pairs, load_pairs, make_data_collator, preprocess_pairs, stream_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = 500  # words per "language"; each line holds 3 to 12 of them
SPECIALS = ("</s>", "<unk>", "<pad>")  # opus-mt order: eos 0, unk 1, pad 2


def word_pair(index: int) -> tuple[str, str]:
    return f"w{index}", f"v{index}"


def write_corpus(prefix: str, pairs: int, seed: int = 0) -> None:
    """``PREFIX.en`` and ``PREFIX.de`` with ``pairs`` lines each, written under temporary names first."""
    rng = random.Random(seed)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(f"{prefix}.en.tmp", "w", encoding="utf-8") as en, open(f"{prefix}.de.tmp", "w", encoding="utf-8") as de:
        for _ in range(pairs):
            indices = rng.choices(range(WORDS), k=rng.randint(3, 12))
            en.write(" ".join(f"w{i}" for i in indices) + "\n")
            de.write(" ".join(f"v{i}" for i in indices) + "\n")
    os.replace(f"{prefix}.en.tmp", f"{prefix}.en")
    os.replace(f"{prefix}.de.tmp", f"{prefix}.de")


def corpus_prefix(output_dir: str, pairs: int) -> str:
    """The corpus of ``pairs`` pairs, written once and reused."""
    prefix = os.path.join(output_dir, f"pairs-{pairs}")
    if not (os.path.isfile(f"{prefix}.en") and os.path.isfile(f"{prefix}.de")):
        write_corpus(prefix, pairs)
    return prefix


def word_tokenizer() -> PreTrainedTokenizerFast:
    """One id per word of either side, ``</s>`` appended: tokenising costs next to nothing."""
    vocab = {token: index for index, token in enumerate(SPECIALS)}
    for index in range(WORDS):
        for word in word_pair(index):
            vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def marian_config(tokenizer) -> MarianConfig:
    """A tiny Marian: the model's own memory is small beside the data pipeline's."""
    return MarianConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def peak_memory_mib() -> dict[str, float]:
    """``ru_maxrss`` (KiB on Linux) and, where /proc has it, ``VmHWM``: both the process's peak RSS."""
    peaks = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if os.path.isfile("/proc/self/status"):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peaks["vmhwm_mib"] = int(line.split()[1]) / 1024
    return peaks


def in_memory_pairs(prefix: str, tokenizer, config, cache_dir: str):
    """The recipes' path: Arrow file, cleaning with deduplication, tokenised Arrow file."""
    pairs = load_pairs(prefix, "en", "de", cache_dir=cache_dir)
    pairs, _ = clean_pairs(pairs, name=prefix)
    return preprocess_pairs(pairs, tokenizer, "en", "de", max_source_length=32, max_target_length=32,
                            model_config=config)


def train_once(prefix: str, opts) -> dict:
    """One run on the pairs at ``prefix``, streamed or in memory; its timing and its peak memory."""
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    tokenizer = word_tokenizer()
    config = marian_config(tokenizer)
    model = MarianMTModel(config)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=opts.output_dir) as cache_dir:
        if opts.child_path == "streaming":
            train = preprocess_pairs(stream_pairs(prefix, "en", "de"), tokenizer, "en", "de", max_source_length=32,
                                     max_target_length=32, model_config=config)
        else:
            train = in_memory_pairs(prefix, tokenizer, config, cache_dir)
        return train_on(train, model, tokenizer, start, opts)


def train_on(train, model, tokenizer, start: float, opts) -> dict:
    """``opts.updates`` updates with L2-SP; length grouping only where the lengths are known (in memory)."""
    args = L2MTTrainingArguments(
        output_dir=os.path.join(opts.output_dir, "run"), max_steps=opts.updates,
        per_device_train_batch_size=opts.batch_size, learning_rate=1e-3, l2sp_lambda=0.1, save_strategy="no",
        report_to=[], logging_steps=max(opts.updates, 1), disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False, dataloader_num_workers=0, seed=0,
        train_sampling_strategy="random" if opts.child_path == "streaming" else "group_by_length",
    )
    trainer = L2MTTrainer(model=model, args=args, train_dataset=train, data_collator=make_data_collator(tokenizer))
    result = trainer.train()
    return {
        "path": opts.child_path, "pairs_in_corpus": opts.child_pairs, "updates": trainer.state.global_step,
        "pairs_trained_on": trainer.state.global_step * opts.batch_size, "seconds": time.perf_counter() - start,
        "train_loss": result.training_loss, **peak_memory_mib(),
    }


def run_child(path: str, pairs: int, opts) -> dict:
    """``train_once`` in a fresh Python process, so that its peak memory is its own."""
    command = [
        sys.executable, "-m", "benchmarks.memory_at_scale", "--child_path", path, "--child_pairs", str(pairs),
        "--updates",
        str(opts.updates), "--batch_size", str(opts.batch_size), "--threads", str(opts.threads),
        "--output_dir", os.path.abspath(opts.output_dir),
    ]
    # Run from the checkout's root, so that the child imports this checkout's hf_l2mt and benchmarks.
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| path | pairs in corpus | corpus on disk | updates | pairs trained on | seconds | peak RSS (ru_maxrss) "
        "| peak RSS (VmHWM) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['path']} | {row['pairs_in_corpus']:,} | {row['corpus_mib']:,.0f} MiB | {row['updates']} | "
            f"{row['pairs_trained_on']:,} | "
            f"{row['seconds']:.1f} | {row['ru_maxrss_mib']:.0f} MiB | {row.get('vmhwm_mib', float('nan')):.0f} MiB |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3_000_000, help="pairs in the larger corpus")
    parser.add_argument("--updates", type=int, default=300, help="optimizer updates per run")
    parser.add_argument("--batch_size", type=int, default=16, help="pairs per update")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output_dir", default="outputs/memory_at_scale", help="where the corpora are written")
    parser.add_argument(
        "--in_memory", action="store_true",
        help="also run the recipes' path (Arrow files, cleaning, length grouping) on the smaller corpus, for "
        "contrast (on the larger one it reads, cleans and tokenises every pair before the first update)",
    )
    parser.add_argument("--child_pairs", type=int, help=argparse.SUPPRESS)  # set by run_child
    parser.add_argument("--child_path", default="streaming", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    opts = parse_args(argv)
    if opts.child_pairs is not None:
        print(json.dumps(train_once(corpus_prefix(opts.output_dir, opts.child_pairs), opts)))
        return []
    rows = []
    small = max(opts.pairs // 10, 1)
    runs = [("streaming", small), ("streaming", opts.pairs)] + ([("in_memory", small)] if opts.in_memory else [])
    for path, pairs in runs:
        prefix = corpus_prefix(opts.output_dir, pairs)
        row = run_child(path, pairs, opts)
        row["corpus_mib"] = sum(os.path.getsize(f"{prefix}.{lang}") for lang in ("en", "de")) / 2**20
        rows.append(row)
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
