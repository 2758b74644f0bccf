"""``RecipeArguments`` and the layers of settings under a recipe's command line, apart from the recipe runner
(``runner``, which imports transformers) so that ``hf-l2mt train RECIPE --help`` lists them at once."""

import re
from dataclasses import dataclass, field

# Every recipe scores generated translations and batches pairs of similar length; PairCollator drops
# the `length` column that the length-grouped sampler reads, so the Trainer must keep it (docs/data.md).
RUNNER_DEFAULTS = {
    "predict_with_generate": True,
    "train_sampling_strategy": "group_by_length",
    "remove_unused_columns": False,
}

_EVAL_SET_NAME = re.compile(r"[A-Za-z0-9][\w-]*")


@dataclass
class RecipeArguments:
    """What a recipe fine-tunes: the checkpoint, the language pair, the data and its tokenisation.

    The optimisation and the regularization (``l2sp_lambda``, its schedule, weight decay) are
    ``L2MTTrainingArguments`` fields, parsed together with these.
    """

    _argument_group_name = "recipe arguments"

    # Parameters that control the model
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Checkpoint to fine-tune: a Hub id (Helsinki-NLP/opus-mt-en-de) or a local directory."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run Python code shipped with the checkpoint. Leave off unless you trust its author."},
    )

    # Parameters that control the language pair and the data
    src_lang: str | None = field(default=None, metadata={"help": "Source language code, e.g. en."})
    tgt_lang: str | None = field(default=None, metadata={"help": "Target language code, e.g. de."})
    train_source: str | None = field(
        default=None,
        metadata={
            "help": "Training pairs: a .tsv/.csv/.jsonl/.json/.tmx/.po/.mo file, a prefix PATH with PATH.SRC and "
            "PATH.TGT beside it, 'ding' or 'ding:PATH', 'hub:NAME[:CONFIG]', or a save_to_disk folder (docs/data.md)."
        },
    )
    train_split: str = field(
        default="train", metadata={"help": "Split read when train_source is a Hub dataset or a folder."}
    )
    domain: str | None = field(
        default=None,
        metadata={"help": "Keep only the Ding pairs with this subject label, e.g. 'med.'; other sources ignore it."},
    )
    eval_sources: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation sets as NAME=SOURCE entries, SOURCE as for train_source; each is scored during "
            "training (eval_NAME_bleu, eval_NAME_chrf, ...) and at the end."
        },
    )
    eval_split: str = field(
        default="validation", metadata={"help": "Split read from eval_sources that are Hub datasets or folders."}
    )
    eval_holdout: int = field(
        default=0,
        metadata={
            "help": "Pairs of train_source held out from training as the evaluation set eval_holdout_name "
            "(no held-out source sentence is trained on); 0 holds out none."
        },
    )
    eval_holdout_name: str = field(default="in_domain", metadata={"help": "Name of the held-out evaluation set."})
    general_eval_sets: list[str] = field(
        default_factory=lambda: ["general"],
        metadata={
            "help": "Evaluation sets that are held-out general domain: with one among the sets, the final "
            "evaluation compares the run with the starting model (forgetting_report.json)."
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Read only the first N pairs of train_source (before cleaning and hold-out), for trials."},
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N pairs of each evaluation set only."}
    )

    # Parameters that control cleaning and tokenisation
    clean_max_length: int = field(
        default=1024, metadata={"help": "Drop training pairs with a side longer than this many characters."}
    )
    clean_max_length_ratio: float = field(
        default=9.0,
        metadata={"help": "Drop training pairs whose longer side is more than this many times the shorter one."},
    )
    max_source_length: int = field(default=128, metadata={"help": "Sources are truncated to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "Targets are truncated to this many tokens."})
    source_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every source sentence. Default: T5's task prefix ('translate English to "
            "German: ') for T5 models, nothing for others; '' turns it off."
        },
    )

    # Parameters that control the final model
    average_last_checkpoints: int = field(
        default=0,
        metadata={
            "help": "After training, the final model is the mean of the weights of the last N complete checkpoints "
            "(the model of the last update is kept in output_dir/last); 0 keeps the last update's model."
        },
    )

    interpolate_after: list[float] = field(
        default_factory=list,
        metadata={
            "help": "After training, one model per value A between 0 and 1, (1 - A) * start + A * end, in "
            "output_dir/interpolated/alpha-A, each scored on the evaluation sets (hf-l2mt interpolate; "
            "docs/interpolation.md)."
        },
    )

    def __post_init__(self):
        for flag, example in (
            ("model_name_or_path", "Helsinki-NLP/opus-mt-en-de or a local directory"),
            ("src_lang", "en"), ("tgt_lang", "de"), ("train_source", "hub:wmt/wmt16:de-en or data/train.tsv"),
        ):
            if not getattr(self, flag):
                raise ValueError(f"{flag}: not set; give --{flag} (for example {example})")
        for flag in ("eval_holdout", "max_train_samples", "max_eval_samples", "clean_max_length",
                     "average_last_checkpoints"):
            value, least = getattr(self, flag), 0 if flag in ("eval_holdout", "average_last_checkpoints") else 1
            if value is not None and value < least:
                raise ValueError(f"{flag}: got {value}; accepted: an integer >= {least}")
        if not self.eval_sets():
            raise ValueError("eval_sources is empty and eval_holdout is 0: give at least one evaluation set")

    def eval_sets(self) -> dict[str, str | None]:
        """Evaluation set name → source; the held-out set has source ``None``."""
        sets = {self.eval_holdout_name: None} if self.eval_holdout else {}
        for entry in self.eval_sources:
            name, sep, source = entry.partition("=")
            if not sep or not source or not _EVAL_SET_NAME.fullmatch(name):
                raise ValueError(
                    f"eval_sources: {entry!r} is not NAME=SOURCE; NAME takes letters, digits, '_' and '-' "
                    "(example: general=hub:wmt/wmt16:de-en)"
                )
            if name in sets:
                raise ValueError(f"eval_sources: the name {name!r} is given twice (eval_holdout_name counts too)")
            sets[name] = source
        return sets


def recipe_layers(config: dict) -> dict[str, dict]:
    """The settings under the command line and ``--config FILE``, earliest first: ``RUNNER_DEFAULTS``, then ``config``."""
    return {"hf_l2mt.apps.recipes.arguments.RUNNER_DEFAULTS": RUNNER_DEFAULTS, "the recipe's CONFIG": config}
