"""Training throughput, side by side in one run: transformers' run_translation.py recipe vs hf_l2mt's.

Both variants train the same randomly initialised Marian on the same tokenised pairs, one epoch per
round (so both see exactly the same target tokens), with the same batch size, optimizer (AdamW),
learning rate and precision, no gradient accumulation:

  baseline  what ``examples/pytorch/translation/run_translation.py`` does: ``Seq2SeqTrainer``,
            random sampler, ``DataCollatorForSeq2Seq`` padding each batch to its longest sequence
            (to a multiple of 8 only under fp16, as that script does), no regularizer.
  ours      ``L2MTTrainer`` with its defaults and L2-SP on (``--l2sp_lambda``, coupled), token-budget
            batches (``max_tokens_per_batch``, docs/data.md: length-sorted buckets of at most
            ``--max_tokens`` padded positions, by default the batch size × the mean of max(source,
            target) length, so about as many updates per epoch as the baseline) and padding to a
            multiple of 8.

The variants alternate in rounds (order reversed every round) so slow drifts of the machine hit
both alike. Per round and variant, throughput is the non-padding target tokens of updates 2..N over
the wall time from the end of update 1 to the end of update N (update 1 allocates optimizer state).
Reported: the median over rounds, the ratio ours/baseline, the share of padding among the target and
source positions, and peak memory (CUDA: peak allocated; CPU: VmHWM of a fresh process that runs one
epoch of that variant alone).

Data (``--data``): ``entries``, pairs of the Ding dictionary (English→German, whole alternatives; a
median of 2 words a side), or ``sentences``, the same entries joined in order into pairs of sentence
length (``join_to_sentences``: source lengths drawn from a log-normal with a median of 20 words, σ 0.5,
clipped to 4..80 words, about the lengths of WMT news sentences), both tokenised with a SentencePiece
``MarianTokenizer`` trained on the sample. ``--export_sample DIR`` writes the tokenised sample and its
tokenizer; ``--tokenized_sample DIR`` reads them, so a machine without ``datasets`` or the Ding file
(a GPU box) runs the same benchmark:

    python -m benchmarks.throughput --export_sample outputs/throughput_sample --pairs 16384   # here, once
    python -m benchmarks.throughput --export_sample outputs/throughput_sample_sentences --data sentences --pairs 4096
    python -m benchmarks.throughput --model small --batch_size 32 --steps 40 --rounds 3         # CPU
    python -m benchmarks.throughput --tokenized_sample outputs/throughput_sample --device cuda --bf16 \\
        --model opus --batch_size 64 --steps 200 --rounds 3                                      # GPU
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    MarianConfig,
    MarianMTModel,
    MarianTokenizer,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments

VARIANTS = ("baseline", "ours")
SAMPLE_FORMAT = "hf_l2mt-throughput-sample/1"
# (d_model, layers, heads, ffn): opus is Helsinki-NLP/opus-mt-en-de's shape (74M parameters with its vocabulary).
# tiny is for smoke tests only.
SHAPES = {"opus": (512, 6, 8, 2048), "small": (256, 3, 4, 1024), "tiny": (32, 1, 2, 64)}


class UpdateClock(TrainerCallback):
    """Wall-clock time at the end of every update (device synchronised before each read)."""

    def __init__(self):
        self.ends = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


class CountingCollator:
    """Wraps a collator and records, per batch, real and padded target and source positions."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, features):
        batch = self.collator(features)
        labels, mask = batch["labels"], batch["attention_mask"]
        self.batches.append((int((labels != -100).sum()), labels.numel(), int(mask.sum()), mask.numel()))
        return batch


def marian_config(model: str, vocab_size: int, tokenizer) -> MarianConfig:
    d_model, layers, heads, ffn = SHAPES[model]
    return MarianConfig(
        vocab_size=max(vocab_size, len(tokenizer)), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, dropout=0.1,
    )


# ---- the sample -----------------------------------------------------------------------------------


SENTENCE_WORDS = {"median": 20, "sigma": 0.5, "low": 4, "high": 80}  # source words of a joined pair


def export_sample(directory: str, pairs: int, vocab: int, max_length: int, seed: int = 0, data: str = "entries") -> str:
    """``pairs`` random Ding pairs (en→de, whole alternatives), or as many joined to sentence length, written by
    ``write_sample``."""
    from hf_l2mt.data import clean_pairs, load_ding

    ding, _ = clean_pairs(load_ding(src_lang="en", tgt_lang="de"), name="Ding")
    ding = ding.shuffle(seed=seed)
    if data == "entries":
        if pairs > len(ding):
            raise ValueError(f"--pairs {pairs}: the Ding dictionary has {len(ding)} pairs after cleaning")
        rows = ding.select(range(pairs))
        description = f"{pairs} random pairs (seed {seed}) of the Ding dictionary, en->de"
        return write_sample(directory, list(rows["source"]), list(rows["target"]), vocab, max_length, description)
    sources, targets = join_to_sentences(ding["source"], ding["target"], pairs, seed)
    words = sorted(len(source.split()) for source in sources)
    description = (f"{pairs} pairs of sentence length: random Ding entries (seed {seed}) joined in order, source "
                   f"words median {words[len(words) // 2]}, 10th-90th percentile {words[len(words) // 10]}-"
                   f"{words[9 * len(words) // 10]}, en->de")
    return write_sample(directory, sources, targets, vocab, max_length, description)


def join_to_sentences(sources: list[str], targets: list[str], pairs: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``pairs`` pairs made of consecutive entries joined with ", " on both sides until the source reaches a length
    drawn from ``SENTENCE_WORDS`` (log-normal source words, clipped); every entry is used at most once."""
    import random

    rng = random.Random(seed)
    joined_sources, joined_targets, index = [], [], 0
    while len(joined_sources) < pairs:
        goal = round(rng.lognormvariate(math.log(SENTENCE_WORDS["median"]), SENTENCE_WORDS["sigma"]))
        goal = min(max(goal, SENTENCE_WORDS["low"]), SENTENCE_WORDS["high"])
        source, target, words = [], [], 0
        while words < goal:
            if index == len(sources):
                raise ValueError(f"--pairs {pairs}: the dictionary's {len(sources)} entries make only "
                                 f"{len(joined_sources)} pairs of sentence length")
            source.append(sources[index])
            target.append(targets[index])
            words += len(sources[index].split())
            index += 1
        joined_sources.append(", ".join(source))
        joined_targets.append(", ".join(target))
    return joined_sources, joined_targets


def write_sample(directory: str, sources: list[str], targets: list[str], vocab: int, max_length: int,
                 description: str) -> str:
    """Train a SentencePiece ``MarianTokenizer`` on the pairs; write it and the pairs, as text and ids, to ``directory``."""
    from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer

    tokenizer = train_marian_tokenizer(sources + targets, os.path.join(directory, "tokenizer"), vocab_size=vocab)
    sample = {
        "format": SAMPLE_FORMAT,
        "description": f"{description}, SentencePiece vocabulary of {len(tokenizer)}, at most {max_length} tokens a side",
        "sources": sources, "targets": targets,
        "source_ids": tokenizer(sources, max_length=max_length, truncation=True)["input_ids"],
        "target_ids": tokenizer(text_target=targets, max_length=max_length, truncation=True)["input_ids"],
    }
    tmp = os.path.join(directory, "sample.json.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(sample, handle, ensure_ascii=False)
    os.replace(tmp, os.path.join(directory, "sample.json"))
    return directory


def read_sample(directory: str) -> tuple[dict, MarianTokenizer]:
    path = os.path.join(directory, "sample.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--tokenized_sample {directory}: no sample.json there; write one with "
                                f"python -m benchmarks.throughput --export_sample {directory}")
    with open(path, encoding="utf-8") as handle:
        sample = json.load(handle)
    if sample.get("format") != SAMPLE_FORMAT:
        raise ValueError(f"{path}: format {sample.get('format')!r}; accepted: {SAMPLE_FORMAT!r}")
    return sample, MarianTokenizer.from_pretrained(os.path.join(directory, "tokenizer"))


def rows_for(sample: dict, count: int) -> list[dict]:
    if count > len(sample["source_ids"]):
        raise ValueError(f"--batch_size x --steps = {count} pairs, but the sample holds {len(sample['source_ids'])}; "
                         "export a larger one (--export_sample DIR --pairs N) or ask for fewer")
    return [{"input_ids": s, "attention_mask": [1] * len(s), "labels": t}
            for s, t in zip(sample["source_ids"][:count], sample["target_ids"][:count])]


# ---- one epoch of one variant -------------------------------------------------------------------------


def make_trainer(variant: str, model, tokenizer, rows, opts, clock=None):
    common = dict(
        output_dir=os.path.join(tempfile.gettempdir(), f"hf_l2mt_throughput-{os.getpid()}"),
        per_device_train_batch_size=opts.batch_size,
        num_train_epochs=1, learning_rate=opts.learning_rate, report_to=[], save_strategy="no",
        logging_steps=10**9, disable_tqdm=True, use_cpu=opts.device == "cpu", bf16=opts.bf16, seed=0,
        dataloader_num_workers=0, torch_compile=opts.torch_compile,
    )
    if variant == "baseline":
        # run_translation.py (transformers 5.x): pad_to_multiple_of=8 if training_args.fp16 else None.
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=None)
        args, trainer_cls = Seq2SeqTrainingArguments(**common), Seq2SeqTrainer
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=8)
        args = L2MTTrainingArguments(**common, l2sp_lambda=opts.l2sp_lambda,
                                     max_tokens_per_batch=max_tokens_for(rows, opts))
        trainer_cls = L2MTTrainer
    counting = CountingCollator(collator)
    trainer = trainer_cls(model=model, args=args, train_dataset=rows, data_collator=counting,
                          processing_class=tokenizer, callbacks=[clock] if clock else [])
    return trainer, counting


def max_tokens_for(rows: list[dict], opts) -> int:
    """``--max_tokens``, or the batch size times the mean of max(source, target) length (rounded up)."""
    if opts.max_tokens:
        return opts.max_tokens
    mean = sum(max(len(r["input_ids"]), len(r["labels"])) for r in rows) / len(rows)
    return math.ceil(opts.batch_size * mean)


def run_rounds(opts, sample, tokenizer) -> dict:
    rows = rows_for(sample, opts.batch_size * opts.steps)
    config = marian_config(opts.model, opts.vocab_size, tokenizer)
    torch.manual_seed(0)
    base_model = MarianMTModel(config)
    base_state = base_model.state_dict()
    results = {v: {"tokens_per_s": [], "batches": None, "peak_cuda_bytes": 0} for v in VARIANTS}
    # named_parameters counts the tied embedding once; the state dict lists it under four names
    results["num_params"] = sum(p.numel() for name, p in base_model.named_parameters() if "embed_positions" not in name)
    for round_index in range(opts.rounds):
        for variant in VARIANTS if round_index % 2 == 0 else reversed(VARIANTS):
            model = MarianMTModel(config)
            model.load_state_dict(base_state)
            clock = UpdateClock()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            trainer, counting = make_trainer(variant, model, tokenizer, rows, opts, clock)
            trainer.train()
            timed_tokens = sum(batch[0] for batch in counting.batches[1:])
            results[variant]["tokens_per_s"].append(timed_tokens / (clock.ends[-1] - clock.ends[0]))
            results[variant]["batches"] = counting.batches
            if torch.cuda.is_available():
                results[variant]["peak_cuda_bytes"] = max(results[variant]["peak_cuda_bytes"], torch.cuda.max_memory_allocated())
            del trainer, model
    return results


def peak_rss_alone(variant: str, opts, sample_dir: str) -> int:
    """VmHWM (bytes) of a fresh process that trains one epoch of ``variant``."""
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--_memory_only", variant, "--tokenized_sample", sample_dir,
           "--model", opts.model, "--vocab_size", str(opts.vocab_size), "--batch_size", str(opts.batch_size),
           "--steps", str(opts.steps), "--l2sp_lambda", str(opts.l2sp_lambda)]
    if opts.max_tokens:
        cmd += ["--max_tokens", str(opts.max_tokens)]
    if opts.threads:
        cmd += ["--threads", str(opts.threads)]
    if opts.torch_compile:
        cmd.append("--torch_compile")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root, env=env).stdout
    return int(json.loads(out.strip().splitlines()[-1])["peak_rss_bytes"])


def memory_only(variant: str, opts, sample, tokenizer) -> None:
    model = MarianMTModel(marian_config(opts.model, opts.vocab_size, tokenizer))
    make_trainer(variant, model, tokenizer, rows_for(sample, opts.batch_size * opts.steps), opts)[0].train()
    # VmHWM is this process image's own high-water mark; ru_maxrss would inherit the parent's across exec.
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_bytes": hwm_kib * 1024}))


# ---- report -------------------------------------------------------------------------------------------


def padding_share(batches, column: int) -> float:
    real = sum(b[column] for b in batches)
    return 1 - real / sum(b[column + 1] for b in batches)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 on a shared machine, "
                        "where more threads than free cores slow every thread down")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--torch_compile", action="store_true",
                        help="both variants with the Trainer's torch_compile (run_translation.py has the same flag)")
    parser.add_argument("--model", choices=sorted(SHAPES), default="small")
    parser.add_argument("--vocab_size", type=int, default=58101,
                        help="model vocabulary (opus-mt-en-de has 58,101); at least the tokenizer's")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40,
                        help="updates per epoch of the baseline: the epoch is the sample's first batch_size x steps pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--l2sp_lambda", type=float, default=0.01, help="L2-SP strength of 'ours' (> 0)")
    parser.add_argument("--max_tokens", type=int, help="token budget of a batch of 'ours' (default: the batch size "
                        "times the mean of max(source, target) length over the epoch's pairs)")
    parser.add_argument("--tokenized_sample", help="folder written by --export_sample")
    parser.add_argument("--export_sample", help="write a tokenised Ding sample and its tokenizer to this folder, then stop")
    parser.add_argument("--pairs", type=int, default=16384, help="pairs in an exported sample")
    parser.add_argument("--data", choices=["entries", "sentences"], default="entries",
                        help="an exported sample's pairs: dictionary entries, or entries joined to sentence length")
    parser.add_argument("--tokenizer_vocab", type=int, default=8000, help="SentencePiece vocabulary of an exported sample")
    parser.add_argument("--max_length", type=int, default=128, help="tokens per side in an exported sample")
    parser.add_argument("--skip_memory", action="store_true",
                        help="CPU: do not measure peak memory (saves one extra epoch per variant)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--_memory_only", choices=VARIANTS, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    for flag in ("batch_size", "steps", "rounds", "pairs"):
        if getattr(opts, flag) < 1:
            parser.error(f"--{flag} {getattr(opts, flag)}: accepted: an integer >= 1")
    if opts.steps < 2:
        parser.error(f"--steps {opts.steps}: accepted: >= 2 (update 1 is not timed)")
    if not opts.l2sp_lambda > 0:
        parser.error(f"--l2sp_lambda {opts.l2sp_lambda}: accepted: a number > 0 (ours runs with L2-SP on)")
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    if opts.export_sample:
        export_sample(opts.export_sample, opts.pairs, opts.tokenizer_vocab, opts.max_length, data=opts.data)
        print(f"wrote {opts.export_sample}/sample.json and {opts.export_sample}/tokenizer")
        return {"export_sample": opts.export_sample}
    with tempfile.TemporaryDirectory() as tmp:
        sample_dir = opts.tokenized_sample or export_sample(tmp, opts.pairs, opts.tokenizer_vocab, opts.max_length,
                                                            data=opts.data)
        sample, tokenizer = read_sample(sample_dir)
        if opts._memory_only:
            memory_only(opts._memory_only, opts, sample, tokenizer)
            return {}
        results = run_rounds(opts, sample, tokenizer)
        if opts.device == "cpu" and opts.skip_memory:
            memory, memory_kind = {v: None for v in VARIANTS}, "peak memory not measured"
        elif opts.device == "cpu":
            memory = {v: peak_rss_alone(v, opts, sample_dir) for v in VARIANTS}
            memory_kind = "peak RSS, fresh process"
        else:
            memory = {v: results[v]["peak_cuda_bytes"] for v in VARIANTS}
            memory_kind = "peak CUDA allocated"
    return report(opts, results, memory, memory_kind, sample["description"])


def report(opts, results, memory, memory_kind, description) -> dict:
    tokens = {v: sum(b[0] for b in results[v]["batches"]) for v in VARIANTS}
    if tokens["baseline"] != tokens["ours"]:
        raise RuntimeError(f"the variants saw different target tokens per epoch: {tokens}")
    median = {v: statistics.median(results[v]["tokens_per_s"]) for v in VARIANTS}
    ratio = median["ours"] / median["baseline"]
    device = device_name(opts.device)
    print(f"\nThroughput: {results['num_params'] / 1e6:.1f}M-parameter Marian ({opts.model}), batch {opts.batch_size}, "
          f"{opts.steps} updates per epoch ({tokens['ours']:,} target tokens), {opts.rounds} rounds, "
          f"{'bf16 autocast' if opts.bf16 else 'fp32'}{', torch_compile' if opts.torch_compile else ''}, {device}, "
          f"torch {torch.__version__}")
    print(f"data: {description}\n")
    print(f"{'variant':<9} {'target tokens/s':>16} {'vs baseline':>12} {'updates':>8} {'target padding':>15} "
          f"{'source padding':>15} {memory_kind + ' (MiB)':>32}")
    rows = {}
    for v in VARIANTS:
        rows[v] = {"tokens_per_s": median[v], "ratio": median[v] / median["baseline"],
                   "target_padding": padding_share(results[v]["batches"], 0),
                   "source_padding": padding_share(results[v]["batches"], 2), "memory_bytes": memory[v],
                   "tokens_per_s_per_round": results[v]["tokens_per_s"], "updates": len(results[v]["batches"])}
        print(f"{v:<9} {median[v]:>16,.0f} {rows[v]['ratio']:>11.2f}x {rows[v]['updates']:>8} "
              f"{100 * rows[v]['target_padding']:>14.1f}% "
              f"{100 * rows[v]['source_padding']:>14.1f}% {'-' if memory[v] is None else f'{memory[v] / 2**20:,.0f}':>32}")
    print(f"\nours / baseline: {ratio:.2f}x target tokens per second (goal: >= 1.3x)")
    summary = {"device": device, "model": opts.model, "num_params": results["num_params"], "batch_size": opts.batch_size,
               "steps": opts.steps, "rounds": opts.rounds, "bf16": opts.bf16, "target_tokens_per_epoch": tokens["ours"],
               "l2sp_lambda": opts.l2sp_lambda, "memory_kind": memory_kind, "data": description, "variants": rows,
               "ratio": ratio}
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    return summary


if __name__ == "__main__":
    main()
