"""Evaluation speed, side by side in one run: Seq2SeqTrainer.predict vs hf_l2mt.evaluation.translate.translate.

Both translate the same held-out sentences with the same model and generation settings (same
beams, same ``max_new_tokens``, same precision) and score them with sacreBLEU
(``hf_l2mt.evaluation.metrics.score_translations``):

  baseline  transformers' ``run_translation.py`` way: ``Seq2SeqTrainer.predict`` with
            ``predict_with_generate=True`` over the set in file order, fixed batch size, labels
            included (so it also computes the loss, as that script does), then ``batch_decode``.
  ours      ``hf_l2mt.evaluation.translate.translate``: batches of sentences sorted by length, under
            ``torch.inference_mode``, hypotheses returned in input order.

The two must produce the same hypotheses: the script prints how many differ and BLEU of both, and
fails when BLEU differs. The passes alternate (baseline, ours, ours, baseline, ...) after one untimed
warm-up pass of each; the median wall time per pass and the ratio are printed.

The sentences are the Ding pairs of a sample folder written by ``benchmarks/throughput.py
--export_sample`` (its last ``--sentences`` pairs). The model is ``--model_dir`` (any folder written by
``save_pretrained`` with its tokenizer, e.g. the Ding base of ``benchmarks/domain_adaptation.py``), or
a randomly initialised Marian with the sample's tokenizer (its output is noise, still compared for
identity):

    python -m benchmarks.eval_speed --model_dir ~/.cache/hf_l2mt/ding_base/base --sentences 1000
    python -m benchmarks.eval_speed --device cuda --bf16 --model opus --sentences 2000 --batch_size 64
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    MarianMTModel,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.utils import logging as hf_logging

from benchmarks.device import device_name
from benchmarks.throughput import SHAPES, marian_config, read_sample
from hf_l2mt.evaluation.metrics import decode_predictions, score_translations
from hf_l2mt.evaluation.translate import translate

VARIANTS = ("baseline", "ours")


def synchronized_clock() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def baseline_pass(model, tokenizer, sources, references, opts) -> list[str]:
    """run_translation.py's prediction: Seq2SeqTrainer.predict in file order, then decode."""
    encoded = tokenizer(sources, truncation=True)
    labels = tokenizer(text_target=references, truncation=True)["input_ids"]
    rows = [{"input_ids": i, "attention_mask": m, "labels": t}
            for i, m, t in zip(encoded["input_ids"], encoded["attention_mask"], labels)]
    args = Seq2SeqTrainingArguments(
        output_dir=os.path.join(tempfile.gettempdir(), f"hf_l2mt_eval_speed-{os.getpid()}"),
        per_device_eval_batch_size=opts.batch_size,
        predict_with_generate=True, report_to=[], disable_tqdm=True, use_cpu=opts.device == "cpu",
        dataloader_num_workers=0,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    trainer = Seq2SeqTrainer(model=model, args=args, data_collator=collator, processing_class=tokenizer)
    output = trainer.predict(rows, num_beams=opts.num_beams, max_new_tokens=opts.max_new_tokens)
    return decode_predictions(tokenizer, output.predictions)


def ours_pass(model, tokenizer, sources, opts) -> list[str]:
    return translate(sources, model, tokenizer, batch_size=opts.batch_size, num_beams=opts.num_beams,
                     max_new_tokens=opts.max_new_tokens, progress=False)


def load_model(opts, sample_tokenizer):
    if opts.model_dir:
        tokenizer = AutoTokenizer.from_pretrained(opts.model_dir, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(opts.model_dir, local_files_only=True)
        return model, tokenizer, f"{opts.model_dir} (trained)"
    torch.manual_seed(0)
    model = MarianMTModel(marian_config(opts.model, opts.vocab_size, sample_tokenizer))
    return model, sample_tokenizer, f"random-init Marian ({opts.model} shape)"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 on a shared machine, "
                        "where more threads than free cores slow every thread down")
    parser.add_argument("--bf16", action="store_true", help="cast the model to bfloat16 (both variants)")
    parser.add_argument("--model_dir", help="a trained model folder (save_pretrained, with tokenizer)")
    parser.add_argument("--model", choices=sorted(SHAPES), default="small", help="shape of a random-init model")
    parser.add_argument("--vocab_size", type=int, default=0, help="random-init model vocabulary (default: the tokenizer's)")
    parser.add_argument("--tokenized_sample", default="outputs/throughput_sample",
                        help="folder written by benchmarks/throughput.py --export_sample")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per variant")
    parser.add_argument("--json", help="also write the results here")
    opts = parser.parse_args(argv)
    for flag in ("sentences", "batch_size", "num_beams", "max_new_tokens", "rounds"):
        if getattr(opts, flag) < 1:
            parser.error(f"--{flag} {getattr(opts, flag)}: accepted: an integer >= 1")
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    sample, sample_tokenizer = read_sample(opts.tokenized_sample)
    if opts.sentences > len(sample["sources"]):
        raise ValueError(f"--sentences {opts.sentences}: {opts.tokenized_sample} holds {len(sample['sources'])} pairs")
    sources, references = sample["sources"][-opts.sentences:], sample["targets"][-opts.sentences:]
    model, tokenizer, model_kind = load_model(opts, sample_tokenizer)
    model = model.to(opts.device, dtype=torch.bfloat16 if opts.bf16 else None).eval()

    def run(variant: str, n: int) -> list[str]:
        if variant == "baseline":
            return baseline_pass(model, tokenizer, sources[:n], references[:n], opts)
        return ours_pass(model, tokenizer, sources[:n], opts)

    for variant in VARIANTS:  # warm-up: allocator, kernels, tokenizer caches
        run(variant, min(len(sources), 2 * opts.batch_size))
    times = {v: [] for v in VARIANTS}
    hypotheses = {}
    for round_index in range(opts.rounds):
        for variant in VARIANTS if round_index % 2 == 0 else reversed(VARIANTS):
            start = synchronized_clock()
            hypotheses[variant] = run(variant, len(sources))
            scores = score_translations(hypotheses[variant], references)
            times[variant].append(synchronized_clock() - start)
            hypotheses[variant + "_scores"] = scores
    return report(opts, times, hypotheses, model, model_kind, sample["description"])


def report(opts, times, hypotheses, model, model_kind, description) -> dict:
    median = {v: statistics.median(times[v]) for v in VARIANTS}
    scores = {v: hypotheses[v + "_scores"] for v in VARIANTS}
    differing = [i for i, (a, b) in enumerate(zip(hypotheses["baseline"], hypotheses["ours"])) if a != b]
    device = device_name(opts.device)
    num_params = sum(p.numel() for p in model.parameters())
    print(f"\nEvaluation speed: {len(hypotheses['ours'])} sentences, {model_kind}, {num_params / 1e6:.1f}M parameters, "
          f"batch {opts.batch_size}, {opts.num_beams} beam(s), max {opts.max_new_tokens} new tokens, "
          f"{'bf16' if opts.bf16 else 'fp32'}, {device}, torch {torch.__version__}")
    print(f"data: last {len(hypotheses['ours'])} of {description}\n")
    print(f"{'variant':<9} {'median pass (s)':>16} {'sentences/s':>12} {'vs baseline':>12} {'BLEU':>7} {'chrF':>7}")
    rows = {}
    for v in VARIANTS:
        rows[v] = {"median_s": median[v], "seconds_per_round": times[v], "speedup": median["baseline"] / median[v],
                   "bleu": scores[v]["bleu"], "chrf": scores[v]["chrf"], "exact_match": scores[v]["exact_match"]}
        print(f"{v:<9} {median[v]:>16.2f} {len(hypotheses[v]) / median[v]:>12.1f} {rows[v]['speedup']:>11.2f}x "
              f"{scores[v]['bleu']:>7.2f} {scores[v]['chrf']:>7.2f}")
    print(f"\nidentical hypotheses: {len(hypotheses['ours']) - len(differing)} of {len(hypotheses['ours'])}; "
          f"speed-up of ours: {rows['ours']['speedup']:.2f}x (goal: >= 1.5x)")
    for i in differing[:3]:
        print(f"  differs at #{i}: baseline {hypotheses['baseline'][i]!r} / ours {hypotheses['ours'][i]!r}")
    summary = {"device": device, "model": model_kind, "num_params": num_params, "sentences": len(hypotheses["ours"]),
               "batch_size": opts.batch_size, "num_beams": opts.num_beams, "max_new_tokens": opts.max_new_tokens,
               "bf16": opts.bf16, "data": description, "variants": rows, "speedup": rows["ours"]["speedup"],
               "differing_hypotheses": len(differing), "bleu_signature": scores["ours"]["signatures"]["bleu"]}
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    if scores["baseline"]["bleu"] != scores["ours"]["bleu"]:
        raise RuntimeError(f"the variants' outputs differ: BLEU {scores['baseline']['bleu']:.4f} (baseline) vs "
                           f"{scores['ours']['bleu']:.4f} (ours), {len(differing)} hypotheses differ")
    return summary


if __name__ == "__main__":
    main()
