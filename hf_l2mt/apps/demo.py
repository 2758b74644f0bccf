"""Catastrophic forgetting in miniature, and what L2-SP does about it: English → German number words.

    python -m hf_l2mt.apps.demo                                # the full run: about 6 minutes on 2 CPU cores
    python -m hf_l2mt.apps.demo --l2sp_lambdas 0.3 3           # other strengths: about a minute, the base is cached
    python -m hf_l2mt.apps.demo --tiny --output_dir /tmp/demo  # an end-to-end check in seconds

1. data: cardinals ("four hundred and seventy-two" → "vierhundertzweiundsiebzig") are the general
   domain, years ("nineteen eighty-four" → "neunzehnhundertvierundachtzig") the new one; each has a
   held-out test set of numbers never trained on;
2. a SentencePiece tokenizer trained on the cardinals, saved as a MarianTokenizer;
3. a 0.7M-parameter Marian model "pretrained" on cardinals (cached: a second run reuses it);
4. copies of it fine-tuned on years only, once per L2-SP strength λ (λ = 0: plain fine-tuning);
5. every model scored on both test sets; the best-balanced fine-tuned model is saved to --output_dir.
``docs/demo.md`` explains the task and shows a run.
"""

import copy
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from importlib.metadata import version

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    GenerationConfig,
    HfArgumentParser,
    MarianConfig,
    MarianMTModel,
    Seq2SeqTrainer,
    set_seed,
)

from ..core.trainer import L2MTTrainer
from ..core.training_args import L2MTTrainingArguments
from ..evaluation.metrics import make_compute_metrics, save_scores
from ..evaluation.translate import translate
from .numbers_task import numbers_splits
from .spm_tokenizer import load_marian_tokenizer, train_marian_tokenizer

GENERAL_DOMAIN = "cardinal"
NEW_DOMAINS = ("year", "ordinal")
RESULTS_FILE = "demo_results.json"
CACHE_FORMAT = 1  # bump when the cached base's recipe changes in a way the settings do not show

# One place for the defaults; a flag given on the command line wins over its preset.
PRESETS = {
    "full": dict(
        pretrain_steps=2_000,  # 2,000 updates * 64 pairs = 128,000 pairs seen, 2.5 passes over train_size
        finetune_steps=200,  # 200 * 64 = 12,800 pairs, 28 passes over the new domain: enough to forget
        train_size=50_000,
        finetune_train_size=450,  # of the 990 years that do not read as cardinals, 500 are held out
        test_size=500,
        l2sp_lambdas=[0.0, 0.1, 1.0, 10.0],
        vocab_size=400,
        model=dict(d_model=128, layers=2, heads=4, ffn_dim=256),  # 0.71M parameters
    ),
    "tiny": dict(
        pretrain_steps=30,
        finetune_steps=6,
        train_size=300,
        finetune_train_size=40,
        test_size=12,
        l2sp_lambdas=[0.0, 10.0],
        vocab_size=120,
        model=dict(d_model=16, layers=1, heads=2, ffn_dim=32),
    ),
}
LEARNING_RATE = 1e-3
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 250
TOKENIZER_PAIRS = 5_000  # every word of the cardinals occurs in far fewer; more only slows SentencePiece down
MAX_LENGTH = 64  # tokens; the longest pairs of the three domains have 24 source and 11 target tokens
EXAMPLES_PER_DOMAIN = 2
SCORES = ("exact_match", "chrf", "bleu")


def _preset_help(name: str) -> str:
    def show(value) -> str:
        return " ".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:,}"

    return f"; unset: {show(PRESETS['full'][name])}, with --tiny: {show(PRESETS['tiny'][name])}."


class OutputDirError(ValueError):
    """--output_dir holds something that is not a previous demo output."""


@dataclass
class DemoArguments:
    """Flags of ``python -m hf_l2mt.apps.demo``; unset ones take the value of the preset (full or --tiny)."""

    output_dir: str = field(
        default=os.path.join("outputs", "numbers_demo"),
        metadata={"help": "Where the best-balanced fine-tuned model, its tokenizer and demo_results.json go."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace --output_dir even if it is not a previous demo output."}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where pretrained bases are cached, one folder per settings hash; unset: ~/.cache/hf_l2mt."},
    )
    new_domain: str = field(
        default="year", metadata={"help": f"The domain to adapt to: one of {', '.join(NEW_DOMAINS)}."}
    )
    pretrain_steps: int | None = field(
        default=None, metadata={"help": "Updates on cardinals" + _preset_help("pretrain_steps")}
    )
    finetune_steps: int | None = field(
        default=None, metadata={"help": "Updates on the new domain, per lambda" + _preset_help("finetune_steps")}
    )
    l2sp_lambdas: list[float] | None = field(
        default=None,
        metadata={"help": "L2-SP strengths to fine-tune with, one run each" + _preset_help("l2sp_lambdas"),
                  "nargs": "+"},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data split, the initialisation and the batches."})
    train_size: int | None = field(
        default=None, metadata={"help": "Cardinal training pairs" + _preset_help("train_size")}
    )
    finetune_train_size: int | None = field(
        default=None,
        metadata={"help": "New-domain training pairs" + _preset_help("finetune_train_size")},
    )
    test_size: int | None = field(
        default=None, metadata={"help": "Held-out pairs per domain" + _preset_help("test_size")}
    )
    num_threads: int = field(
        default=1,
        metadata={"help": "CPU threads for torch. With two, this small model trained several times slower than with "
        "one on a 2-core machine that other processes shared; raise it on cores of your own."},
    )
    tiny: bool = field(
        default=False, metadata={"help": "A tiny model, few steps and small sets: an end-to-end check in seconds."}
    )

    def __post_init__(self):
        preset = PRESETS["tiny" if self.tiny else "full"]
        for name in ("pretrain_steps", "finetune_steps", "train_size", "finetune_train_size", "test_size"):
            value = preset[name] if getattr(self, name) is None else getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name}: got {value!r}; accepted: an integer >= 1")
            setattr(self, name, value)
        self.l2sp_lambdas = list(preset["l2sp_lambdas"] if self.l2sp_lambdas is None else self.l2sp_lambdas)
        for value in self.l2sp_lambdas:
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--l2sp_lambdas: got {value!r}; accepted: finite numbers >= 0")
        if len(set(self.l2sp_lambdas)) != len(self.l2sp_lambdas):
            raise ValueError(f"--l2sp_lambdas: got {self.l2sp_lambdas}; accepted: distinct values")
        if self.num_threads < 1:
            raise ValueError(f"--num_threads: got {self.num_threads!r}; accepted: an integer >= 1")
        if self.new_domain not in NEW_DOMAINS:
            raise ValueError(f"--new_domain: got {self.new_domain!r}; accepted: {', '.join(NEW_DOMAINS)}")
        self.cache_dir = self.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "hf_l2mt")
        self.vocab_size = preset["vocab_size"]
        self.model = dict(preset["model"])


# ---- Steps ------------------------------------------------------------------------------------


def check_output_dir(args: DemoArguments) -> None:
    """Refuse to replace anything but an empty folder or a previous demo output, unless told to."""
    path = args.output_dir
    if not os.path.exists(path) or args.overwrite_output_dir:
        return
    if not os.path.isdir(path):
        raise OutputDirError(f"--output_dir: {path!r} is a file; give a folder path, or --overwrite_output_dir")
    if os.listdir(path) and not _is_demo_output(path):
        raise OutputDirError(
            f"--output_dir: {path!r} exists and is not a previous demo output (it has no {RESULTS_FILE} written by "
            "hf_l2mt.apps.demo); choose another folder, or pass --overwrite_output_dir to replace it"
        )


def _is_demo_output(path: str) -> bool:
    try:
        with open(os.path.join(path, RESULTS_FILE), encoding="utf-8") as handle:
            return json.load(handle).get("demo") == "hf_l2mt.apps.demo"
    except (OSError, ValueError, AttributeError):
        return False


def base_settings(args: DemoArguments) -> dict:
    """Everything the pretrained base depends on; its hash names the cache folder."""
    return {
        "cache_format": CACHE_FORMAT,
        "num2words": version("num2words"),
        "domain": GENERAL_DOMAIN,
        "train_size": args.train_size,
        "test_size": args.test_size,  # the training numbers are drawn after the held-out ones
        "seed": args.seed,
        "pretrain_steps": args.pretrain_steps,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "vocab_size": args.vocab_size,
        "model": args.model,
    }


def base_dir(args: DemoArguments) -> str:
    digest = hashlib.sha256(json.dumps(base_settings(args), sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(args.cache_dir, f"numbers_base-{digest}")


def model_config(tokenizer, spec: dict) -> MarianConfig:
    return MarianConfig(
        vocab_size=len(tokenizer),
        d_model=spec["d_model"],
        encoder_layers=spec["layers"],
        decoder_layers=spec["layers"],
        encoder_attention_heads=spec["heads"],
        decoder_attention_heads=spec["heads"],
        encoder_ffn_dim=spec["ffn_dim"],
        decoder_ffn_dim=spec["ffn_dim"],
        max_position_embeddings=MAX_LENGTH,
        dropout=0.1,
        # Token embeddings times sqrt(d_model), as in opus-mt's Marian configs; without it the tokens'
        # embeddings (std 0.02) are drowned by the sinusoidal positions and learning stalls for hundreds of steps.
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # Marian decoders start from <pad>
        forced_eos_token_id=tokenizer.eos_token_id,
    )


def new_model(tokenizer, spec: dict, seed: int) -> MarianMTModel:
    set_seed(seed)
    model = MarianMTModel(model_config(tokenizer, spec))
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bad_words_ids=[[tokenizer.pad_token_id]],
        max_length=MAX_LENGTH,
        num_beams=1,
    )
    return model


def tokenized(dataset, tokenizer):
    return dataset.map(
        lambda batch: tokenizer(batch["source"], text_target=batch["target"]),
        batched=True,
        remove_columns=dataset.column_names,
        desc="tokenizing",
    )


def training_args(scratch: str, steps: int, seed: int, **overrides) -> L2MTTrainingArguments:
    return L2MTTrainingArguments(
        output_dir=scratch,
        max_steps=steps,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        optim="adamw_torch",
        logging_steps=max(1, steps // 5),
        save_strategy="no",
        report_to="none",
        seed=seed,
        predict_with_generate=True,
        generation_max_length=MAX_LENGTH,
        generation_num_beams=1,
        disable_tqdm=False,
        dataloader_pin_memory=False,  # batches of a few kilobytes: pinning gains nothing, and warns on CPU
        **overrides,
    )


def pretrain(args: DemoArguments, general_train) -> str:
    """Train the tokenizer and the base on cardinals into a temporary folder, then rename it into the cache."""
    target = base_dir(args)
    os.makedirs(args.cache_dir, exist_ok=True)
    work = fresh_dir(args.cache_dir, os.path.basename(target))
    try:
        sample = general_train.select(range(min(TOKENIZER_PAIRS, len(general_train))))
        texts = list(sample["source"]) + list(sample["target"])
        tokenizer = train_marian_tokenizer(texts, work, vocab_size=args.vocab_size)
        model = new_model(tokenizer, args.model, args.seed)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"  model: MarianMTModel, {trainable:,} trainable parameters, vocabulary {len(tokenizer)}")
        with tempfile.TemporaryDirectory() as scratch:
            trainer = L2MTTrainer(
                model=model,
                args=training_args(scratch, args.pretrain_steps, args.seed, lr_scheduler_type="linear",
                                   warmup_steps=max(1, args.pretrain_steps // 20)),
                train_dataset=tokenized(general_train, tokenizer),
                data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            )
            trainer.train()
        model.save_pretrained(work)
        with open(os.path.join(work, "base_settings.json"), "w", encoding="utf-8") as handle:
            json.dump(base_settings(args), handle, indent=2)
        try:
            os.rename(work, target)
        except OSError:
            if not os.path.isdir(target):  # else another run cached the same base meanwhile: keep theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def finetune(base, tokenizer, train, lam: float, args: DemoArguments):
    model = copy.deepcopy(base)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = L2MTTrainer(
            model=model,
            args=training_args(scratch, args.finetune_steps, args.seed, lr_scheduler_type="constant", l2sp_lambda=lam),
            train_dataset=train,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        )
        trainer.train()
    return model


def evaluate(model, tokenizer, eval_sets: dict, seed: int) -> dict[str, float]:
    """``Seq2SeqTrainer.evaluate`` with generation on every set: ``eval_<set>_exact_match``, ``..._chrf``, ..."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Seq2SeqTrainer(
            model=model,
            args=training_args(scratch, 1, seed),
            eval_dataset=eval_sets,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            compute_metrics=make_compute_metrics(tokenizer),
        )
        return trainer.evaluate()


# ---- Report -----------------------------------------------------------------------------------


def format_table(rows: list[dict], sets: list[str]) -> str:
    header = ["model"] + [f"{s} {m}" for s in sets for m in ("exact", "chrF")]
    lines = [[r["model"]] + [f"{r[f'{s}_{m}']:.1f}" for s in sets for m in ("exact_match", "chrf")] for r in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *lines])


BLEU_NOTE = (
    "BLEU is not the headline here: each German output is one compound word, so no hypothesis has a 2-gram\n"
    "and sacreBLEU's corpus BLEU is 0.0 even for perfect translations. Exact match (the whole number right)\n"
    "and chrF (character n-grams, partial credit for 'neunzehnhundert...') measure what matters."
)


def fresh_dir(parent: str, name: str) -> str:
    """A new hidden folder in ``parent`` (unlike ``mkdtemp``, with the umask's permissions, as it is kept)."""
    path = os.path.join(parent, f".{name}-{uuid.uuid4().hex[:8]}")
    os.makedirs(path)
    return path


def save_output(args: DemoArguments, model, tokenizer, results: dict) -> None:
    """Write model, tokenizer and results to a temporary folder, then swap it in for --output_dir."""
    parent = os.path.dirname(os.path.abspath(args.output_dir))
    os.makedirs(parent, exist_ok=True)
    work = fresh_dir(parent, "numbers_demo")
    try:
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        save_scores(results, os.path.join(work, RESULTS_FILE))
        old = None
        if os.path.lexists(args.output_dir):
            old = fresh_dir(parent, "numbers_demo-previous")
            os.replace(args.output_dir, os.path.join(old, "previous"))
        os.replace(work, args.output_dir)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser(DemoArguments, prog="python -m hf_l2mt.apps.demo", description=__doc__.splitlines()[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    check_output_dir(args)
    torch.set_num_threads(args.num_threads)
    clock = Stopwatch()
    general_set, new_set = f"{GENERAL_DOMAIN}s", f"{args.new_domain}s"

    print(f"[1/5] data: {general_set} (general domain) and {new_set} (new domain), English -> German")
    cached = os.path.isdir(base_dir(args))
    # The held-out numbers are drawn first, so a cached base needs no training pairs rebuilt.
    general = numbers_splits(GENERAL_DOMAIN, train_size=0 if cached else args.train_size,
                             heldout_size=args.test_size, seed=args.seed)
    new = numbers_splits(args.new_domain, train_size=args.finetune_train_size, heldout_size=args.test_size,
                         seed=args.seed, distinct_from=GENERAL_DOMAIN)
    for name, splits in ((general_set, general), (new_set, new)):
        example = splits["test"][0]
        print(f"  {name}: {len(splits['train']):,} train, {len(splits['test']):,} held out; "
              f"e.g. {example['source']!r} -> {example['target']!r}")
    clock.lap("data")

    print(f"[2/5] tokenizer and [3/5] base model: {base_dir(args)}")
    if cached:
        print("  reusing the cached tokenizer and base model (delete that folder to pretrain again)")
    else:
        print(f"  training a SentencePiece tokenizer on the {general_set}, then pretraining for "
              f"{args.pretrain_steps:,} steps (batch {BATCH_SIZE}, AdamW lr {LEARNING_RATE:g}, no regularization)")
        pretrain(args, general["train"])
    clock.lap("pretrain")
    tokenizer = load_marian_tokenizer(base_dir(args))
    base = MarianMTModel.from_pretrained(base_dir(args))
    eval_sets = {general_set: tokenized(general["test"], tokenizer), new_set: tokenized(new["test"], tokenizer)}
    new_train = tokenized(new["train"], tokenizer)

    print(f"[4/5] fine-tuning copies of the base on {new_set} only: {args.finetune_steps:,} steps each, "
          f"lr {LEARNING_RATE:g}, one run per L2-SP lambda in {' '.join(f'{v:g}' for v in args.l2sp_lambdas)}")
    runs = [("base", None, base)]
    for lam in args.l2sp_lambdas:
        print(f"  l2sp_lambda = {lam:g}")
        runs.append((f"lambda={lam:g}", lam, finetune(base, tokenizer, new_train, lam, args)))
    clock.lap("finetune")

    print("[5/5] scoring every model on both held-out sets (greedy decoding)")
    rows = []
    for name, lam, model in runs:
        metrics = evaluate(model, tokenizer, eval_sets, args.seed)
        scores = {f"{s}_{m}": metrics[f"eval_{s}_{m}"] for s in (general_set, new_set) for m in SCORES}
        rows.append({"model": name, "l2sp_lambda": lam, **scores})
    examples = held_out_examples(runs, tokenizer, general["test"], new["test"])
    clock.lap("evaluate")

    # Best balance: the fine-tuned model with the highest mean exact match over the two domains.
    best = max(rows[1:], key=lambda r: r[f"{general_set}_exact_match"] + r[f"{new_set}_exact_match"])
    results = {
        "demo": "hf_l2mt.apps.demo",
        "command": " ".join(["python -m hf_l2mt.apps.demo", *(sys.argv[1:] if argv is None else argv)]),
        "base_from_cache": cached,
        "base_dir": base_dir(args),
        "best_balanced": best["model"],
        "rows": rows,
        "examples": examples,
        "settings": {**asdict(args), "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE},
        "timings_s": {**clock.laps, "total": clock.total()},
    }
    best_model = next(model for name, _, model in runs if name == best["model"])
    save_output(args, best_model, tokenizer, results)

    print()
    print(format_table(rows, [general_set, new_set]))
    print()
    print_examples(examples)
    print()
    print(BLEU_NOTE)
    print(f"\nBest balance (highest mean exact match): {best['model']}; saved with its tokenizer to "
          f"{args.output_dir}, scores in {RESULTS_FILE} there.")
    print("Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in results["timings_s"].items()))
    return results


class Stopwatch:
    """Seconds spent in each named step, in order."""

    def __init__(self):
        self.start = self.last = time.time()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.time()
        self.laps[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return round(time.time() - self.start, 1)


def held_out_examples(runs, tokenizer, *tests) -> list[dict]:
    """The first few held-out pairs of each domain and every model's translation of them."""
    chosen = [row for test in tests for row in test.select(range(min(EXAMPLES_PER_DOMAIN, len(test))))]
    sources = [row["source"] for row in chosen]
    outputs = {name: translate(sources, model, tokenizer, num_beams=1, progress=False) for name, _, model in runs}
    return [
        {"source": row["source"], "reference": row["target"], "outputs": {n: o[i] for n, o in outputs.items()}}
        for i, row in enumerate(chosen)
    ]


def print_examples(examples: list[dict]) -> None:
    print("Held-out examples (* = exact):")
    for example in examples:
        print(f"  {example['source']}  ->  {example['reference']}")
        width = max(map(len, example["outputs"]))
        for name, output in example["outputs"].items():
            print(f"    {name:<{width}}  {output}{' *' if output == example['reference'] else ''}")


if __name__ == "__main__":
    main()
