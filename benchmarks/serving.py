"""Serving speed and quality, side by side in one run: PyTorch generation (ours) vs CTranslate2 exports.

Every engine translates the same sentences with the same beams and ``max_new_tokens``:

  pytorch       ``hf_l2mt.evaluation.translate.translate``: length-sorted batches of ``--batch_size``
                sentences under ``torch.inference_mode`` (fp32 on the CPU, fp16 on CUDA).
  ct2-<q>       the model exported by ``hf-l2mt export``'s converter (``hf_l2mt.apps.export.convert.convert``)
                at quantization ``q`` and translated by ``hf_l2mt.evaluation.ctranslate2_engine``:
                float32 and int8 on the CPU, float16 and int8_float16 on CUDA. CTranslate2 batches by
                tokens; its budget is ``--batch_size`` times the mean source length, so its batches hold
                about as many sentences as PyTorch's.

On the CPU every engine runs with each of ``--threads`` (torch threads, CTranslate2 intra-op threads).
After one untimed warm-up of each engine on ``--batch_size`` sentences, the engines alternate in rounds
(order reversed every round); reported are the median sentences per second, the ratio to PyTorch at the
same thread count, and chrF (sacreBLEU) of each engine's translations with its difference to PyTorch's.
The load average before and after is printed: on a shared machine it says whether the numbers are clean.

Models: ``--model DIR`` (any ``save_pretrained`` folder with its tokenizer; default: the numbers demo's
cached base, trained by ``hf-l2mt demo``) translates ``--test SOURCE,REFERENCE`` (default: the demo's
held-out cardinals), scored; and, unless ``--skip_opus``, a random Marian of opus-mt-en-de's shape
(vocabulary 58,101, d_model 512, 6+6 layers, ffn 2048) with a SentencePiece tokenizer trained on the
test sources, for speed only (its output is noise: no chrF). A random model rarely ends a sentence, so
each of its translations runs to ``--opus_max_new_tokens``.

    python -m benchmarks.serving --sentences 500 --opus_sentences 100 --rounds 3
    python -m benchmarks.serving --device cuda --sentences 500 --opus_sentences 500
"""

import argparse
import glob
import json
import os
import platform
import statistics
import tempfile
import time

import torch
from transformers import MarianConfig, MarianMTModel, MarianTokenizer
from transformers.utils import logging as hf_logging

from hf_l2mt.apps.demo.arguments import PRESETS
from hf_l2mt.apps.export.convert import convert
from hf_l2mt.apps.demo.numbers_task import numbers_splits
from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer
from hf_l2mt.atomic_write import atomic_path
from hf_l2mt.evaluation.ctranslate2_engine import ExportedModel, translate_with_export
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.tokenizer_warnings import without_sacremoses_recommendation
from hf_l2mt.evaluation.translate import load_translation_model, read_lines, translate

QUANTIZATIONS = {"cpu": ("float32", "int8"), "cuda": ("float16", "int8_float16")}
# Helsinki-NLP/opus-mt-en-de's config: vocab_size, d_model, encoder/decoder layers, attention heads, ffn dim.
OPUS_SHAPE = dict(vocab_size=58101, d_model=512, layers=6, heads=8, ffn_dim=2048)
DEMO_TEST_SIZE = PRESETS["full"]["test_size"]  # the demo's held-out cardinals are the first of these


# ---- models and sentences -------------------------------------------------------------------------------


def demo_base_dir() -> str:
    """The newest numbers base ``hf-l2mt demo`` cached under ``~/.cache/hf_l2mt``."""
    found = sorted(glob.glob(os.path.join(os.path.expanduser("~"), ".cache", "hf_l2mt", "numbers_base-*")),
                   key=os.path.getmtime)
    if not found:
        raise FileNotFoundError("--model unset and no numbers base under ~/.cache/hf_l2mt; train one with "
                                "hf-l2mt demo --l2sp_lambdas 0 --output_dir /tmp/demo, or pass --model DIR")
    return found[-1]


def numbers_test_set(count: int) -> tuple[list[str], list[str]]:
    """The first ``count`` of the demo's held-out cardinals (seed 0), which its base never trained on."""
    if count > DEMO_TEST_SIZE:
        raise ValueError(f"--sentences {count}: the demo holds out {DEMO_TEST_SIZE} cardinals; pass --test for more")
    test = numbers_splits("cardinal", train_size=0, heldout_size=DEMO_TEST_SIZE, seed=0)["test"]
    return list(test["source"][:count]), list(test["target"][:count])


def file_test_set(spec: str, count: int) -> tuple[list[str], list[str]]:
    source, _, reference = spec.partition(",")
    if not source or not reference:
        raise ValueError(f"--test {spec!r}: accepted: SOURCE,REFERENCE, two text files with one sentence a line")
    sources, references = read_lines(source), read_lines(reference)
    if len(sources) != len(references):
        raise ValueError(f"--test {spec!r}: {len(sources)} sources but {len(references)} references; accepted: equal")
    return sources[:count], references[:count]


def opus_sized_marian(directory: str, texts: list[str]) -> str:
    """A random Marian of opus-mt-en-de's shape, saved with a small SentencePiece tokenizer trained on ``texts``.

    CTranslate2's Marian converter requires the tokenizer's vocabulary to be the model's, so the
    tokenizer's ``vocab.json`` is filled up to ``OPUS_SHAPE["vocab_size"]`` with unused tokens that
    no sentence encodes to (the output layer still scores all of them, as opus-mt's does).
    """
    small = train_marian_tokenizer(texts, os.path.join(directory, "small_tokenizer"), vocab_size=400)
    vocab = {token: index for token, index in small.encoder.items() if token != small.pad_token}
    vocab.update({f"<unused_{i}>": i for i in range(len(vocab), OPUS_SHAPE["vocab_size"] - 1)})
    vocab[small.pad_token] = OPUS_SHAPE["vocab_size"] - 1  # last, as in opus-mt
    vocab_path = os.path.join(directory, "small_tokenizer", "opus_vocab.json")
    with open(vocab_path, "w", encoding="utf-8") as handle:
        json.dump(vocab, handle, ensure_ascii=False)
    spm_model = os.path.join(directory, "small_tokenizer", "source.spm")
    with without_sacremoses_recommendation():
        tokenizer = MarianTokenizer(source_spm=spm_model, target_spm=spm_model, vocab=vocab_path,
                                    unk_token=small.unk_token, eos_token=small.eos_token, pad_token=small.pad_token)
    tokenizer.save_pretrained(directory)
    config = MarianConfig(
        vocab_size=OPUS_SHAPE["vocab_size"], d_model=OPUS_SHAPE["d_model"],
        encoder_layers=OPUS_SHAPE["layers"], decoder_layers=OPUS_SHAPE["layers"],
        encoder_attention_heads=OPUS_SHAPE["heads"], decoder_attention_heads=OPUS_SHAPE["heads"],
        encoder_ffn_dim=OPUS_SHAPE["ffn_dim"], decoder_ffn_dim=OPUS_SHAPE["ffn_dim"], max_position_embeddings=512,
        scale_embedding=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    MarianMTModel(config).save_pretrained(directory)
    return directory


# ---- engines --------------------------------------------------------------------------------------------


def engines(model_dir: str, scratch: str, opts) -> dict:
    """``{name: translate(sentences, threads)}`` for PyTorch and each CTranslate2 quantization of ``model_dir``."""
    model, tokenizer = load_translation_model(model_dir)
    if opts.device == "cuda":
        model = model.half().to("cuda")
    budget = opts.batch_size * max(1, round(opts.mean_source_tokens))

    def pytorch(sentences, threads, max_new_tokens):
        torch.set_num_threads(threads)
        return translate(sentences, model, tokenizer, batch_size=opts.batch_size, num_beams=opts.num_beams,
                         max_new_tokens=max_new_tokens, progress=False)

    found = {"pytorch": pytorch}
    for quantization in QUANTIZATIONS[opts.device]:
        export_dir = os.path.join(scratch, f"ct2-{quantization}")
        convert(model_dir, export_dir, quantization)
        found[f"ct2-{quantization}"] = exported_engine(export_dir, budget, opts)
    return found


def exported_engine(export_dir: str, budget: int, opts):
    loaded = {}  # one Translator per thread count: CTranslate2 fixes its threads when it loads

    def run(sentences, threads, max_new_tokens):
        if threads not in loaded:
            loaded[threads] = ExportedModel(export_dir, device=opts.device, num_threads=threads)
        return translate_with_export(sentences, loaded[threads], max_batch_tokens=budget, num_beams=opts.num_beams,
                                     max_new_tokens=max_new_tokens)

    return run


def measure(found: dict, sources: list[str], max_new_tokens: int, opts) -> dict:
    """``{(engine, threads): {"sentences_per_s": [per round], "hypotheses": [...]}}``."""
    cells = [(name, threads) for threads in opts.thread_counts for name in found]
    results = {cell: {"sentences_per_s": [], "hypotheses": None} for cell in cells}
    for name, threads in cells:
        found[name](sources[: opts.batch_size], threads, max_new_tokens)  # warm-up: loads, allocates
    for round_index in range(opts.rounds):
        for name, threads in cells if round_index % 2 == 0 else reversed(cells):
            if opts.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            hypotheses = found[name](sources, threads, max_new_tokens)
            if opts.device == "cuda":
                torch.cuda.synchronize()
            results[(name, threads)]["sentences_per_s"].append(len(sources) / (time.perf_counter() - start))
            results[(name, threads)]["hypotheses"] = hypotheses
    return results


# ---- report ---------------------------------------------------------------------------------------------


def table(title: str, results: dict, references: list[str] | None) -> list[dict]:
    """Print one model's rows; chrF only with ``references``."""
    print(f"\n{title}\n")
    print(f"{'engine':<17} {'threads':>7} {'sentences/s':>12} {'vs pytorch':>11} {'chrF':>6} {'chrF - pytorch':>15}")
    rows = []
    for (name, threads), cell in results.items():
        speed = statistics.median(cell["sentences_per_s"])
        reference_speed = statistics.median(results[("pytorch", threads)]["sentences_per_s"])
        row = {"engine": name, "threads": threads, "sentences_per_s": speed, "ratio": speed / reference_speed,
               "sentences_per_s_per_round": cell["sentences_per_s"]}
        chrf = delta = "-"
        if references is not None:
            row["chrf"] = score_translations(cell["hypotheses"], references)["chrf"]
            pytorch_chrf = score_translations(results[("pytorch", threads)]["hypotheses"], references)["chrf"]
            row["chrf_delta"] = row["chrf"] - pytorch_chrf
            chrf, delta = f"{row['chrf']:.2f}", f"{row['chrf_delta']:+.2f}"
        print(f"{name:<17} {threads if threads else '-':>7} {speed:>12,.1f} {row['ratio']:>10.2f}x {chrf:>6} {delta:>15}")
        rows.append(row)
    return rows


def target_line(rows: list[dict], opts) -> tuple[str, bool]:
    """Is int8 >= 4x PyTorch with chrF within 0.5, at every thread count?"""
    int8 = f"ct2-{QUANTIZATIONS[opts.device][1]}"
    checks = [(r["threads"], r["ratio"], r.get("chrf_delta")) for r in rows if r["engine"] == int8]
    met = all(ratio >= 4 and abs(delta) <= 0.5 for _, ratio, delta in checks)
    shown = ", ".join(f"{t} thread(s): {ratio:.2f}x, chrF {delta:+.2f}" for t, ratio, delta in checks)
    return f"{int8} vs pytorch: {shown} (target: >= 4x with chrF within 0.5): {'met' if met else 'NOT met'}", met


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts to run every engine with, comma-separated")
    parser.add_argument("--model", help="trained model folder (default: the numbers demo's cached base)")
    parser.add_argument("--test", help="SOURCE,REFERENCE text files (default: the demo's held-out cardinals)")
    parser.add_argument("--sentences", type=int, default=500, help="sentences of the test set to translate")
    parser.add_argument("--opus_sentences", type=int, default=100, help="sentences for the opus-mt-sized Marian")
    parser.add_argument("--opus_max_new_tokens", type=int, default=32,
                        help="new tokens per sentence of the opus-mt-sized Marian (random: it runs to the limit)")
    parser.add_argument("--skip_opus", action="store_true", help="do not time the opus-mt-sized Marian")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_beams", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    opts = parser.parse_args(argv)
    for flag in ("sentences", "opus_sentences", "opus_max_new_tokens", "batch_size", "num_beams", "max_new_tokens",
                 "rounds"):
        if getattr(opts, flag) < 1:
            parser.error(f"--{flag} {getattr(opts, flag)}: accepted: an integer >= 1")
    try:
        opts.thread_counts = [int(t) for t in opts.threads.split(",")]
    except ValueError:
        parser.error(f"--threads {opts.threads!r}: accepted: comma-separated integers >= 1, e.g. 1,2")
    if min(opts.thread_counts) < 1:
        parser.error(f"--threads {opts.threads!r}: accepted: comma-separated integers >= 1, e.g. 1,2")
    if opts.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible")
        opts.thread_counts = [0]  # on CUDA the thread count is not a setting; 0 lets CTranslate2 choose
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    hf_logging.set_verbosity_error()
    load_before = os.getloadavg()
    model_dir = opts.model or demo_base_dir()
    sources, references = (file_test_set(opts.test, opts.sentences) if opts.test
                           else numbers_test_set(opts.sentences))
    device = (torch.cuda.get_device_name() if opts.device == "cuda"
              else f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores")
    summary = {"device": device, "num_beams": opts.num_beams, "batch_size": opts.batch_size, "models": {}}
    with tempfile.TemporaryDirectory() as scratch:
        _, tokenizer = load_translation_model(model_dir)
        opts.mean_source_tokens = sum(len(ids) for ids in tokenizer(sources)["input_ids"]) / len(sources)
        trained = measure(engines(model_dir, os.path.join(scratch, "trained"), opts), sources, opts.max_new_tokens, opts)
        title = (f"{model_dir} (trained): {len(sources)} sentences, beam {opts.num_beams}, "
                 f"max_new_tokens {opts.max_new_tokens}, median of {opts.rounds} rounds")
        summary["models"]["trained"] = table(title, trained, references)
        if not opts.skip_opus:
            opus_sources = (sources * -(-opts.opus_sentences // len(sources)))[: opts.opus_sentences]
            opus_dir = opus_sized_marian(os.path.join(scratch, "opus"), sources)
            opus = measure(engines(opus_dir, os.path.join(scratch, "opus-ct2"), opts), opus_sources,
                           opts.opus_max_new_tokens, opts)
            shape = OPUS_SHAPE
            title = (f"opus-mt-sized Marian (random init, vocabulary {shape['vocab_size']:,}, {shape['layers']}+"
                     f"{shape['layers']} layers, d_model {shape['d_model']}, ffn {shape['ffn_dim']}; speed only): "
                     f"{len(opus_sources)} sentences, beam {opts.num_beams}, "
                     f"{opts.opus_max_new_tokens} new tokens each, median of {opts.rounds} rounds")
            summary["models"]["opus_sized"] = table(title, opus, None)
    line, met = target_line(summary["models"]["trained"], opts)
    load_after = os.getloadavg()
    print(f"\n{line}")
    print(f"{device}, torch {torch.__version__}, ctranslate2 {ctranslate2_version()}; load average (1, 5, 15 min) "
          f"before {' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}")
    summary.update(target_met=met, load_before=load_before, load_after=load_after)
    if opts.json:
        with atomic_path(opts.json) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    return summary


def ctranslate2_version() -> str:
    import ctranslate2

    return ctranslate2.__version__


if __name__ == "__main__":
    main()
