"""What L2-SP costs per optimizer step, measured side by side in one run.

Variants, all with the same model, batch, optimizer (AdamW) and data, each a real
``L2MTTrainer.train()`` call:
  plain      no regularizer (l2sp_lambda=0)
  coupled    L2-SP, l2sp_mode="coupled"   (λ(θ−θ₀) added to the gradient)
  decoupled  L2-SP, l2sp_mode="decoupled" (θ ← θ − lr·λ(θ−θ₀) before the update)
  naive      (λ/2)·Σ‖θ−θ₀‖² summed into the loss over all parameters, through autograd

The variants run in rounds, alternating, so slow drifts of the machine hit all of them alike.
Each round runs ``--warmup`` untimed then ``--steps`` timed updates; the medians of all timed
updates per variant and their ratios to ``plain`` are printed. Peak memory: on CUDA the peak
allocated bytes during each variant's run; on CPU each variant runs again alone in a fresh
process and its peak resident set size is reported.

    python benchmarks/regularizer_overhead.py                      # 74M Marian, CPU, batch 8 x 24
    python benchmarks/regularizer_overhead.py --device cuda --bf16 --batch_size 64 --seq_len 64
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from transformers import MarianConfig, MarianMTModel, TrainerCallback
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments

VARIANTS = ("plain", "coupled", "decoupled", "naive")


class StepTimer(TrainerCallback):
    """Wall time of every optimizer update (device synchronised before each clock read)."""

    def __init__(self):
        self.times, self._start = [], None

    def _now(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(self._now() - self._start)


class NaiveL2SPTrainer(L2MTTrainer):
    """The textbook way: the penalty is part of the loss, so autograd builds a graph over all weights."""

    naive_lambda = 0.1

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        self.naive_anchor = [(p, p.detach().clone()) for p in self.model.parameters() if p.requires_grad]
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        task = loss[0] if return_outputs else loss
        # Added once per update: the accumulated gradient then carries it exactly once.
        penalty = self.naive_lambda / 2 * sum(((p - a) ** 2).sum() for p, a in self.naive_anchor)
        task = task + penalty / self.args.gradient_accumulation_steps
        return (task, loss[1]) if return_outputs else task


def opus_mt_config(vocab_size: int) -> MarianConfig:
    """The shape of Helsinki-NLP/opus-mt-en-de (6+6 layers, d_model 512, 8 heads, ffn 2048), random init."""
    return MarianConfig(
        vocab_size=vocab_size, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
        decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512,
        pad_token_id=vocab_size - 1, decoder_start_token_id=vocab_size - 1, eos_token_id=0, dropout=0.1,
    )


def random_batches(n: int, batch_size: int, seq_len: int, vocab_size: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(1, vocab_size - 1, (n * batch_size, 2, seq_len), generator=generator)
    return [{"input_ids": r[0], "attention_mask": torch.ones(seq_len, dtype=torch.long), "labels": r[1]} for r in rows]


def make_trainer(variant: str, model, data, opts, steps: int, timer=None) -> L2MTTrainer:
    args = L2MTTrainingArguments(
        output_dir="/tmp/hf_l2mt_overhead", per_device_train_batch_size=opts.batch_size, max_steps=steps,
        learning_rate=1e-4, report_to=[], save_strategy="no", logging_steps=10**9, disable_tqdm=True,
        use_cpu=opts.device == "cpu", bf16=opts.bf16, dataloader_num_workers=0, seed=0,
        l2sp_lambda=0.1 if variant in ("coupled", "decoupled") else 0.0,
        l2sp_mode="decoupled" if variant == "decoupled" else "coupled",
    )
    cls = NaiveL2SPTrainer if variant == "naive" else L2MTTrainer
    return cls(model=model, args=args, train_dataset=data, callbacks=[timer] if timer else [])


def run_rounds(opts) -> dict:
    config = opus_mt_config(opts.vocab_size)
    data = random_batches(opts.warmup + opts.steps, opts.batch_size, opts.seq_len, opts.vocab_size)
    torch.manual_seed(0)
    base_state = MarianMTModel(config).state_dict()
    timings = {v: [] for v in VARIANTS}
    peak = {v: 0 for v in VARIANTS}
    num_params = None
    for _ in range(opts.rounds):
        for variant in VARIANTS:
            model = MarianMTModel(config)
            model.load_state_dict(base_state)
            num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            timer = StepTimer()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            make_trainer(variant, model, data, opts, opts.warmup + opts.steps, timer).train()
            timings[variant].extend(timer.times[opts.warmup:])
            if torch.cuda.is_available():
                peak[variant] = max(peak[variant], torch.cuda.max_memory_allocated())
            del model
    return {"timings": timings, "peak_cuda_bytes": peak, "num_params": num_params}


def peak_rss_alone(variant: str, opts) -> int:
    """Peak resident set size (bytes) of a fresh process that runs 3 updates of ``variant``."""
    cmd = [sys.executable, __file__, "--_memory_only", variant, "--batch_size", str(opts.batch_size),
           "--seq_len", str(opts.seq_len), "--vocab_size", str(opts.vocab_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(json.loads(out.strip().splitlines()[-1])["peak_rss_bytes"])


def memory_only(variant: str, opts) -> None:
    model = MarianMTModel(opus_mt_config(opts.vocab_size))
    data = random_batches(3, opts.batch_size, opts.seq_len, opts.vocab_size)
    make_trainer(variant, model, data, opts, 3).train()
    # VmHWM is this process image's own high-water mark; ru_maxrss would inherit the parent's across exec.
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_bytes": hwm_kib * 1024}))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=24, help="source and target tokens per sentence")
    parser.add_argument("--vocab_size", type=int, default=58101, help="opus-mt-en-de has 58,101")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per round")
    parser.add_argument("--steps", type=int, default=5, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--_memory_only", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    hf_logging.set_verbosity_error()
    if opts._memory_only:
        memory_only(opts._memory_only, opts)
        return {}
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")

    result = run_rounds(opts)
    medians = {v: statistics.median(t) for v, t in result["timings"].items()}
    if opts.device == "cpu":
        memory = {v: peak_rss_alone(v, opts) for v in VARIANTS}
        memory_kind = "peak RSS, fresh process per variant"
    else:
        memory = result["peak_cuda_bytes"]
        memory_kind = "peak CUDA allocated"
    device = device_name(opts.device)
    print(f"\nL2-SP overhead: {result['num_params'] / 1e6:.1f}M-parameter Marian, batch {opts.batch_size} x {opts.seq_len} tokens, "
          f"{'bf16 autocast' if opts.bf16 else 'fp32'}, {device}, torch {torch.__version__}")
    print(f"{opts.rounds} rounds x {opts.steps} timed updates per variant (after {opts.warmup} warm-up updates each round)\n")
    print(f"{'variant':<10} {'median step (s)':>16} {'vs plain':>9} {memory_kind + ' (MiB)':>40}")
    for v in VARIANTS:
        print(f"{v:<10} {medians[v]:>16.4f} {medians[v] / medians['plain']:>8.3f}x {memory[v] / 2**20:>40.0f}")
    summary = {
        "device": device, "num_params": result["num_params"], "batch_size": opts.batch_size, "seq_len": opts.seq_len,
        "bf16": opts.bf16, "median_step_s": medians, "ratio_to_plain": {v: medians[v] / medians["plain"] for v in VARIANTS},
        "memory_bytes": memory, "memory_kind": memory_kind, "timings": result["timings"],
    }
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


if __name__ == "__main__":
    main()
