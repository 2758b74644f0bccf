"""Forgetting under domain adaptation: how much general-domain quality each regularizer keeps.

A base model is pretrained on a general domain (``benchmarks/pretrain_base.py``, cached), then
fine-tuned on a new domain by every variant below, each with the same number of updates, learning
rate, batch size and data, for several seeds:

  plain           no regularization
  weight_decay    decoupled weight decay (AdamW), towards zero
  l2sp            L2-SP towards the base weights (the anchor), coupled, constant λ, over a λ grid
  l2sp_sigmoid    the same with RecAdam's sigmoid annealing of λ (strong early, fading out)
  l2sp_decoupled  decoupled L2-SP: θ ← θ − lr·λ(θ − θ₀) before each update, over its own λ grid
  ewc             L2-SP weighted by the base's diagonal Fisher on the general training pairs
                  (Thompson et al. 2019), estimated once per study, normalised by its mean
  kl              KL(p_base ‖ p_θ) per target token on the training batch (Khayrallah et al. 2018)
  l1_anchor       L1 to the base weights as a soft threshold after each update
  mixed           no regularizer; a share (default 20 %) of general-domain pairs is replayed
                  among the in-domain pairs (mixed fine-tuning, Chu et al. 2017)
  lora            LoRA adapters (one run per rank in --lora_ranks, alpha = 2r, the default target
                  modules), base frozen
  lora_l2sp       the same at rank --lora_l2sp_rank with L2-SP in the merged weights,
                  (λ/2)·Σ‖s·B·A‖², over its own λ grid
  average         checkpoint averaging: plain fine-tuning (and L2-SP at each λ of --average_l2sp_lambdas)
                  whose model is the mean of the weights after the last --average_last of every
                  --average_every updates (hf_l2mt.core.averaging, as ``hf-l2mt average`` computes it)

Every model translates held-out in-domain and held-out general pairs (greedy) and is scored with
exact match, chrF and BLEU (sacreBLEU); its translations are kept in ``runs.jsonl``. Each variant also
gets what it costs: trainable parameters, seconds per update, and its training state in MiB, counted
from the tensors after training (weights, gradients of the trainable ones, optimizer moments, anchor
and Fisher; activations are not counted, and on the CPU no allocator reports a peak). The goal checked: keep ≥ 80 % of what plain fine-tuning
loses on the general domain (general-domain loss relative to the base at most 20 % of plain's)
while staying within 5 % of plain's in-domain score, on ``--goal_metric``.

Outputs in ``--output_dir``: ``runs.jsonl`` (one line per fine-tuned model; a rerun skips the runs
already there), ``results.json``, ``results.md`` (the table), ``forgetting.png``, and per variant and
seed the forgetting report against the base with plain fine-tuning of the same seed as compared run
(``reports/<variant>_seed<N>.json``, and its terminal table in ``.txt``; ``hf_l2mt.evaluation.forgetting``:
paired bootstrap, the share recovered), summarised over seeds in the second table of ``results.md``.

    # numbers task: cardinals → years, 5 seeds (about 40 minutes on one core; --families to run fewer)
    python -m benchmarks.domain_adaptation --task numbers
    # Ding: base pretrained in the background first (see benchmarks/pretrain_base.py), then
    python -m benchmarks.domain_adaptation --task ding --tag med. --stage study
    # software strings (benchmarks/gettext_corpus.py): a base on every package but PostgreSQL's, then the study
    python -m benchmarks.domain_adaptation --task gettext --domain postgresql --stage pretrain --pretrain_minutes 600
    python -m benchmarks.domain_adaptation --task gettext --domain postgresql --stage study
"""

import argparse
import copy
import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
from datasets import concatenate_datasets
from transformers import MarianMTModel, MarianTokenizer, PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging

from benchmarks import forgetting_tasks as tasks
from benchmarks.plot_forgetting import plot_forgetting, result_front
from benchmarks.pretrain_base import pretrain_base, read_progress, write_json
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.core.averaging import average_state_dicts
from hf_l2mt.core.fisher import estimate_fisher, save_fisher
from hf_l2mt.data import make_data_collator, preprocess_pairs
from hf_l2mt.evaluation.forgetting import build_report, format_report, save_report
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.evaluation.significance import DEFAULT_SEED
from hf_l2mt.evaluation.translate import translate

logger = logging.getLogger("hf_l2mt")
METRICS = ("exact_match", "chrf", "bleu")
FAMILIES = ("plain", "weight_decay", "l2sp", "l2sp_sigmoid", "l2sp_decoupled", "ewc", "kl", "l1_anchor", "mixed", "lora",
            "lora_l2sp", "average")
# Per-task defaults; every one can be overridden on the command line.
DEFAULTS = {
    "numbers": dict(
        # cardinals 0..9,999: 9,000 to pretrain on, 300 held out; years: 600 to adapt to, 300 held out
        general_size=9000, general_high=9999, domain_size=600, heldout=300, vocab_size=400, max_length=48,
        # base: 3,000 updates x 64 pairs = 192,000 pairs, 21 passes, linear decay (about 7 minutes on one core)
        pretrain_steps=3000, pretrain_minutes=None, pretrain_batch_size=64, pretrain_lr=5e-4,
        pretrain_schedule="linear", pretrain_warmup=150,
        # fine-tuning: 200 updates x 32 pairs = 6,400 pairs, 11 passes over the years (about 15 s a run)
        steps=200, batch_size=32, learning_rate=5e-4, seeds=5,
        lambdas=[0.01, 0.03, 0.05, 0.07, 0.1, 1.0], sigmoid_lambdas=[1.0, 3.0, 10.0],
        decoupled_lambdas=[10.0, 30.0, 100.0],
        # EWC's F is divided by its mean, so λ is on L2-SP's scale; the Fisher is heavy-tailed (most
        # coordinates get F << 1), so the grid reaches higher. 1,000 general pairs / 32 = 32 backward passes.
        ewc_lambdas=[0.1, 1.0, 10.0], fisher_examples=1000,
        # KL is per target token like the task loss: λ_kl = 1 weighs it as much as the cross-entropy.
        kl_lambdas=[0.3, 1.0, 3.0],
        # L1 undoes moves smaller than lr·λ₁ per update; Adam moves a weight by about lr, so λ₁ = 1 freezes it.
        l1_lambdas=[0.03, 0.1, 0.3],
        # the merged-weight penalty is on ‖ΔW‖² like L2-SP's ‖θ − θ₀‖², but only over the adapted matrices
        lora_lambdas=[0.1, 1.0, 10.0], lora_ranks=[4, 16, 64], lora_l2sp_rank=16,
        # 5 weight snapshots 20 updates apart: the mean of the weights after updates 120, 140, ..., 200
        average_last=5, average_every=20, average_l2sp_lambdas=[0.1],
        goal_metric="exact_match",
    ),
    "ding": dict(
        # untagged entries (about 282,000 after cleaning) to pretrain on, 500 held out; one tag to adapt to
        general_size=None, general_high=None, domain_size=None, heldout=500, vocab_size=8000, max_length=64,
        # base: as long as it is given; constant learning rate after warm-up, so a budget can be extended.
        # lr 5e-4 after 500 warm-up updates collapsed the encoder (its output stopped depending on the
        # input, docs/benchmarks.md); 2e-4 after 1,000 keeps it reading the source.
        pretrain_steps=None, pretrain_minutes=600.0, pretrain_batch_size=64, pretrain_lr=2e-4,
        pretrain_schedule="constant_with_warmup", pretrain_warmup=1000,
        # fine-tuning: 600 updates x 32 pairs = 19,200 pairs, about 3 passes over the 6,600 med. pairs
        steps=600, batch_size=32, learning_rate=2e-4, seeds=3,
        lambdas=[0.01, 0.1, 1.0], sigmoid_lambdas=[1.0], decoupled_lambdas=[10.0, 100.0],
        ewc_lambdas=[1.0], fisher_examples=2000, kl_lambdas=[1.0], l1_lambdas=[0.1], lora_lambdas=[1.0],
        lora_ranks=[8, 32], lora_l2sp_rank=32, average_last=5, average_every=50, average_l2sp_lambdas=[0.1],
        goal_metric="chrf",
    ),
}
# Software strings of 20 Debian packages (56,412 pairs; 49,078 general training pairs with postgresql
# held out, 500 held out of each part): the Ding recipe as it is. Its base learning rate (2e-4 constant
# after 1,000 warm-up updates) kept that encoder reading its source; its fine-tuning, 600 updates x 32
# pairs = 19,200 pairs, is 3 passes over postgresql's 6,334 training pairs.
DEFAULTS["gettext"] = {**DEFAULTS["ding"]}
SHAPES = {"numbers": tasks.NUMBERS_SHAPE, "ding": tasks.DING_SHAPE, "gettext": tasks.GETTEXT_SHAPE}
DOMAINS = {"numbers": ("year", "ordinal")}  # gettext: a package family of benchmarks.gettext_corpus


@dataclass
class Variant:
    family: str
    strength: float | None = None  # λ for the L2-SP families, the weight decay, or the replayed share
    arguments: dict = field(default_factory=dict)
    replay: float = 0.0
    average: tuple[int, int] | None = None  # (snapshots averaged, updates between them)

    @property
    def name(self) -> str:
        rank = f" r{self.arguments['lora_r']}" if "lora_r" in self.arguments else ""
        if self.family == "average":
            return "average" + ("" if self.strength is None else f" l2sp {self.strength:g}")
        return self.family + rank + ("" if self.strength is None else f" {self.strength:g}")


def make_variants(opts) -> list[Variant]:
    variants = [Variant("plain"), Variant("weight_decay", opts.weight_decay, {"weight_decay": opts.weight_decay})]
    variants += [Variant("l2sp", lam, {"l2sp_lambda": lam}) for lam in opts.lambdas]
    variants += [Variant("l2sp_sigmoid", lam, {"l2sp_lambda": lam, "l2sp_schedule": "sigmoid"})
                 for lam in opts.sigmoid_lambdas]
    variants += [Variant("l2sp_decoupled", lam, {"l2sp_lambda": lam, "l2sp_mode": "decoupled"})
                 for lam in opts.decoupled_lambdas]
    variants += [Variant("ewc", lam, {"l2sp_lambda": lam})  # the Fisher path is added by fine_tune
                 for lam in opts.ewc_lambdas]
    variants += [Variant("kl", lam, {"kl_lambda": lam}) for lam in opts.kl_lambdas]
    variants += [Variant("l1_anchor", lam, {"l1_lambda": lam, "l1_target": "anchor"}) for lam in opts.l1_lambdas]
    variants.append(Variant("mixed", opts.replay, replay=opts.replay))
    variants += [Variant("lora", None, lora_arguments(rank)) for rank in opts.lora_ranks]
    variants += [Variant("lora_l2sp", lam, {**lora_arguments(opts.lora_l2sp_rank), "lora_l2sp_lambda": lam})
                 for lam in opts.lora_lambdas]
    average = (opts.average_last, opts.average_every)
    variants.append(Variant("average", None, average=average))
    variants += [Variant("average", lam, {"l2sp_lambda": lam}, average=average) for lam in opts.average_l2sp_lambdas]
    return [v for v in variants if v.family in opts.families]


def lora_arguments(rank: int) -> dict:
    return {"adapter": "lora", "lora_r": rank, "lora_alpha": 2.0 * rank}


def base_fisher(base: MarianMTModel, tokenizer, general, opts, base_steps: int) -> str:
    """The base's diagonal Fisher on the first ``fisher_examples`` general training pairs, computed once
    per base (its update count is in the file name)."""
    path = os.path.join(opts.output_dir, f"fisher_base{base_steps}_{opts.fisher_examples}.safetensors")
    if not os.path.isfile(path):
        pairs = general.select(range(min(opts.fisher_examples, len(general))))
        loader = torch.utils.data.DataLoader(pairs, batch_size=opts.batch_size,
                                             collate_fn=make_data_collator(tokenizer, base))
        save_fisher(estimate_fisher(copy.deepcopy(base), loader), path,
                    metadata={"examples": len(pairs), "batch_size": opts.batch_size, "base_steps": base_steps})
    return path


def load_task(opts) -> tasks.Task:
    if opts.task == "numbers":
        return tasks.numbers_task(opts.domain, general_size=opts.general_size, domain_size=opts.domain_size,
                                  heldout=opts.heldout, general_high=opts.general_high)
    if opts.task == "gettext":
        return tasks.gettext_task(opts.domain, heldout=opts.heldout, cache_dir=opts.gettext_cache,
                                  domain_size=opts.domain_size, corpus_dir=opts.gettext_corpus)
    return tasks.ding_task(opts.tag, heldout=opts.heldout, path=opts.ding_path, domain_size=opts.domain_size)


def tokenized(dataset, tokenizer, opts, config):
    return preprocess_pairs(dataset, tokenizer, tasks.SRC_LANG, tasks.TGT_LANG, opts.max_length, opts.max_length,
                            model_config=config)


def evaluate(model, tokenizer, task: tasks.Task, opts) -> tuple[dict, dict]:
    """Exact match, chrF and BLEU on the held-out in-domain and general pairs (greedy decoding), and the
    translations they score."""
    scores, hypotheses = {}, {}
    for split, dataset in (("domain", task.domain_test), ("general", task.general_test)):
        hypotheses[split] = translate(dataset["source"], model, tokenizer, batch_size=64, num_beams=1,
                                      max_new_tokens=opts.max_length, progress=False)
        result = score_translations(hypotheses[split], dataset["target"])
        scores[split] = {metric: result[metric] for metric in METRICS}
    return scores, hypotheses


class WeightSnapshots(TrainerCallback):
    """The model's weights after every ``every``-th update, the last ``last`` of them kept (for averaging)."""

    def __init__(self, last: int, every: int):
        self.last, self.every, self.snapshots = last, every, []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            del self.snapshots[:-self.last]


def training_state_mib(trainer: L2MTTrainer) -> float:
    """Weights, gradients of the trainable weights, optimizer moments, anchor and Fisher, counted from the tensors."""
    def size(tensors):
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))

    model = trainer.model
    total = size(model.parameters()) + size(p for p in model.parameters() if p.requires_grad)
    total += size(v for state in trainer.optimizer.state.values() for v in state.values())
    for extra in (getattr(trainer, "anchor", None), getattr(trainer, "fisher", None)):
        if extra:
            total += size(extra.values() if isinstance(extra, dict) else extra)
    return total / 2**20


def trainer_dir(opts) -> str:
    """The trainers' scratch folder, one per shard: shards run at the same time and a folder holds one run's lock."""
    index, count = opts.shard
    return os.path.join(opts.output_dir, "trainer" if count == 1 else f"trainer-shard{index}of{count}")


def fine_tune(variant: Variant, seed: int, base: MarianMTModel, tokenizer, train, general, opts) -> tuple:
    """The fine-tuned model (LoRA merged in, averaged weights for ``average``) and what the run cost."""
    model = copy.deepcopy(base)
    if variant.replay > 0:
        # Chu et al. 2017: the in-domain pairs plus general pairs making up `replay` of the mixture.
        count = round(len(train) * variant.replay / (1 - variant.replay))
        train = concatenate_datasets([train, general.shuffle(seed=seed).select(range(min(count, len(general))))])
    args = L2MTTrainingArguments(
        output_dir=trainer_dir(opts), per_device_train_batch_size=opts.batch_size,
        max_steps=opts.steps, learning_rate=opts.learning_rate, lr_scheduler_type="constant", seed=seed,
        train_sampling_strategy="group_by_length", remove_unused_columns=False, save_strategy="no",
        logging_steps=10**9, report_to=[], disable_tqdm=True, use_cpu=opts.device == "cpu", dataloader_num_workers=0,
        **variant.arguments, **({"l2sp_fisher_path": opts.fisher_path} if variant.family == "ewc" else {}),
    )
    trainer = L2MTTrainer(model=model, args=args, train_dataset=train,
                          data_collator=make_data_collator(tokenizer, model))
    trainer.remove_callback(PrinterCallback)
    snapshots = WeightSnapshots(*variant.average) if variant.average else None
    if snapshots:
        trainer.add_callback(snapshots)
    output = trainer.train()
    cost = {"trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
            "seconds_per_update": output.metrics["train_runtime"] / opts.steps,
            "training_state_mib": training_state_mib(trainer)}
    if snapshots:
        names = [f"update {opts.steps - opts.average_every * i}" for i in reversed(range(len(snapshots.snapshots)))]
        trainer.model.load_state_dict(average_state_dicts(snapshots.snapshots, names))
    # LoRA runs are scored with the adapters merged in: the same translations, no PEFT wrapper around generate.
    model = trainer.model.merge_and_unload() if variant.arguments.get("adapter") == "lora" else trainer.model
    return model, cost


def read_runs(path: str) -> dict:
    runs = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                run = json.loads(line)
                runs[(run["key"], run["variant"], run["seed"])] = run
    return runs


def run_study(opts, task: tasks.Task, base_dir: str) -> dict:
    # Loaded once: pretraining may go on in the background and replace base_dir during the study.
    progress = read_progress(opts.cache_dir)
    base = MarianMTModel.from_pretrained(base_dir).to(opts.device)
    tokenizer = MarianTokenizer.from_pretrained(base_dir)
    train = tokenized(task.domain_train, tokenizer, opts, base.config)
    general = tokenized(task.general_train, tokenizer, opts, base.config)
    # Runs are reused only with the same base (its update count), data and fine-tuning settings.
    key = json.dumps({"base_steps": progress["steps"], "domain": task.domain, **{name: getattr(opts, name) for name in (
        "general_size", "domain_size", "heldout", "max_length", "steps", "batch_size", "learning_rate")}}, sort_keys=True)
    runs_path = os.path.join(opts.output_dir, "runs.jsonl")
    runs = read_runs(runs_path)
    if (key, "base", 0) not in runs and opts.shard[0] == 0:
        scores, hypotheses = evaluate(base, tokenizer, task, opts)
        runs[(key, "base", 0)] = {"key": key, "variant": "base", "seed": 0, "scores": scores, "hypotheses": hypotheses}
        with open(runs_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(runs[(key, "base", 0)]) + "\n")
    variants = make_variants(opts)
    # Each fine-tuning run would log the same parameter-group table; results are printed per run instead.
    logger.setLevel(logging.WARNING)
    # Seed-major, so that an interrupted study has every variant at its first seeds; shard I/N takes
    # every N-th run (each shard loads the base and data, and the Fisher if it runs EWC).
    jobs = [(variant, seed) for seed in range(opts.seeds) for variant in variants]
    index, count = opts.shard
    pending = [(variant, seed) for variant, seed in jobs[index::count] if (key, variant.name, seed) not in runs]
    if any(variant.family == "ewc" for variant, _ in pending):
        opts.fisher_path = base_fisher(base, tokenizer, general, opts, progress["steps"])
    for variant, seed in pending:
        start = time.perf_counter()
        model, cost = fine_tune(variant, seed, base, tokenizer, train, general, opts)
        scores, hypotheses = evaluate(model, tokenizer, task, opts)
        run = {"key": key, "variant": variant.name, "seed": seed, "scores": scores, "hypotheses": hypotheses,
               "cost": cost, "seconds": time.perf_counter() - start, "device": opts.device}
        runs[(key, variant.name, seed)] = run
        with open(runs_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(run) + "\n")
        print(f"{variant.name} seed {seed} ({run['seconds']:.0f} s): {json.dumps(run['scores'])}", flush=True)
    runs = read_runs(runs_path)  # with what other shards wrote meanwhile
    missing = [f"{v.name} seed {s}" for v, s in jobs if (key, v.name, s) not in runs]
    if (key, "base", 0) not in runs:
        missing.insert(0, "base")
    if missing:
        print(f"{runs_path}: {len(missing)} run(s) still missing ({', '.join(missing[:5])}"
              f"{', ...' if len(missing) > 5 else ''}); rerun without --shard once the other shards are done", flush=True)
        return None
    base = runs[(key, "base", 0)]["scores"]
    per_variant = {v.name: [runs[(key, v.name, s)]["scores"] for s in range(opts.seeds)] for v in variants}
    costs = {v.name: {name: statistics.fmean(runs[(key, v.name, s)]["cost"][name] for s in range(opts.seeds))
                      for name in COSTS} for v in variants}
    reports = write_reports(opts, task, {name: runs[name] for name in runs if name[0] == key}, key, variants)
    return {"base": base, "base_progress": progress, "variants": [asdict(v) | {"name": v.name} for v in variants],
            "runs": per_variant, "costs": costs, "reports": reports,
            "summary": summarize(base, per_variant, opts.goal_metric)}


def write_reports(opts, task: tasks.Task, runs: dict, key: str, variants: list[Variant]) -> dict:
    """The forgetting report of every run against the base, with plain fine-tuning of the same seed as compared
    run, saved in ``reports/``; returned summarised per variant over seeds."""
    directory = os.path.join(opts.output_dir, "reports")
    os.makedirs(directory, exist_ok=True)
    references = {"in_domain": task.domain_test["target"], "general": task.general_test["target"]}
    sources = {"in_domain": task.domain_test["source"], "general": task.general_test["source"]}
    sets = {"in_domain": "domain", "general": "general"}
    base = runs[(key, "base", 0)]["hypotheses"]
    summary = {}
    for variant in variants:
        per_seed = []
        for seed in range(opts.seeds):
            path = os.path.join(directory, f"{variant.name.replace(' ', '_')}_seed{seed}.json")
            report = None
            if os.path.isfile(path):  # reused only for the runs it was made from, as runs.jsonl's lines are
                with open(path, encoding="utf-8") as handle:
                    report = json.load(handle)
            if report is None or report.get("study_key") != key:
                hypotheses = {"base": base, "run": runs[(key, variant.name, seed)]["hypotheses"]}
                if variant.family != "plain":
                    hypotheses["plain"] = runs[(key, "plain", seed)]["hypotheses"]
                translations = {model: {name: found[split] for name, split in sets.items()}
                                for model, found in hypotheses.items()}
                report = build_report(references, translations, ["general"], sources=sources, seed=DEFAULT_SEED,
                                      command=f"benchmarks/domain_adaptation.py ({variant.name}, seed {seed})")
                report["study_key"] = key
                save_report(report, path)
                with open(path[:-len(".json")] + ".txt", "w", encoding="utf-8") as handle:
                    handle.write(format_report(report) + "\n")
            per_seed.append(report)
        summary[variant.name] = summarize_reports(per_seed, opts.goal_metric)
    return summary


def summarize_reports(reports: list[dict], metric: str) -> dict:
    """Over seeds: the mean change against the base per set, how many seeds' changes are significant, and the
    mean share recovered (general) or kept (in-domain) against plain fine-tuning."""
    row = {}
    for name in ("in_domain", "general"):
        changes = [report["sets"][name]["changes"]["run"][metric] for report in reports]
        row[f"{name}_change"] = statistics.fmean(change["change"] for change in changes)
        row[f"{name}_significant"] = sum(change["significant"] and change["change"] < 0 for change in changes), \
            sum(change["significant"] and change["change"] > 0 for change in changes)
        shares = [report["shares"]["plain"][name][metric]["share"] for report in reports if report["compared"]]
        shares = [share for share in shares if share is not None]
        row[f"{name}_share"] = statistics.fmean(shares) if shares else None
        # placeholders kept (sets with a placeholder in a source only, e.g. software strings)
        kept = [report["sets"][name]["placeholders"] for report in reports if "placeholders" in report["sets"][name]]
        if kept:
            row[f"{name}_placeholders"] = statistics.fmean(found["run"]["accuracy"] for found in kept)
            row[f"{name}_placeholders_base"] = kept[0]["base"]["accuracy"]
    return row


COSTS = ("trainable_parameters", "seconds_per_update", "training_state_mib")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(base: dict, per_variant: dict, goal_metric: str) -> dict:
    """Mean and std over seeds, and the goal check against plain fine-tuning on ``goal_metric``."""
    summary = {}
    for name, scores in per_variant.items():
        summary[name] = {f"{split}_{metric}": mean_std([s[split][metric] for s in scores])
                         for split in ("domain", "general") for metric in METRICS}
    plain_domain = summary["plain"][f"domain_{goal_metric}"][0]
    plain_loss = base["general"][goal_metric] - summary["plain"][f"general_{goal_metric}"][0]
    for name, row in summary.items():
        loss = base["general"][goal_metric] - row[f"general_{goal_metric}"][0]
        row["general_loss_share"] = loss / plain_loss if plain_loss > 0 else None
        row["domain_vs_plain"] = row[f"domain_{goal_metric}"][0] / plain_domain if plain_domain > 0 else None
        row["meets_goal"] = (row["general_loss_share"] is not None and row["general_loss_share"] <= 0.2
                             and row["domain_vs_plain"] is not None and row["domain_vs_plain"] >= 0.95)
    return summary


def markdown_table(result: dict, goal_metric: str, seeds: int) -> str:
    def cell(pair):
        return f"{pair[0]:.1f} ± {pair[1]:.1f}"

    header = ("| variant | in-domain EM | in-domain chrF | in-domain BLEU | general EM | general chrF | general BLEU "
              f"| general loss / plain's ({goal_metric}) | in-domain / plain's | goal |")
    lines = [header, "|" + "---|" * 10]
    base = result["base"]
    lines.append("| base (before fine-tuning) | " + " | ".join(
        f"{base[split][metric]:.1f}" for split in ("domain", "general") for metric in METRICS) + " | 0 % | | |")
    for name, row in result["summary"].items():
        share, ratio = row["general_loss_share"], row["domain_vs_plain"]
        lines.append(f"| {name} | " + " | ".join(cell(row[f"{split}_{metric}"]) for split in ("domain", "general")
                                                 for metric in METRICS)
                     + f" | {'n/a' if share is None else f'{100 * share:.0f} %'}"
                     + f" | {'n/a' if ratio is None else f'{100 * ratio:.0f} %'} | {'yes' if row['meets_goal'] else 'no'} |")
    return "\n".join(lines) + f"\n\nMean ± std over {seeds} fine-tuning seeds; scores in %, greedy decoding.\n"


def reports_table(result: dict, goal_metric: str, seeds: int) -> str:
    """Per variant: the forgetting reports' change against the base, significance and shares, with the costs."""
    header = (f"| variant | in-domain Δ {goal_metric} vs base | seeds sig. worse / better | gain kept vs plain "
              f"| general Δ {goal_metric} vs base | seeds sig. worse / better | forgetting recovered vs plain "
              "| trainable parameters | s / update | training state (MiB) |")
    # a column per held-out set whose sources have placeholders (software strings; none in number words)
    first = next(iter(result["reports"].values()))
    kept = [name for name in ("in_domain", "general") if f"{name}_placeholders" in first]
    header += "".join(f" placeholders kept, {name.replace('_', '-')} |" for name in kept)
    lines = [header, "|" + "---|" * (10 + len(kept))]

    def share(value):
        return "—" if value is None else f"{100 * value:.0f} %"

    for name, row in result["reports"].items():
        cost = result["costs"][name]
        lines.append(
            f"| {name} | {row['in_domain_change']:+.1f} | {row['in_domain_significant'][0]} / "
            f"{row['in_domain_significant'][1]} | {share(row['in_domain_share'])} | {row['general_change']:+.1f} "
            f"| {row['general_significant'][0]} / {row['general_significant'][1]} | {share(row['general_share'])} "
            f"| {cost['trainable_parameters']:,.0f} | {cost['seconds_per_update']:.3f} "
            f"| {cost['training_state_mib']:.1f} |" + "".join(f" {100 * row[f'{k}_placeholders']:.1f} % |" for k in kept))
    if kept:
        lines.append("| base (before fine-tuning) | | | | | | | | | |" + "".join(
            f" {100 * first[f'{k}_placeholders_base']:.1f} % |" for k in kept))
    return "\n".join(lines) + (
        f"\n\nMeans over {seeds} seeds of each seed's forgetting report (reports/*.json): Δ against the base; a seed "
        "counts as significant when the 95 % interval of its change leaves 0 out, p <= 0.05 (paired bootstrap, 1,000 "
        "resamples); shares against plain fine-tuning "
        "of the same seed. Training state: weights, gradients of the trainable weights, optimizer moments, anchor "
        "and Fisher, counted from the tensors (activations not counted)."
        + (" Placeholders kept: the share of held-out sentences with a placeholder whose translation has exactly "
           "its source's placeholders (hf_l2mt.evaluation.placeholders), mean over seeds." if kept else "") + "\n")


def front_line(result: dict, goal_metric: str) -> str:
    """The variants on the Pareto front of mean in-domain and general ``goal_metric`` (the base among the points)."""
    names, _ = result_front(result, goal_metric)
    return (f"Pareto front (mean in-domain and general {goal_metric}; no other variant is at least as good on both): "
            + ", ".join(names) + "\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(DEFAULTS), default="numbers")
    parser.add_argument("--stage", choices=["pretrain", "study", "all"], default="all",
                        help="pretrain: only (continue to) pretrain the base; study: fine-tune from the cached base")
    parser.add_argument("--domain", help="numbers: the new domain, year (default) or ordinal; gettext: the held-out "
                        "package family, postgresql (default), gcc, ... (benchmarks/gettext_corpus.py)")
    parser.add_argument("--gettext_cache", help="gettext: where the Debian packages are downloaded "
                        "(default: ~/.cache/hf_l2mt/gettext)")
    parser.add_argument("--gettext_corpus", help="gettext: read the corpus from this folder (pairs.jsonl and "
                        "report.json written by python -m benchmarks.gettext_corpus) instead of the Debian packages, "
                        "on a machine that cannot download them")
    parser.add_argument("--tag", default="med.", help="ding: the subject tag of the new domain (med., comp., techn., ...)")
    parser.add_argument("--ding_path", help="ding: the dictionary file (default: hf_l2mt.data.DING_PATH)")
    parser.add_argument("--cache_dir", help="base model cache (default: ~/.cache/hf_l2mt/<task>_base)")
    parser.add_argument("--output_dir", help="default: outputs/domain_adaptation/<task>_<domain or tag>")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core for other work)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where pretraining, fine-tuning and "
                        "evaluation run (the scores of a run do not depend on it beyond floating-point noise)")
    parser.add_argument("--shard", default="0/1", metavar="I/N",
                        help="run only every N-th fine-tuning run, starting at the I-th (0-based), so that N processes "
                             "or machines share a study through one --output_dir; a run without --shard then "
                             "writes the table from runs.jsonl")
    parser.add_argument("--domain_size", type=int, help="in-domain training pairs (numbers: how many years to make; "
                        "ding, gettext: a fixed subset, nested across sizes, as a small translation memory; default: "
                        "per task, all of them for ding and gettext)")
    for name, kind in (("general_size", int), ("general_high", int), ("heldout", int),
                       ("vocab_size", int), ("pretrain_steps", int), ("pretrain_minutes", float),
                       ("pretrain_batch_size", int), ("pretrain_lr", float), ("pretrain_warmup", int), ("steps", int),
                       ("batch_size", int), ("learning_rate", float),
                       ("seeds", int), ("max_length", int)):
        parser.add_argument(f"--{name}", type=kind, help="default: per task (see DEFAULTS)")
    parser.add_argument("--pretrain_schedule", choices=["linear", "constant_with_warmup"],
                        help="learning-rate schedule of the base; constant_with_warmup lets a budget be extended")
    parser.add_argument("--lambdas", type=float, nargs="+", help="λ grid of L2-SP (coupled, constant)")
    parser.add_argument("--sigmoid_lambdas", type=float, nargs="+", help="λ grid of L2-SP with sigmoid annealing")
    parser.add_argument("--decoupled_lambdas", type=float, nargs="+", help="λ grid of decoupled L2-SP")
    parser.add_argument("--ewc_lambdas", type=float, nargs="+", help="λ grid of EWC (Fisher-weighted L2-SP)")
    parser.add_argument("--fisher_examples", type=int, help="general training pairs the EWC Fisher is estimated on")
    parser.add_argument("--kl_lambdas", type=float, nargs="+", help="λ grid of the KL to the base")
    parser.add_argument("--l1_lambdas", type=float, nargs="+", help="λ₁ grid of L1 to the anchor")
    parser.add_argument("--lora_lambdas", type=float, nargs="+", help="λ grid of L2-SP in LoRA's merged weights")
    parser.add_argument("--lora_ranks", type=int, nargs="+", help="ranks of the LoRA variants (lora_alpha = 2 x rank)")
    parser.add_argument("--lora_l2sp_rank", type=int, help="rank of the LoRA + merged-weight L2-SP variants")
    parser.add_argument("--average_last", type=int, help="average: how many weight snapshots are averaged")
    parser.add_argument("--average_every", type=int, help="average: updates between two snapshots")
    parser.add_argument("--average_l2sp_lambdas", type=float, nargs="+",
                        help="average: L2-SP λ values averaged besides plain fine-tuning (none: plain only)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="variant families to run (plain is always run: the goal is measured against it)")
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--replay", type=float, default=0.2, help="share of general pairs in mixed fine-tuning")
    parser.add_argument("--goal_metric", choices=METRICS, help="default: exact_match (numbers), chrf (ding)")
    opts = parser.parse_args(argv)
    opts.families = ["plain", *(f for f in opts.families if f != "plain")]
    for name, value in DEFAULTS[opts.task].items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    if not 0 <= opts.replay < 1:
        parser.error(f"--replay {opts.replay}: accepted: a share in [0, 1)")
    shard = opts.shard.split("/")
    if len(shard) != 2 or not all(part.isdigit() for part in shard) or not 0 <= int(shard[0]) < int(shard[1]):
        parser.error(f"--shard {opts.shard!r}: accepted: I/N with 0 <= I < N, e.g. 0/4")
    opts.shard = (int(shard[0]), int(shard[1]))
    opts.fisher_path = None  # set by the study when it runs EWC
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here; accepted: cpu, or cuda on a machine with a GPU")
    if opts.seeds < 1 or opts.steps < 1:
        parser.error("--seeds and --steps: accepted: integers >= 1")
    if opts.task == "gettext":
        from benchmarks.gettext_corpus import FAMILIES as PACKAGE_FAMILIES

        opts.domain = opts.domain or "postgresql"
        if opts.domain not in PACKAGE_FAMILIES:
            parser.error(f"--domain {opts.domain!r}: accepted for --task gettext: {', '.join(PACKAGE_FAMILIES)}")
    elif opts.task == "numbers":
        opts.domain = opts.domain or "year"
        if opts.domain not in DOMAINS["numbers"]:
            parser.error(f"--domain {opts.domain!r}: accepted for --task numbers: {', '.join(DOMAINS['numbers'])}")
    where = opts.tag.rstrip(".") if opts.task == "ding" else opts.domain
    opts.cache_dir = os.path.expanduser(opts.cache_dir or f"~/.cache/hf_l2mt/{opts.task}_base")
    opts.output_dir = opts.output_dir or os.path.join("outputs", "domain_adaptation", f"{opts.task}_{where}")
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.makedirs(opts.cache_dir, exist_ok=True)
    os.makedirs(opts.output_dir, exist_ok=True)
    task = load_task(opts)
    shape = SHAPES[opts.task]
    tokenizer = tasks.load_or_train_tokenizer(os.path.join(opts.cache_dir, "tokenizer"),
                                              tasks.both_sides(task.general_train), opts.vocab_size)
    config = tasks.marian_config(shape, tokenizer)
    base_dir = os.path.join(opts.cache_dir, "base")
    if opts.stage in ("pretrain", "all"):
        base_dir = pretrain_base(opts.cache_dir, config, tokenizer, tokenized(task.general_train, tokenizer, opts, config),
                                 minutes=opts.pretrain_minutes, max_steps=opts.pretrain_steps,
                                 batch_size=opts.pretrain_batch_size, learning_rate=opts.pretrain_lr,
                                 warmup_steps=opts.pretrain_warmup, lr_scheduler_type=opts.pretrain_schedule,
                                 use_cpu=opts.device == "cpu")
    if opts.stage == "pretrain":
        return read_progress(opts.cache_dir)
    if not os.path.isfile(os.path.join(base_dir, "config.json")):
        raise FileNotFoundError(f"{base_dir}: no base model yet; run with --stage pretrain (or all) first")
    result = run_study(opts, task, base_dir)
    if result is None:  # a shard, and other shards' runs are still missing
        return None
    result["settings"] = {k: v for k, v in vars(opts).items()}
    result["pareto_front"] = front_line(result, opts.goal_metric)
    table = (markdown_table(result, opts.goal_metric, opts.seeds) + "\n" + reports_table(result, opts.goal_metric, opts.seeds)
             + "\n" + result["pareto_front"])
    write_json(os.path.join(opts.output_dir, "results.json"), result)
    with open(os.path.join(opts.output_dir, "results.md"), "w", encoding="utf-8") as handle:
        handle.write(table)
    plot_forgetting(result, os.path.join(opts.output_dir, "forgetting.png"), metric=opts.goal_metric,
                    title=f"{opts.task}: {task.general} → {task.domain}")
    print(table)
    return result


if __name__ == "__main__":
    main()
