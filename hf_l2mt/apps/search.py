"""Choosing λ: an Optuna study over the L2-SP strength with two objectives, in-domain and general-domain score.

Each trial fine-tunes a copy of the base model on the in-domain pairs for ``max_steps`` updates with a
sampled λ (log-uniform in ``[lambda_min, lambda_max]``), and optionally a sampled λ schedule and weight
decay, then translates both evaluation sets (greedy) and scores them with sacreBLEU. Neither objective
alone says which λ to use: the answer is the Pareto front (``study.best_trials``), the trials no other
trial beats on both scores.

Trials call ``L2MTTrainer`` directly rather than ``Trainer.hyperparameter_search``: the base model is
read once and copied per trial, each trial is scored on two generated test sets, the study resumes to
a total number of trials, and pruning follows the rule of ``prune_reason`` (Optuna's pruners do not
support multi-objective studies; ``Trial.report`` raises for them).

Before the first trial, the study scores the base model and fine-tunes once without regularization
(the reference); both are kept in the study, so a resumed study does not redo them. docs/search.md
describes the outputs: ``trials.csv``, ``pareto_front.png`` and the study's SQLite file.
"""

import argparse
import copy
import csv
import logging
import math
import os
from dataclasses import asdict, dataclass, field

import datasets
import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PrinterCallback,
    TrainerCallback,
)
from transformers.utils import logging as hf_logging

from ..atomic_write import atomic_path
from ..core.trainer import L2MTTrainer
from ..core.training_args import L2MTTrainingArguments
from ..data import load_pairs, make_data_collator, preprocess_pairs
from ..evaluation.metrics import score_translations
from ..evaluation.translate import translate
from .plots import plot_pareto_front

logger = logging.getLogger("hf_l2mt")

METRICS = ("bleu", "chrf", "exact_match")  # higher is better; TER is not offered
SEARCHED_SCHEDULES = ("constant", "sigmoid")
SETS = ("in_domain", "general")


@dataclass
class SearchSettings:
    """What a λ search fine-tunes, how long, over which range, and when it gives up on a trial."""

    model_dir: str
    src_lang: str
    tgt_lang: str
    train: str
    in_domain_eval: str
    general_eval: str
    output_dir: str
    n_trials: int = 12
    max_steps: int = 200
    first_eval_step: int | None = None  # default: half-way
    batch_size: int = 32
    learning_rate: float = 5e-4
    max_length: int = 128
    lambda_min: float = 1e-3
    lambda_max: float = 10.0
    schedules: list[str] = field(default_factory=lambda: ["constant"])
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    metric: str = "bleu"
    prune_fraction: float = 0.5
    prune_general_drop: float = 5.0
    seed: int = 0
    storage: str | None = None  # default: sqlite:///OUTPUT_DIR/study.db
    study_name: str = "l2sp_search"

    def __post_init__(self):
        for flag in ("n_trials", "max_steps", "batch_size", "max_length"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag}: got {getattr(self, flag)}; accepted: an integer >= 1")
        self.first_eval_step = self.first_eval_step or max(self.max_steps // 2, 1)
        if not 1 <= self.first_eval_step <= self.max_steps:
            raise ValueError(f"--first_eval_step: got {self.first_eval_step}; accepted: 1 .. --max_steps ({self.max_steps})")
        if self.lambda_min <= 0:
            raise ValueError(f"--lambda_min: got {self.lambda_min:g}; λ is sampled on a log scale: accepted: > 0")
        if self.lambda_min >= self.lambda_max:
            raise ValueError(f"--lambda_min {self.lambda_min:g} >= --lambda_max {self.lambda_max:g}; accepted: min < max")
        if not self.schedules or set(self.schedules) - set(SEARCHED_SCHEDULES):
            raise ValueError(f"--schedules: got {self.schedules}; accepted: one or both of {', '.join(SEARCHED_SCHEDULES)}")
        if not self.weight_decays or any(not (value >= 0) for value in self.weight_decays):
            raise ValueError(f"--weight_decays: got {self.weight_decays}; accepted: one or more values >= 0")
        if self.metric not in METRICS:
            raise ValueError(f"--metric: got {self.metric!r}; accepted: {', '.join(METRICS)}")
        if not 0 <= self.prune_fraction <= 1:
            raise ValueError(f"--prune_fraction: got {self.prune_fraction:g}; accepted: 0 .. 1 (0 turns it off)")
        if not self.prune_general_drop >= 0:
            raise ValueError(f"--prune_general_drop: got {self.prune_general_drop:g}; accepted: >= 0 (inf turns it off)")
        self.storage = self.storage or f"sqlite:///{os.path.abspath(os.path.join(self.output_dir, 'study.db'))}"

    def trial_defining(self) -> dict:
        """The settings a trial's scores depend on; a study resumes only with the same ones."""
        kept = ("model_dir", "src_lang", "tgt_lang", "train", "in_domain_eval", "general_eval", "max_steps",
                "first_eval_step", "batch_size", "learning_rate", "max_length", "lambda_min", "lambda_max",
                "schedules", "weight_decays", "metric", "seed")
        return {name: value for name, value in asdict(self).items() if name in kept}


def prune_reason(
    first: dict[str, float],
    reference_first: dict[str, float],
    earlier_firsts: list[dict[str, float]],
    fraction: float,
    general_drop: float,
) -> str | None:
    """Why a trial is hopeless after its first evaluation, or ``None`` to go on.

    All scores are ``{"in_domain": ..., "general": ...}`` at the same update, ``first_eval_step``:

    1. in-domain below ``fraction`` x the best in-domain score so far (the unregularized reference's and
       earlier trials'): λ is so strong that the model is not learning the domain;
    2. general more than ``general_drop`` points below the unregularized reference's: worse than no
       regularization at all on what regularization is meant to keep.
    """
    best = max(scores["in_domain"] for scores in [reference_first, *earlier_firsts])
    if first["in_domain"] < fraction * best:
        return f"in-domain {first['in_domain']:.2f} < {fraction:g} x best so far {best:.2f}"
    if first["general"] < reference_first["general"] - general_drop:
        return f"general {first['general']:.2f} < unregularized {reference_first['general']:.2f} - {general_drop:g}"
    return None


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError('hf-l2mt search needs Optuna: pip install "hf_l2mt[search]"') from None
    return optuna


class FirstEvaluation(TrainerCallback):
    """Scores the model at update ``step`` and stops training if ``decide(scores)`` gives a reason."""

    def __init__(self, step: int, evaluate, decide):
        self.step, self.evaluate, self.decide = step, evaluate, decide
        self.scores: dict[str, float] | None = None
        self.reason: str | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step and self.scores is None:
            self.scores = self.evaluate(model)
            self.reason = self.decide(self.scores)
            control.should_training_stop = self.reason is not None


class LambdaSearch:
    """The data, the base model and the study; ``run()`` completes the study to ``n_trials`` trials."""

    def __init__(self, settings: SearchSettings):
        self.settings = s = settings
        self.tokenizer = AutoTokenizer.from_pretrained(s.model_dir)
        self.base = AutoModelForSeq2SeqLM.from_pretrained(s.model_dir)
        self.train = preprocess_pairs(load_pairs(s.train, s.src_lang, s.tgt_lang), self.tokenizer, s.src_lang,
                                      s.tgt_lang, s.max_length, s.max_length, model_config=self.base.config)
        self.eval_sets = {name: load_pairs(source, s.src_lang, s.tgt_lang)
                          for name, source in zip(SETS, (s.in_domain_eval, s.general_eval))}

    def evaluate(self, model) -> dict[str, float]:
        """Greedy translations of both evaluation sets, scored with ``settings.metric``."""
        scores = {}
        for name, pairs in self.eval_sets.items():
            hypotheses = translate(pairs["source"], model, self.tokenizer, batch_size=64, num_beams=1,
                                   max_new_tokens=self.settings.max_length, progress=False)
            scores[name] = score_translations(hypotheses, pairs["target"])[self.settings.metric]
        return scores

    def fine_tune(self, params: dict, decide=lambda scores: None) -> tuple[FirstEvaluation, object]:
        """A copy of the base fine-tuned with ``params``, and the callback that holds its first evaluation."""
        s = self.settings
        model = copy.deepcopy(self.base)
        args = L2MTTrainingArguments(
            output_dir=os.path.join(s.output_dir, "trainer"), per_device_train_batch_size=s.batch_size,
            max_steps=s.max_steps, learning_rate=s.learning_rate, lr_scheduler_type="constant", seed=s.seed,
            train_sampling_strategy="group_by_length", remove_unused_columns=False, save_strategy="no",
            logging_steps=s.max_steps, report_to=[], disable_tqdm=True, dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(), **params,
        )
        first = FirstEvaluation(s.first_eval_step, self.evaluate, decide)
        trainer = L2MTTrainer(model=model, args=args, train_dataset=self.train, callbacks=[first],
                              data_collator=make_data_collator(self.tokenizer, model))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        return first, trainer.model

    def references(self, study) -> dict:
        """Scores of the base model and of the unregularized fine-tune, computed once per study."""
        if "reference" not in study.user_attrs:
            first, model = self.fine_tune({"l2sp_lambda": 0.0, "weight_decay": 0.0})
            study.set_user_attr("base", self.evaluate(self.base))
            study.set_user_attr("reference", {"first": first.scores, "final": self.evaluate(model)})
        return {"base": study.user_attrs["base"], "reference": study.user_attrs["reference"]}

    def suggest(self, trial) -> dict:
        s = self.settings
        params = {"l2sp_lambda": trial.suggest_float("l2sp_lambda", s.lambda_min, s.lambda_max, log=True)}
        params["l2sp_schedule"] = (trial.suggest_categorical("l2sp_schedule", s.schedules)
                                   if len(s.schedules) > 1 else s.schedules[0])
        params["weight_decay"] = (trial.suggest_categorical("weight_decay", s.weight_decays)
                                  if len(s.weight_decays) > 1 else s.weight_decays[0])
        return params

    def objective(self, study, reference_first: dict[str, float]):
        optuna = import_optuna()
        s = self.settings

        def run_trial(trial):
            params = self.suggest(trial)
            trial.set_user_attr("params", params)
            earlier = [t.user_attrs["first"] for t in study.get_trials(deepcopy=False)
                       if t.number < trial.number and "first" in t.user_attrs]
            first, model = self.fine_tune(params, lambda scores: prune_reason(
                scores, reference_first, earlier, s.prune_fraction, s.prune_general_drop))
            trial.set_user_attr("first", first.scores)
            if first.reason is not None:
                trial.set_user_attr("pruned_because", first.reason)
                raise optuna.TrialPruned(first.reason)
            final = self.evaluate(model)
            return final["in_domain"], final["general"]

        return run_trial

    def open_study(self):
        optuna = import_optuna()
        s = self.settings
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(storage=s.storage, study_name=s.study_name, load_if_exists=True,
                                    directions=["maximize", "maximize"])
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", s.trial_defining())
        elif stored != s.trial_defining():
            changed = sorted(k for k in stored if stored[k] != s.trial_defining().get(k))
            raise ValueError(
                f"--storage {s.storage}: study {s.study_name!r} was run with other settings "
                f"({', '.join(f'{k}={stored[k]!r}' for k in changed)}); use the same ones to resume, or another "
                "--study_name"
            )
        done = len(finished_trials(study))
        # Re-seeded with the trials already run, so a resumed study does not draw its first λ values again.
        study.sampler = optuna.samplers.TPESampler(seed=s.seed + done, n_startup_trials=max(s.n_trials // 3, 1))
        return study

    def run(self) -> list[dict]:
        """Run the missing trials, then write ``trials.csv`` and ``pareto_front.png``; returns the table rows."""
        optuna = import_optuna()
        os.makedirs(self.settings.output_dir, exist_ok=True)
        study = self.open_study()
        references = self.references(study)
        remaining = self.settings.n_trials - len(finished_trials(study))
        if remaining > 0:
            study.optimize(self.objective(study, references["reference"]["first"]), n_trials=remaining)
        rows = trial_rows(study, self.settings.metric)
        write_trials_csv(rows, os.path.join(self.settings.output_dir, "trials.csv"))
        marks = {name: (scores["in_domain"], scores["general"]) for name, scores in (
            ("base model", references["base"]), ("no regularization", references["reference"]["final"]))}
        plot_pareto_front(rows, os.path.join(self.settings.output_dir, "pareto_front.png"), self.settings.metric, marks)
        return rows


def finished_trials(study) -> list:
    """Completed and pruned trials: the ones that count towards ``n_trials`` (a crashed trial does not)."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def trial_rows(study, metric: str) -> list[dict]:
    """One row per finished trial; a pruned trial shows its first evaluation's scores."""
    front = {trial.number for trial in study.best_trials}
    rows = []
    for trial in finished_trials(study):
        scores = dict(zip(SETS, trial.values)) if trial.values else trial.user_attrs.get("first", {})
        rows.append({
            "number": trial.number, **trial.user_attrs["params"],
            f"in_domain_{metric}": scores.get("in_domain", math.nan), f"general_{metric}": scores.get("general", math.nan),
            "state": trial.state.name, "is_pareto": trial.number in front,
        })
    return sorted(rows, key=lambda row: row["number"])


def write_trials_csv(rows: list[dict], path: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["number"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def add_search_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``hf-l2mt search`` and ``recipes/search_lambda.py``; defaults are ``SearchSettings``'."""
    defaults = SearchSettings.__dataclass_fields__
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the base model: a local folder (config, weights, tokenizer)")
    parser.add_argument("--src_lang", required=True, help="source language code, e.g. en")
    parser.add_argument("--tgt_lang", required=True, help="target language code, e.g. de")
    for flag, what in (("train", "in-domain training pairs"), ("in_domain_eval", "in-domain evaluation pairs"),
                       ("general_eval", "general-domain evaluation pairs")):
        parser.add_argument(f"--{flag}", required=True, metavar="SOURCE",
                            help=f"{what}: any source hf-l2mt train reads (.tsv, .csv, .jsonl, .tmx, PATH prefix, ...)")
    parser.add_argument("--output_dir", required=True, help="trials.csv, pareto_front.png and study.db go here")
    numbers = (
        ("n_trials", int, "trials in the study in all; a resumed study runs only the missing ones"),
        ("max_steps", int, "updates per trial"),
        ("first_eval_step", int, "update of the first evaluation, where pruning is decided (default: half-way)"),
        ("batch_size", int, "pairs per update"), ("learning_rate", float, "constant learning rate"),
        ("max_length", int, "longest source, target and translation, in tokens"),
        ("lambda_min", float, "smallest λ (log-uniform range, > 0)"), ("lambda_max", float, "largest λ"),
        ("prune_fraction", float, "prune if in-domain < this x the best earlier first evaluation (0: off)"),
        ("prune_general_drop", float, "prune if general < the unregularized reference's minus this (inf: off)"),
        ("seed", int, "seed of the sampler and of training"),
    )
    for name, kind, what in numbers:
        default = defaults[name].default
        parser.add_argument(f"--{name}", type=kind, default=default, help=f"{what} (default: {default})")
    parser.add_argument("--schedules", nargs="+", choices=SEARCHED_SCHEDULES, default=["constant"],
                        help="λ schedules; two are searched over (default: constant)")
    parser.add_argument("--weight_decays", nargs="+", type=float, default=[0.0],
                        help="weight decay values; two or more are searched over (default: 0)")
    parser.add_argument("--metric", choices=METRICS, default="bleu", help="the score of both objectives (default: bleu)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT_DIR/study.db)")
    parser.add_argument("--study_name", default=defaults["study_name"].default, help="study in the storage")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    return parser


def run_search(args: argparse.Namespace) -> list[dict]:
    """Parsed flags → ``LambdaSearch(...).run()``, with a one-line summary of the front."""
    options = {k: v for k, v in vars(args).items() if k in SearchSettings.__dataclass_fields__}
    settings = SearchSettings(**options)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: got {args.threads}; accepted: an integer >= 1")
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logger.setLevel(logging.WARNING)  # each trial would log its parameter-group table
    rows = LambdaSearch(settings).run()
    front = [row for row in rows if row["is_pareto"]]
    print(f"{len(rows)} trials, {len(front)} on the Pareto front; see {os.path.join(settings.output_dir, 'trials.csv')}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = add_search_arguments(argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]))
    args = parser.parse_args(argv)
    try:
        return run_search(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
