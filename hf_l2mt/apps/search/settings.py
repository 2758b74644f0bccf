"""The flags of ``hf-l2mt search``: what a λ search fine-tunes, how long, over which range, and when it gives
up on a trial. Kept apart from the search itself, so that ``hf-l2mt search --help`` loads no torch."""

import os
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from ...evaluation.report_names import HIGHER_IS_BETTER

SEARCHED_SCHEDULES = ("constant", "sigmoid")
DATA_SOURCE = "any source hf-l2mt train reads (.tsv, .csv, .jsonl, .tmx, PATH prefix, ...)"


@dataclass
class SearchSettings:
    """What a λ search fine-tunes, how long, over which range, and when it gives up on a trial."""

    positional_fields: ClassVar[tuple[str, ...]] = ("model_dir",)

    # Parameters that control the model and the data
    model_dir: str = field(metadata={"help": "the base model: a local folder (config, weights, tokenizer)"})
    src_lang: str = field(metadata={"help": "source language code, e.g. en"})
    tgt_lang: str = field(metadata={"help": "target language code, e.g. de"})
    train: str = field(metadata={"help": f"in-domain training pairs: {DATA_SOURCE}", "metavar": "SOURCE"})
    in_domain_eval: str = field(metadata={"help": f"in-domain evaluation pairs: {DATA_SOURCE}", "metavar": "SOURCE"})
    general_eval: str = field(
        metadata={"help": f"general-domain evaluation pairs: {DATA_SOURCE}", "metavar": "SOURCE"}
    )
    output_dir: str = field(metadata={"help": "trials.csv, pareto_front.png and study.db go here"})

    # Parameters that control each trial
    n_trials: int = field(default=12, metadata={"help": "trials in the study in all; a resumed study runs only the missing ones"})
    max_steps: int = field(default=200, metadata={"help": "updates per trial"})
    first_eval_step: int | None = field(
        default=None, metadata={"help": "update of the first evaluation, where pruning is decided (default: half-way)"}
    )
    batch_size: int = field(default=32, metadata={"help": "pairs per update"})
    learning_rate: float = field(default=5e-4, metadata={"help": "constant learning rate"})
    max_length: int = field(default=128, metadata={"help": "longest source, target and translation, in tokens"})

    # Parameters that control what is searched and how trials are scored
    lambda_min: float = field(default=1e-3, metadata={"help": "smallest λ (log-uniform range, > 0)"})
    lambda_max: float = field(default=10.0, metadata={"help": "largest λ"})
    schedules: list[str] = field(
        default_factory=lambda: ["constant"],
        metadata={"help": "λ schedules; two are searched over", "choices": SEARCHED_SCHEDULES},
    )
    weight_decays: list[float] = field(
        default_factory=lambda: [0.0], metadata={"help": "weight decay values; two or more are searched over"}
    )
    metric: str = field(default="bleu", metadata={"help": "the score of both objectives", "choices": HIGHER_IS_BETTER})

    # Parameters that control pruning
    prune_fraction: float = field(
        default=0.5, metadata={"help": "prune if in-domain < this x the best earlier first evaluation (0: off)"}
    )
    prune_general_drop: float = field(
        default=5.0, metadata={"help": "prune if general < the unregularized reference's minus this (inf: off)"}
    )

    # Parameters that control the study and the machine
    seed: int = field(default=0, metadata={"help": "seed of the sampler and of training"})
    storage: str | None = field(default=None, metadata={"help": "Optuna storage URL (default: sqlite:///OUTPUT_DIR/study.db)"})
    study_name: str = field(default="l2sp_search", metadata={"help": "study in the storage"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's)"})

    def __post_init__(self):
        for flag in ("n_trials", "max_steps", "batch_size", "max_length"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag}: got {getattr(self, flag)}; accepted: an integer >= 1")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"--num_threads: got {self.num_threads}; accepted: an integer >= 1")
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
        if self.metric not in HIGHER_IS_BETTER:
            raise ValueError(f"--metric: got {self.metric!r}; accepted: {', '.join(HIGHER_IS_BETTER)}")
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


def parse_search_settings(argv: list[str] | None = None, prog: str | None = None) -> SearchSettings:
    """``SearchSettings`` from ``--config FILE`` and ``argv``; see ``settings.parse_settings``."""
    from ..terminal.settings import parse_settings

    description = ("Fine-tune MODEL_DIR once per trial with a sampled L2-SP λ (optionally schedule and weight decay), "
                   "score in-domain and general evaluation sets, and write the trials and their Pareto front "
                   "(docs/search.md).")
    epilog = ("example:\n  hf-l2mt search base/ --src_lang en --tgt_lang de --train med.tsv --in_domain_eval "
              "med-dev.tsv --general_eval news-dev.tsv --output_dir runs/search --n_trials 20")
    (settings,) = parse_settings((SearchSettings,), {}, argv, description=description, prog=prog, epilog=epilog)
    return settings
