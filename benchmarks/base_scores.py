"""How good is a cached base? Its held-out scores before any adaptation, and a few of its translations.

Translates the held-out general and in-domain pairs of a forgetting-study task (greedy, as the study
does) with the latest base in ``--cache_dir`` and prints, per set, exact match, chrF and BLEU
(sacreBLEU, with signatures in the JSON), the placeholder accuracy when the sources have
placeholders (next to the references' own, the ceiling), and ``--examples`` translations taken at
even intervals through the set. The base may still be pretraining in the background: the model is
read once, and its update count and training time are printed with the scores.

    python -m benchmarks.base_scores --task gettext --domain postgresql --threads 1 \\
        --json outputs/gettext_base_scores.json
"""

import argparse
import json
import os

import torch
from transformers import MarianMTModel, MarianTokenizer
from transformers.utils import logging as hf_logging

from benchmarks import domain_adaptation
from benchmarks.pretrain_base import read_progress
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.evaluation.placeholders import any_placeholder, placeholder_accuracy
from hf_l2mt.evaluation.translate import translate

METRICS = ("exact_match", "chrf", "bleu")


def spread(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``: examples that nobody picked by hand."""
    return sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(min(count, total))})


def score_set(model, tokenizer, sources: list[str], references: list[str], max_length: int, examples: int) -> dict:
    hypotheses = translate(sources, model, tokenizer, batch_size=64, num_beams=1, max_new_tokens=max_length,
                           progress=False)
    scores = score_translations(hypotheses, references)
    result = {**{metric: scores[metric] for metric in METRICS}, "sentences": len(sources),
              "signatures": scores["signatures"]}
    if any_placeholder(sources):
        model_kept, references_kept = placeholder_accuracy(sources, hypotheses), placeholder_accuracy(sources, references)
        result["placeholders"] = {name: {key: found[key] for key in ("correct", "sentences_with_placeholder", "accuracy")}
                                  for name, found in (("model", model_kept), ("references", references_kept))}
    result["examples"] = [{"source": sources[i], "reference": references[i], "translation": hypotheses[i]}
                          for i in spread(examples, len(sources))]
    result["translations"] = hypotheses
    return result


def load_base(cache_dir: str):
    """The latest base in ``cache_dir`` and the progress it was saved with.

    Pretraining may save while this reads (the base first, then ``progress.json``): the progress is
    read before and after the model, and the model read again until both agree.
    """
    base_dir = os.path.join(cache_dir, "base")
    if not os.path.isfile(os.path.join(base_dir, "config.json")):
        raise FileNotFoundError(f"--cache_dir {cache_dir}: no base yet ({base_dir}); pretrain one first "
                                "(python -m benchmarks.domain_adaptation --stage pretrain ...)")
    while True:
        progress = read_progress(cache_dir)
        model = MarianMTModel.from_pretrained(base_dir).eval()
        tokenizer = MarianTokenizer.from_pretrained(base_dir)
        if read_progress(cache_dir) == progress:
            return model, tokenizer, progress


def markdown(result: dict) -> str:
    progress = result["base_progress"]
    header = (f"base: {progress['steps']:,} updates, {progress['train_seconds'] / 60:.0f} minutes of training, "
              f"last training loss {progress.get('last_loss')}")
    lines = [header, "",
             "| held-out set | sentences | exact match | chrF | BLEU | placeholders kept (model) | (references) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in result["sets"].items():
        kept = row.get("placeholders")
        cells = ["", ""] if kept is None else [
            f"{kept[who]['correct']} / {kept[who]['sentences_with_placeholder']} ({100 * kept[who]['accuracy']:.1f} %)"
            for who in ("model", "references")]
        lines.append(f"| {name} | {row['sentences']} | {row['exact_match']:.1f} | {row['chrf']:.1f} | {row['bleu']:.1f} "
                     f"| {cells[0]} | {cells[1]} |")
    for name, row in result["sets"].items():
        lines += ["", f"{name}:", ""]
        for example in row["examples"]:
            lines += [f"- source: {example['source']}", f"  reference: {example['reference']}",
                      f"  base: {example['translation']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(domain_adaptation.DEFAULTS), default="gettext")
    parser.add_argument("--domain", help="as in benchmarks.domain_adaptation (gettext: the held-out package family)")
    parser.add_argument("--tag", default="med.", help="ding: the subject tag of the in-domain set")
    parser.add_argument("--cache_dir", help="the base's cache (default: ~/.cache/hf_l2mt/<task>_base)")
    parser.add_argument("--gettext_cache", help="gettext: where the Debian packages are (default: ~/.cache/hf_l2mt/gettext)")
    parser.add_argument("--heldout", type=int, help="held-out pairs per set (default: the study's)")
    parser.add_argument("--examples", type=int, default=6, help="translations shown per set")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the result here")
    opts = parser.parse_args(argv)
    study_args = ["--task", opts.task, "--tag", opts.tag]
    for flag in ("domain", "cache_dir", "gettext_cache", "heldout"):
        if getattr(opts, flag) is not None:
            study_args += [f"--{flag}", str(getattr(opts, flag))]
    study = domain_adaptation.parse_args(study_args)
    torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    model, tokenizer, progress = load_base(study.cache_dir)
    task = domain_adaptation.load_task(study)
    sets = {f"general ({task.general})": task.general_test, f"in-domain ({task.domain})": task.domain_test}
    result = {"task": opts.task, "domain": task.domain, "base_progress": progress, "sets": {
        name: score_set(model, tokenizer, dataset["source"], dataset["target"], study.max_length, opts.examples)
        for name, dataset in sets.items()}}
    if opts.json:
        os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
