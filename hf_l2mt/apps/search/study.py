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

import copy
import csv
import logging
import math
import os
import sys

import datasets
import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PrinterCallback,
    TrainerCallback,
)
from transformers.utils import logging as hf_logging

from ...atomic_write import atomic_path
from ...core.trainer import L2MTTrainer
from ...core.training_args import L2MTTrainingArguments
from ...data import load_pairs, make_data_collator, preprocess_pairs
from ...evaluation.metrics import score_translations
from ...evaluation.translate import translate
from ..plots.figures import plot_pareto_front
from .settings import SearchSettings, parse_search_settings

logger = logging.getLogger("hf_l2mt")

SETS = ("in_domain", "general")


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


def run_search(settings: SearchSettings) -> list[dict]:
    """``LambdaSearch(settings).run()``, quietly, with a one-line summary of the front."""
    if settings.num_threads is not None:
        torch.set_num_threads(settings.num_threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logger.setLevel(logging.WARNING)  # each trial would log its parameter-group table
    rows = LambdaSearch(settings).run()
    front = [row for row in rows if row["is_pareto"]]
    print(f"{len(rows)} trials, {len(front)} on the Pareto front; see {os.path.join(settings.output_dir, 'trials.csv')}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """``recipes/search_lambda.py``: the flags of ``hf-l2mt search``, ``--config FILE`` among them."""
    settings = parse_search_settings(argv)
    try:
        return run_search(settings)
    except (ValueError, FileNotFoundError, ImportError) as err:
        raise SystemExit(f"{os.path.basename(sys.argv[0])}: error: {err}") from None
