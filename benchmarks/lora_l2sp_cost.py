"""What the merged-weight L2-SP for LoRA costs per optimizer step, measured side by side in one run.

Variants, all LoRA (r=16, alpha=32, the default target modules) on the same model, batch, optimizer (AdamW)
and data, each a real ``L2MTTrainer.train()`` call:
  lora           adapters only (lora_l2sp_lambda=0)
  lora_l2sp      lora_l2sp_lambda=0.1: λ s² (BᵀB)A and λ s² B(AAᵀ) added to the gradients after the last
                 micro-batch, through r x r Gram matrices (hf_l2mt.core.regularizers.lora_l2sp)
  autograd       (λ/2)·Σ‖s·B·A‖² summed into the loss, forming every out x in product, through autograd

The variants run in rounds, alternating, so slow drifts of the machine hit all of them alike. Each round
runs ``--warmup`` untimed then ``--steps`` timed updates; the medians of all timed updates per variant and
their ratios to ``lora`` are printed.

    python benchmarks/lora_l2sp_cost.py                      # 74M Marian (opus-mt-en-de's shape), CPU
    python benchmarks/lora_l2sp_cost.py --device cuda --bf16 --batch_size 64 --seq_len 64
"""

import argparse
import json
import shutil
import statistics
import tempfile

import torch
from transformers import MarianConfig, MarianMTModel
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from benchmarks.regularizer_overhead import StepTimer, random_batches
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.core.regularizers.lora_l2sp import lora_pairs

VARIANTS = ("lora", "lora_l2sp", "autograd")
LAMBDA = 0.1


class PenaltyInLossTrainer(L2MTTrainer):
    """The textbook way: the penalty is part of the loss, so every ΔW = s·B·A is formed and differentiated."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        task = loss[0] if return_outputs else loss
        penalty = LAMBDA / 2 * sum((p.scaling * p.lora_B @ p.lora_A).pow(2).sum() for p in lora_pairs(model))
        task = task + penalty / self.args.gradient_accumulation_steps  # once per update, as the coupled term
        return (task, loss[1]) if return_outputs else task


def marian_config(opts) -> MarianConfig:
    """opus-mt-en-de's shape by default (6+6 layers, d_model 512, 8 heads, ffn 2048), random init."""
    return MarianConfig(
        vocab_size=opts.vocab_size, d_model=opts.d_model, encoder_layers=opts.layers, decoder_layers=opts.layers,
        encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=4 * opts.d_model,
        decoder_ffn_dim=4 * opts.d_model, max_position_embeddings=512, pad_token_id=opts.vocab_size - 1,
        decoder_start_token_id=opts.vocab_size - 1, eos_token_id=0, dropout=0.1,
    )


def make_trainer(variant: str, model, data, opts, steps: int, timer) -> L2MTTrainer:
    args = L2MTTrainingArguments(
        output_dir=opts.output_dir, per_device_train_batch_size=opts.batch_size, max_steps=steps,
        learning_rate=1e-4, report_to=[], save_strategy="no", logging_steps=10**9, disable_tqdm=True,
        use_cpu=opts.device == "cpu", bf16=opts.bf16, dataloader_num_workers=0, seed=0,
        adapter="lora", lora_r=opts.rank, lora_alpha=2.0 * opts.rank,
        lora_l2sp_lambda=LAMBDA if variant == "lora_l2sp" else 0.0,
    )
    cls = PenaltyInLossTrainer if variant == "autograd" else L2MTTrainer
    return cls(model=model, args=args, train_dataset=data, callbacks=[timer])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=24, help="source and target tokens per sentence")
    parser.add_argument("--vocab_size", type=int, default=58101, help="opus-mt-en-de has 58,101")
    parser.add_argument("--d_model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6, help="encoder and decoder layers each")
    parser.add_argument("--rank", type=int, default=16, help="lora_r (lora_alpha = 2 x rank)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per round")
    parser.add_argument("--steps", type=int, default=5, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    opts = parser.parse_args(argv)
    hf_logging.set_verbosity_error()
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")

    # One lock per output_dir (hf_l2mt.core.run_lock): a folder of its own, so that two runs never collide.
    opts.output_dir = tempfile.mkdtemp(prefix="hf_l2mt_lora_cost_")
    config = marian_config(opts)
    data = random_batches(opts.warmup + opts.steps, opts.batch_size, opts.seq_len, opts.vocab_size)
    torch.manual_seed(0)
    base_state = MarianMTModel(config).state_dict()
    timings = {v: [] for v in VARIANTS}
    adapter_params = None
    for _ in range(opts.rounds):
        for variant in VARIANTS:
            model = MarianMTModel(config)
            model.load_state_dict(base_state)
            timer = StepTimer()
            trainer = make_trainer(variant, model, data, opts, opts.warmup + opts.steps, timer)
            adapter_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            trainer.train()
            timings[variant].extend(timer.times[opts.warmup:])
    shutil.rmtree(opts.output_dir, ignore_errors=True)
    medians = {v: statistics.median(t) for v, t in timings.items()}
    device = device_name(opts.device)
    print(f"\nLoRA L2-SP cost: Marian d_model {opts.d_model}, {opts.layers}+{opts.layers} layers, r={opts.rank} "
          f"({adapter_params / 1e6:.2f}M adapter parameters), batch {opts.batch_size} x {opts.seq_len} tokens, "
          f"{'bf16 autocast' if opts.bf16 else 'fp32'}, {device}, torch {torch.__version__}")
    print(f"{opts.rounds} rounds x {opts.steps} timed updates per variant (after {opts.warmup} warm-up updates each round)\n")
    print(f"{'variant':<10} {'median step (s)':>16} {'vs lora':>8}")
    for v in VARIANTS:
        print(f"{v:<10} {medians[v]:>16.4f} {medians[v] / medians['lora']:>7.3f}x")
    summary = {
        "device": device, "adapter_params": adapter_params, "rank": opts.rank, "batch_size": opts.batch_size,
        "seq_len": opts.seq_len, "bf16": opts.bf16, "median_step_s": medians,
        "ratio_to_lora": {v: medians[v] / medians["lora"] for v in VARIANTS}, "timings": timings,
    }
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


if __name__ == "__main__":
    main()
