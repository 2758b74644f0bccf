"""Where one update's time goes, for a Marian with a large vocabulary: forward, backward, optimizer, L2-SP, the rest.

Four trainers run side by side, in rotated order within each round: the model with ``--vocab_size``
(opus-mt-en-de's 58,101 by default) and with ``--small_vocab_size``, each with L2-SP off and on
(coupled, ``--l2sp_lambda``); with ``--torch_compile``, two more: the large-vocabulary model with L2-SP
off and on under the Trainer's ``torch_compile`` (compiled once per trainer: every batch has one shape,
and the compilation falls in the first update, which is left out). Every trainer makes ``--updates`` updates per round on the same random
batch (``--batch_size`` sentences of ``--source_length`` / ``--target_length`` tokens); the first update
of a trainer is left out (it allocates the optimizer state). Per update, the time inside
``compute_loss`` (forward), ``accelerator.backward`` (backward) and ``optimizer.step`` (AdamW, with
its pre-step hooks) is read with a wall clock around each call; "other" is the rest of the update
(coupled L2-SP's gradient term, clipping, bookkeeping). Reported: medians over the rounds of each
trainer's per-round median, and, paired within each round, what L2-SP adds to an update and what the
larger vocabulary adds.

    python -m benchmarks.update_profile --threads 1                     # opus shape, 58,101 vs 8,001 entries
    python -m benchmarks.update_profile --model small --rounds 3 --updates 4
    python -m benchmarks.update_profile --threads 1 --torch_compile          # and compiled, side by side
"""

import argparse
import functools
import logging
import os
import statistics
import tempfile
import time

import torch
from transformers import MarianConfig, MarianMTModel, TrainerCallback
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from benchmarks.throughput import SHAPES
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments

PHASES = ("forward", "backward", "optimizer", "other")


class PhaseClock(TrainerCallback):
    """Per update: seconds spent in each phase, from the wall-clock wrappers that ``instrument`` installs."""

    def __init__(self):
        self.current = dict.fromkeys(PHASES[:-1], 0.0)
        self.updates, self.start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.current = dict.fromkeys(PHASES[:-1], 0.0)
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        total = time.perf_counter() - self.start
        self.updates.append({**self.current, "other": total - sum(self.current.values()), "total": total})


def timed(function, clock: PhaseClock, phase: str):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            clock.current[phase] += time.perf_counter() - start

    return wrapper


def instrument(trainer: L2MTTrainer, clock: PhaseClock) -> None:
    trainer.compute_loss = timed(trainer.compute_loss, clock, "forward")
    trainer.accelerator.backward = timed(trainer.accelerator.backward, clock, "backward")
    original_create = trainer.create_optimizer

    def create_optimizer(*args, **kwargs):
        optimizer = original_create(*args, **kwargs)
        optimizer.step = timed(optimizer.step, clock, "optimizer")
        return optimizer

    trainer.create_optimizer = create_optimizer


def make_model(opts, vocab_size: int) -> MarianMTModel:
    d_model, layers, heads, ffn = SHAPES[opts.model]
    config = MarianConfig(vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                          encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                          decoder_ffn_dim=ffn, max_position_embeddings=512, pad_token_id=vocab_size - 1,
                          decoder_start_token_id=vocab_size - 1, eos_token_id=0)
    torch.manual_seed(0)
    return MarianMTModel(config)


def batch_rows(opts, vocab_size: int) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    rows = []
    for _ in range(opts.batch_size * opts.updates):
        source = torch.randint(1, vocab_size - 1, (opts.source_length,), generator=generator).tolist()
        target = torch.randint(1, vocab_size - 1, (opts.target_length,), generator=generator).tolist()
        rows.append({"input_ids": source + [0], "attention_mask": [1] * (opts.source_length + 1), "labels": target + [0]})
    return rows


def collate(rows: list[dict]) -> dict:
    return {key: torch.tensor([row[key] for row in rows]) for key in rows[0]}


def one_round(name: str, opts, output_dir: str) -> dict:
    """``--updates`` + 1 updates of one trainer; per-phase medians over updates 2.. in seconds."""
    vocab_size = opts.vocab_size if name.startswith("large") else opts.small_vocab_size
    compiled = name.endswith("_compiled")
    model = make_model(opts, vocab_size)
    clock = PhaseClock()
    args = L2MTTrainingArguments(
        output_dir=os.path.join(output_dir, name), per_device_train_batch_size=opts.batch_size,
        max_steps=opts.updates + 1, learning_rate=1e-4, lr_scheduler_type="constant", save_strategy="no",
        report_to=[], disable_tqdm=True, logging_steps=10**9, remove_unused_columns=False, use_cpu=True,
        dataloader_num_workers=0, l2sp_lambda=opts.l2sp_lambda if "l2sp" in name else 0.0, torch_compile=compiled,
    )
    rows = batch_rows(opts, vocab_size)
    trainer = L2MTTrainer(model=model, args=args, train_dataset=rows + rows[:opts.batch_size], data_collator=collate,
                          callbacks=[clock])
    instrument(trainer, clock)
    trainer.train()
    kept = clock.updates[1:]
    return {phase: statistics.median(update[phase] for update in kept) for phase in (*PHASES, "total")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHAPES), default="opus")
    parser.add_argument("--vocab_size", type=int, default=58101, help="the large vocabulary (opus-mt-en-de's)")
    parser.add_argument("--small_vocab_size", type=int, default=8001, help="the vocabulary it is compared with")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--source_length", type=int, default=16)
    parser.add_argument("--target_length", type=int, default=16)
    parser.add_argument("--updates", type=int, default=5, help="timed updates per trainer and round (after one more)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--l2sp_lambda", type=float, default=0.01)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--torch_compile", action="store_true",
                        help="also the large-vocabulary trainers under torch_compile, side by side")
    opts = parser.parse_args(argv)
    for flag in ("batch_size", "source_length", "target_length", "updates", "rounds"):
        if getattr(opts, flag) < 1:
            parser.error(f"--{flag} {getattr(opts, flag)}: accepted: an integer >= 1")
    if not opts.l2sp_lambda > 0:
        parser.error(f"--l2sp_lambda {opts.l2sp_lambda}: accepted: a number > 0")
    if not 2 < opts.small_vocab_size < opts.vocab_size:
        parser.error(f"--small_vocab_size {opts.small_vocab_size}: accepted: between 3 and --vocab_size "
                     f"({opts.vocab_size}), exclusive")
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    logging.getLogger("hf_l2mt").setLevel(logging.WARNING)  # each trainer would log its parameter groups
    names = ["large", "large_l2sp", "small", "small_l2sp"]
    if opts.torch_compile:
        names += ["large_compiled", "large_l2sp_compiled"]
    per_round = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as output_dir:
        for round_index in range(opts.rounds):
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in order:
                per_round[name].append(one_round(name, opts, output_dir))
    return report(opts, per_round)


def report(opts, per_round: dict) -> dict:
    median = {name: {phase: statistics.median(r[phase] for r in rounds) for phase in (*PHASES, "total")}
              for name, rounds in per_round.items()}
    d_model, layers, _, ffn = SHAPES[opts.model]
    print(f"\nOne update of a Marian ({opts.model}: d_model {d_model}, {layers}+{layers} layers, ffn {ffn}), batch "
          f"{opts.batch_size} x {opts.source_length}/{opts.target_length} tokens, fp32, {device_name('cpu')}, torch "
          f"{torch.__version__}; median of {opts.rounds} rounds of the median of "
          f"{opts.updates} updates\n")
    print(f"{'trainer':<19} {'vocabulary':>10} {'L2-SP':>6} " + " ".join(f"{p + ' (ms)':>15}" for p in PHASES)
          + f" {'update (ms)':>12}")
    for name, row in median.items():
        vocab = opts.vocab_size if name.startswith("large") else opts.small_vocab_size
        cells = " ".join(f"{1000 * row[p]:>9.0f} ({100 * row[p] / row['total']:>2.0f}%)" for p in PHASES)
        print(f"{name:<19} {vocab:>10,} {'on' if 'l2sp' in name else 'off':>6} {cells} {1000 * row['total']:>12.0f}")

    def paired(numerator: str, denominator: str) -> float:
        return statistics.median(a["total"] / b["total"] for a, b in zip(per_round[numerator], per_round[denominator]))

    ratios = {"l2sp_large": paired("large_l2sp", "large"), "l2sp_small": paired("small_l2sp", "small"),
              "vocabulary": paired("large", "small")}
    print(f"\nL2-SP on / off, paired per round: {ratios['l2sp_large']:.3f}x ({opts.vocab_size:,} entries), "
          f"{ratios['l2sp_small']:.3f}x ({opts.small_vocab_size:,}); {opts.vocab_size:,} / {opts.small_vocab_size:,} "
          f"entries: {ratios['vocabulary']:.2f}x")
    if "large_compiled" in per_round:
        ratios["compiled"] = paired("large_compiled", "large")
        ratios["compiled_l2sp"] = paired("large_l2sp_compiled", "large_l2sp")
        print(f"torch_compile / eager, paired per round: {ratios['compiled']:.3f}x (L2-SP off), "
              f"{ratios['compiled_l2sp']:.3f}x (L2-SP on)")
    return {"median": median, "ratios": ratios, "per_round": per_round, "settings": vars(opts)}


if __name__ == "__main__":
    main()
