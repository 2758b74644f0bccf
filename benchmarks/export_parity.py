"""How often a CTranslate2 export translates exactly as PyTorch does, per quantization, beam size and patience.

PyTorch translates with ``hf_l2mt.evaluation.translate.translate``; each export (``hf-l2mt export``'s
converter, ``hf_l2mt.apps.export.convert.convert``) with ``hf_l2mt.evaluation.ctranslate2_engine``'s options
(``decoding_options``), CTranslate2's ``patience`` set to each of ``--patience`` for beam search. Printed:
the identical lines out of all, and CTranslate2's time, per setting; one thread each.

Sentences: the English cardinals 1..``--cardinals`` in words (num2words), and, with ``--report_dir``, the
held-out sets that a run's ``forgetting_report.json`` keeps (what ``hf-l2mt export`` probes by default).

    python -m benchmarks.export_parity --model /tmp/demo --report_dir /tmp/demo
"""

import argparse
import contextlib
import json
import os
import tempfile
import time

import torch
from num2words import num2words

from hf_l2mt.apps.export.convert import convert
from hf_l2mt.apps.export.probe import probe_from_run
from hf_l2mt.core.generation_length import capped_model_new_tokens
from hf_l2mt.evaluation import ctranslate2_options
from hf_l2mt.evaluation.ctranslate2_engine import ExportedModel, translate_with_export
from hf_l2mt.evaluation.translate import load_translation_model, translate


def sentence_sets(cardinals: int, report_dir: str | None) -> dict[str, list[str]]:
    sets = {f"cardinals 1..{cardinals}": [num2words(number, lang="en") for number in range(1, cardinals + 1)]}
    if report_dir is not None:
        sets["probe"] = probe_from_run(report_dir).sources
    return sets


@contextlib.contextmanager
def patience_of(value: float):
    """``UNHURRIED_PATIENCE`` set to ``value`` while the block runs (``decoding_options`` reads it at each call)."""
    saved = ctranslate2_options.UNHURRIED_PATIENCE
    ctranslate2_options.UNHURRIED_PATIENCE = value
    try:
        yield
    finally:
        ctranslate2_options.UNHURRIED_PATIENCE = saved


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder with its tokenizer")
    parser.add_argument("--report_dir", help="a run folder whose forgetting_report.json keeps its held-out sets")
    parser.add_argument("--cardinals", type=int, default=1000)
    parser.add_argument("--quantizations", default="float32,int8")
    parser.add_argument("--num_beams", default="1,4")
    parser.add_argument("--patience", default=f"1,{ctranslate2_options.UNHURRIED_PATIENCE:g}")
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--json", help="where the rows go as JSON")
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    opts = parse_args(argv)
    torch.set_num_threads(1)
    model, tokenizer = load_translation_model(opts.model)
    max_new_tokens = capped_model_new_tokens(model, opts.max_new_tokens)
    sets = sentence_sets(opts.cardinals, opts.report_dir)
    beams = [int(value) for value in opts.num_beams.split(",")]
    patiences = [float(value) for value in opts.patience.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        exports = {}
        for quantization in opts.quantizations.split(","):
            convert(opts.model, os.path.join(scratch, quantization), quantization)
            exports[quantization] = ExportedModel(os.path.join(scratch, quantization), num_threads=1)
        for set_name, sources in sets.items():
            for num_beams in beams:
                pytorch = translate(sources, model, tokenizer, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                    progress=False)
                for quantization, exported in exports.items():
                    for patience in patiences if num_beams > 1 else patiences[:1]:
                        with patience_of(patience):
                            start = time.perf_counter()
                            exported_lines = translate_with_export(sources, exported, num_beams=num_beams,
                                                                   max_new_tokens=max_new_tokens)
                            seconds = time.perf_counter() - start
                        same = sum(a == b for a, b in zip(exported_lines, pytorch))
                        rows.append({"sentences": set_name, "count": len(sources), "quantization": quantization,
                                     "num_beams": num_beams, "patience": patience if num_beams > 1 else None,
                                     "identical": same, "ctranslate2_seconds": seconds})
    print(f"{opts.model}: max_new_tokens {max_new_tokens}, one thread")
    print(f"{'sentences':<20} {'export':<8} {'beams':>5} {'patience':>8} {'identical':>14} {'seconds':>8}")
    for row in rows:
        patience = "-" if row["patience"] is None else f"{row['patience']:g}"
        share = f"{row['identical']}/{row['count']}"
        print(f"{row['sentences']:<20} {row['quantization']:<8} {row['num_beams']:>5} {patience:>8} {share:>14} "
              f"{row['ctranslate2_seconds']:>8.2f}")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    return rows


if __name__ == "__main__":
    main()
