"""What L2-SP costs per optimizer update in steady state, measured side by side in one run.

Variants, all with the same model, batch, optimizer (transformers' default AdamW) and data, each a real
``L2MTTrainer.train()`` call:
  plain           no regularizer (l2sp_lambda=0)
  coupled         L2-SP, l2sp_mode="coupled"   (λ(θ−θ₀) added to the gradient), float32 anchor
  decoupled       L2-SP, l2sp_mode="decoupled" (θ ← θ − lr·λ(θ−θ₀) before the update), float32 anchor
  coupled_bf16    as coupled, anchor_dtype="bfloat16"
  decoupled_bf16  as decoupled, anchor_dtype="bfloat16"
  naive           (λ/2)·Σ‖θ−θ₀‖² summed into the loss through autograd (only with --variants ... naive)

Timing: ``--rounds`` rounds; in round r every variant runs once, in the order rotated by r, each with a
fresh model and 1 + ``--steps`` updates. The first update of each run (anchor snapshot, optimizer state,
allocator warm-up) is left out; the median of the other updates is the variant's time in that round, and
its ratio to plain's time *in the same round* is that round's ratio. The median of the per-round ratios
is reported, so a slow spell of the machine that hits one round hits both sides of its ratios.
``--clock cpu`` times in this process's CPU time instead of wall time (CPU only): on a machine shared
with other jobs it leaves out the time the process waited for a core, though not the slowdown of
sharing caches and memory bandwidth.

The regularizer alone: the L2-SP functions timed on the model's own parameters (random gradients), next
to one read of the float32 anchor, the least an update with L2-SP can add.

Memory: the anchor's bytes plus the most bytes the L2-SP functions allocate at once during an update,
by tensor-size accounting (``benchmarks/tensor_bytes.py``), for each anchor dtype; and the peak of every
variant's whole run: peak resident set size of a fresh process running 3 updates on CPU, peak CUDA
allocated on CUDA.

    python -m benchmarks.regularizer_overhead --threads 1                   # 74M Marian, CPU, batch 8 x 24
    python -m benchmarks.regularizer_overhead --threads 1 --clock cpu       # the same, timed in CPU time
    python -m benchmarks.regularizer_overhead --device cuda --bf16 --batch_size 64 --seq_len 64
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import MarianConfig, MarianMTModel, TrainerCallback
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from benchmarks.tensor_bytes import TensorBytes
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.core.anchor import snapshot_anchor
from hf_l2mt.core.regularizers.l2sp import add_l2sp_grad_, move_toward_anchor_

VARIANTS = ("plain", "coupled", "decoupled", "coupled_bf16", "decoupled_bf16", "naive")
DEFAULT_VARIANTS = VARIANTS[:5]
# The targets of issue 16: time per update against plain, and a bfloat16 anchor's memory against a float32 one's.
TIME_TARGETS = {"coupled": 1.04, "decoupled": 1.04, "coupled_bf16": 1.025, "decoupled_bf16": 1.025}
BF16_MEMORY_TARGET = 0.5


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class StepTimer(TrainerCallback):
    """Time of every optimizer update (device synchronised before each clock read): wall time, or with
    ``clock="cpu"`` the CPU time of this process, which other jobs on a shared CPU slow down less."""

    def __init__(self, clock: str = "wall"):
        self.times, self._start, self._clock = [], None, CLOCKS[clock]

    def _now(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return self._clock()

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


def opus_mt_config(vocab_size: int, d_model: int = 512, layers: int = 6) -> MarianConfig:
    """The shape of Helsinki-NLP/opus-mt-en-de (6+6 layers, d_model 512, 8 heads, ffn 2048), random init;
    ``d_model`` and ``layers`` shrink it (ffn 4·d_model, one head per 64 dimensions)."""
    heads = max(1, d_model // 64)
    return MarianConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model, max_position_embeddings=512, pad_token_id=vocab_size - 1,
        decoder_start_token_id=vocab_size - 1, eos_token_id=0, dropout=0.1,
    )  # fmt: skip


def random_batches(n: int, batch_size: int, seq_len: int, vocab_size: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(1, vocab_size - 1, (n * batch_size, 2, seq_len), generator=generator)
    return [{"input_ids": r[0], "attention_mask": torch.ones(seq_len, dtype=torch.long), "labels": r[1]} for r in rows]


def make_trainer(variant: str, model, data, opts, steps: int, timer=None) -> L2MTTrainer:
    args = L2MTTrainingArguments(
        output_dir="/tmp/hf_l2mt_overhead", per_device_train_batch_size=opts.batch_size, max_steps=steps,
        learning_rate=1e-4, report_to=[], save_strategy="no", logging_steps=10**9, disable_tqdm=True,
        use_cpu=opts.device == "cpu", bf16=opts.bf16, dataloader_num_workers=0, seed=0,
        l2sp_lambda=0.0 if variant in ("plain", "naive") else 0.1,
        l2sp_mode="decoupled" if variant.startswith("decoupled") else "coupled",
        anchor_dtype="bfloat16" if variant.endswith("_bf16") else "float32",
    )  # fmt: skip
    cls = NaiveL2SPTrainer if variant == "naive" else L2MTTrainer
    return cls(model=model, args=args, train_dataset=data, callbacks=[timer] if timer else [])


def rotated(variants: tuple[str, ...], round_index: int) -> list[str]:
    shift = round_index % len(variants)
    return list(variants[shift:] + variants[:shift])


def run_rounds(opts) -> dict:
    config = opus_mt_config(opts.vocab_size, opts.d_model, opts.layers)
    data = random_batches(1 + opts.steps, opts.batch_size, opts.seq_len, opts.vocab_size)
    torch.manual_seed(0)
    base_state = MarianMTModel(config).state_dict()
    per_round = []  # per round: variant -> median update time (s), the first update left out
    timings = {v: [] for v in opts.variants}
    peak = {v: 0 for v in opts.variants}
    num_params = None
    for r in range(opts.rounds):
        medians = {}
        for variant in rotated(opts.variants, r):
            model = MarianMTModel(config)
            model.load_state_dict(base_state)
            num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
            timer = StepTimer(opts.clock)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            make_trainer(variant, model, data, opts, 1 + opts.steps, timer).train()
            steady = timer.times[1:]
            timings[variant].extend(steady)
            medians[variant] = statistics.median(steady)
            if torch.cuda.is_available():
                peak[variant] = max(peak[variant], torch.cuda.max_memory_allocated())
            del model
        per_round.append(medians)
        print(f"round {r + 1}: " + ", ".join(f"{v} {medians[v]:.4f}s" for v in opts.variants), flush=True)
    return {"per_round": per_round, "timings": timings, "peak_cuda_bytes": peak, "num_params": num_params}


def regularizer_alone(opts) -> dict:
    """The L2-SP functions on the model's own parameters, per anchor dtype: median time and memory."""
    torch.manual_seed(0)
    model = MarianMTModel(opus_mt_config(opts.vocab_size, opts.d_model, opts.layers)).to(opts.device)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    anchors = {dtype: snapshot_anchor(params, getattr(torch, dtype)) for dtype in ("float32", "bfloat16")}
    calls = {
        "read the float32 anchor once": lambda: torch._foreach_norm(anchors["float32"]),
        **{f"coupled, {d} anchor": (lambda d=d: add_l2sp_grad_(params, anchors[d], 0.1)) for d in anchors},
        **{f"decoupled, {d} anchor": (lambda d=d: move_toward_anchor_(params, anchors[d], 1e-5)) for d in anchors},
    }
    times, clock = {name: [] for name in calls}, CLOCKS[opts.clock]
    for r in range(opts.alone_repeats):
        for name in rotated(tuple(calls), r):
            if opts.device == "cuda":
                torch.cuda.synchronize()
            start = clock()
            calls[name]()
            if opts.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(clock() - start)
    memory = {}
    for dtype, anchor in anchors.items():
        with TensorBytes() as counted:
            add_l2sp_grad_(params, anchor, 0.1)
            move_toward_anchor_(params, anchor, 1e-5)
        memory[dtype] = {"anchor_bytes": sum(a.numel() * a.element_size() for a in anchor),
                         "update_temporary_bytes": counted.peak}  # fmt: skip
    return {"median_s": {name: statistics.median(t[1:]) for name, t in times.items()}, "memory": memory}


def peak_rss_alone(variant: str, opts) -> int:
    """Peak resident set size (bytes) of a fresh process that runs 3 updates of ``variant``."""
    cmd = [sys.executable, "-m", "benchmarks.regularizer_overhead", "--_memory_only", variant,
           "--batch_size", str(opts.batch_size), "--seq_len", str(opts.seq_len), "--vocab_size", str(opts.vocab_size),
           "--d_model", str(opts.d_model), "--layers", str(opts.layers), "--threads", str(opts.threads)]  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root).stdout
    return int(json.loads(out.strip().splitlines()[-1])["peak_rss_bytes"])


def memory_only(variant: str, opts) -> None:
    model = MarianMTModel(opus_mt_config(opts.vocab_size, opts.d_model, opts.layers))
    data = random_batches(3, opts.batch_size, opts.seq_len, opts.vocab_size)
    make_trainer(variant, model, data, opts, 3).train()
    # VmHWM is this process image's own high-water mark; ru_maxrss would inherit the parent's across exec.
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_bytes": hwm_kib * 1024}))


def paired_ratios(per_round: list[dict], variants) -> dict:
    """Per variant: its time over plain's in each round, and their median."""
    ratios = {v: [m[v] / m["plain"] for m in per_round] for v in variants}
    return {v: {"per_round": r, "median": statistics.median(r)} for v, r in ratios.items()}


def target_note(met: bool, target: str) -> str:
    return f"{target} {'met' if met else 'NOT met'}"


def report(opts, result, alone, memory, memory_kind) -> dict:
    ratios = paired_ratios(result["per_round"], opts.variants)
    medians = {v: statistics.median(t) for v, t in result["timings"].items()}
    device = device_name(opts.device)
    print(
        f"\nL2-SP overhead per update: {result['num_params'] / 1e6:.1f}M-parameter Marian, batch {opts.batch_size} x "
        f"{opts.seq_len} tokens, {'bf16 autocast' if opts.bf16 else 'fp32'}, {device}, torch {torch.__version__}"
    )
    print(
        f"{opts.rounds} rounds, variants in rotated order, each run 1 + {opts.steps} updates, the first left out; "
        f"ratio = variant / plain within a round, median over rounds; {opts.clock} clock\n"
    )
    print(f"{'variant':<15} {'median update (s)':>18} {'vs plain':>9} {'per-round ratios':>44}   target")
    for v in opts.variants:
        r = ratios[v]
        per_round = " ".join(f"{x:.3f}" for x in r["per_round"])
        target = TIME_TARGETS.get(v)
        note = target_note(r["median"] <= target, f"<= {target}x") if target else ""
        print(f"{v:<15} {medians[v]:>18.4f} {r['median']:>8.3f}x {per_round:>44}   {note}")

    print(
        f"\nThe L2-SP functions alone over {result['num_params'] / 1e6:.1f}M weights, median of "
        f"{opts.alone_repeats - 1} calls (rotated order, the first left out):"
    )
    for name, seconds in alone["median_s"].items():
        print(f"  {name:<32} {seconds * 1e3:8.1f} ms")

    fp32, bf16 = alone["memory"]["float32"], alone["memory"]["bfloat16"]
    held = {d: m["anchor_bytes"] + m["update_temporary_bytes"] for d, m in alone["memory"].items()}
    share = held["bfloat16"] / held["float32"]
    print(
        "\nAnchor memory at its peak (tensor-size accounting: anchor + the most bytes the L2-SP functions "
        "allocate at once during an update):"
    )
    for dtype, m in (("float32", fp32), ("bfloat16", bf16)):
        print(
            f"  {dtype:<9} anchor {m['anchor_bytes'] / 2**20:8.1f} MiB + update temporaries "
            f"{m['update_temporary_bytes'] / 2**20:7.2f} MiB = {held[dtype] / 2**20:8.1f} MiB"
        )
    print(f"  bfloat16 / float32: {share:.4f}   {target_note(share <= BF16_MEMORY_TARGET, f'<= {BF16_MEMORY_TARGET}')}")

    print(f"\nWhole run, {memory_kind}:")
    for v in opts.variants:
        print(f"  {v:<15} {memory[v] / 2**20:8.0f} MiB   {(memory[v] - memory['plain']) / 2**20:+7.0f} MiB vs plain")
    return {
        "device": device, "num_params": result["num_params"], "batch_size": opts.batch_size, "seq_len": opts.seq_len,
        "bf16": opts.bf16, "rounds": opts.rounds, "steps": opts.steps, "clock": opts.clock, "median_update_s": medians, "ratios": ratios,
        "per_round_median_s": result["per_round"], "regularizer_alone_s": alone["median_s"],
        "anchor_memory": alone["memory"], "bf16_anchor_share": share, "memory_bytes": memory,
        "memory_kind": memory_kind, "timings": result["timings"],
    }  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=24, help="source and target tokens per sentence")
    parser.add_argument("--vocab_size", type=int, default=58101, help="opus-mt-en-de has 58,101")
    parser.add_argument("--d_model", type=int, default=512, help="opus-mt-en-de has 512")
    parser.add_argument("--layers", type=int, default=6, help="encoder and decoder layers each; opus-mt-en-de has 6")
    parser.add_argument("--steps", type=int, default=4, help="timed updates per run, after the first")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS))
    parser.add_argument("--alone_repeats", type=int, default=8, help="calls of each L2-SP function timed alone")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (CPU only: steadier on a shared machine)",
    )
    parser.add_argument("--skip_memory", action="store_true", help="no fresh process per variant for peak RSS")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--_memory_only", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    opts.threads = torch.get_num_threads()
    hf_logging.set_verbosity_error()
    if opts._memory_only:
        memory_only(opts._memory_only, opts)
        return {}
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if opts.device == "cuda" and opts.clock == "cpu":
        parser.error("--clock cpu: the host's CPU time does not measure the GPU's work; use --clock wall")
    if "plain" not in opts.variants:
        parser.error(f"--variants: {' '.join(opts.variants)} has no 'plain', which the ratios are taken to")
    opts.variants = tuple(opts.variants)

    result = run_rounds(opts)
    alone = regularizer_alone(opts)
    if opts.device == "cuda":
        memory, memory_kind = result["peak_cuda_bytes"], "peak CUDA allocated"
    elif opts.skip_memory:
        memory, memory_kind = {v: 0 for v in opts.variants}, "not measured (--skip_memory)"
    else:
        memory = {v: peak_rss_alone(v, opts) for v in opts.variants}
        memory_kind = "peak RSS of a fresh process running 3 updates"
    summary = report(opts, result, alone, memory, memory_kind)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


if __name__ == "__main__":
    main()
