"""`L2MTTrainingArguments`: Seq2SeqTrainingArguments plus the regularization settings."""

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field

from transformers import Seq2SeqTrainingArguments

from .anchor import ANCHOR_DTYPES
from .fisher import FISHER_NORMALIZATIONS
from .lora_arguments import ADAPTERS, check_lora_arguments
from .nonfinite import NONFINITE_ACTIONS
from .preflight import check_output_dir
from .schedules import SCHEDULED_TERMS, SCHEDULES

MODES = ("decoupled", "coupled")
L1_TARGETS = ("anchor", "zero")


def parse_overrides(flag: str, entries: list[str]) -> list[tuple[re.Pattern, float]]:
    """Parse ``["REGEX=VALUE", ...]`` into compiled patterns and non-negative floats."""
    parsed = []
    for entry in entries:
        pattern, sep, value = entry.rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"{flag}: entry {entry!r} is not of the form REGEX=VALUE (e.g. 'decoder\\.=0.5')")
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{flag}: {pattern!r} is not a valid regular expression ({err})") from None
        parsed.append((compiled, _non_negative(flag, value, entry=entry)))
    return parsed


def _non_negative(flag: str, value, entry: str | None = None) -> float:
    where = f" in {entry!r}" if entry is not None else ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{flag}: got {value!r}{where}; accepted: a finite number >= 0")
    return number


def _one_of(flag: str, value, accepted) -> None:
    if value not in accepted:
        raise ValueError(f"{flag}: got {value!r}; accepted: {', '.join(map(repr, accepted))}")


def added_fields(args_class: type) -> list[dataclasses.Field]:
    """The fields ``args_class`` (``L2MTTrainingArguments`` or a subclass) adds over ``Seq2SeqTrainingArguments``,
    in declaration order."""
    inherited = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    return [f for f in dataclasses.fields(args_class) if f.name not in inherited]


@dataclass
class L2MTTrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with coupled/decoupled weight decay, L2-SP and their schedules.

    With every field below at its default the trainer trains like a plain ``Seq2SeqTrainer``.
    ``docs/regularization.md`` gives the update equations.
    """

    # Parameters that control resuming (hf_l2mt.core.checkpoints). transformers' own field, with the values
    # L2MTTrainer.train takes; as in transformers, a script passes it to train(), as the recipes do.
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Resume from a checkpoint: a checkpoint-N folder; 'latest' for the newest complete one in "
            "output_dir (an error if there is none); 'auto' for that one or, when there is none, a start from the "
            "beginning, so that a job restarted with the same command (a SLURM requeue) goes on where it stopped."
        },
    )

    # Batching by tokens instead of sentences (hf_l2mt.core.batching).
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": "Token-budget training batches: each batch holds as many pairs as fit in this many padded "
            "positions (pairs x the longest source or target side), drawn from length-sorted buckets; replaces "
            "per_device_train_batch_size for training (evaluation still uses per_device_eval_batch_size). "
            "Unset: a fixed number of pairs per batch."
        },
    )

    # Parameters that control what a non-finite (NaN or infinite) training loss does.
    nonfinite_loss: str = field(
        default="stop",
        metadata={
            "choices": list(NONFINITE_ACTIONS),
            "help": "What a NaN or infinite training loss does: 'stop' (raise an error naming the update; the "
            "checkpoints already written stay as they are), 'skip' (drop that update: no optimizer step, "
            "counted in the logged nonfinite_skipped_updates) or 'continue' (check nothing and train on as "
            "transformers' Trainer does: the update is applied, NaN and all, and logging_nan_inf_filter keeps it "
            "out of the logged loss)."
        },
    )
    host_check_steps: int = field(
        default=1,
        metadata={
            "help": "Every how many updates the host reads back the checks it cannot make without waiting for "
            "the device: whether a loss was NaN or infinite, and (with several processes) whether a process got a "
            "stop signal. 1 (default): every update. N > 1: a non-finite update is skipped on the device by the "
            "fused optimizer (optim='adamw_torch_fused', the default) and reported within N updates, with the "
            "weights as 'stop' or 'skip' would leave them; a stop signal takes effect within N updates."
        },
    )

    # Parameters that control weight decay (L2 towards zero); its strength is `weight_decay`.
    weight_decay_mode: str = field(
        default="decoupled",
        metadata={
            "choices": list(MODES),
            "help": "How `weight_decay` is applied: 'decoupled' (AdamW: the optimizer shrinks the weights) or "
            "'coupled' (classic L2: weight_decay*theta is added to the gradient before the optimizer, exactly "
            "as torch.optim.Adam(weight_decay=...) does)."
        },
    )
    weight_decay_schedule: str = field(
        default="constant",
        metadata={"choices": list(SCHEDULES), "help": "Schedule of the weight-decay strength over updates."},
    )
    weight_decay_warmup_steps: int = field(
        default=0, metadata={"help": "Updates over which the weight-decay strength ramps up linearly from 0."}
    )
    weight_decay_sigmoid_k: float | None = field(
        default=None,
        metadata={"help": "Steepness per update of the 'sigmoid' weight-decay schedule (default: 10/updates)."},
    )
    weight_decay_sigmoid_t0: float | None = field(
        default=None,
        metadata={"help": "Update at which the 'sigmoid' weight-decay schedule passes 0.5 (default: half-way)."},
    )
    decay_embeddings: bool = field(
        default=True,
        metadata={"help": "Apply weight decay to embedding matrices (the transformers default). Biases and "
        "norm weights never get weight decay."},
    )
    weight_decay_overrides: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Per-parameter weight decay as REGEX=VALUE entries, matched with re.search against "
            "parameter names; the first match wins. Example: 'lm_head=0.0'. A regex that matches no "
            "trainable parameter is an error."
        },
    )

    # Parameters that control L2-SP, the penalty (lambda/2)*||theta - theta_0||^2 towards the anchor theta_0.
    l2sp_lambda: float = field(
        default=0.0,
        metadata={"help": "Strength of the L2-SP penalty towards the starting weights (the anchor). 0 turns it off."},
    )
    l2sp_mode: str = field(
        default="coupled",
        metadata={
            "choices": list(MODES),
            "help": "'coupled': lambda*(theta - theta_0) is added to the gradient (same as adding the penalty to "
            "the loss, gradient clipping included, without an autograd graph). 'decoupled': before each update "
            "theta <- theta - lr*lambda*(theta - theta_0), the AdamW analogue towards the anchor."
        },
    )
    l2sp_schedule: str = field(
        default="constant",
        metadata={"choices": list(SCHEDULES), "help": "Schedule of the L2-SP strength over updates."},
    )
    l2sp_warmup_steps: int = field(
        default=0, metadata={"help": "Updates over which the L2-SP strength ramps up linearly from 0."}
    )
    l2sp_sigmoid_k: float | None = field(
        default=None,
        metadata={"help": "Steepness per update of the 'sigmoid' L2-SP schedule (RecAdam's k; default: 10/updates)."},
    )
    l2sp_sigmoid_t0: float | None = field(
        default=None,
        metadata={"help": "Update at which the 'sigmoid' L2-SP schedule passes 0.5 (RecAdam's t0; default: half-way)."},
    )
    l2sp_include_regex: str | None = field(
        default=None,
        metadata={"help": "Only parameters whose name matches this regex (re.search) get L2-SP. Default: all "
        "trainable parameters, biases, norms and embeddings included."},
    )
    l2sp_overrides: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Per-parameter L2-SP strength as REGEX=VALUE entries, matched with re.search against "
            "parameter names; the first match wins. Example: 'encoder\\.=1.0' 'decoder\\.=0.1'. A regex that "
            "matches no trainable parameter is an error."
        },
    )
    anchor_dtype: str = field(
        default="float32",
        metadata={"choices": list(ANCHOR_DTYPES), "help": "Precision in which the anchor is kept (bfloat16 halves "
        "its memory)."},
    )
    l2sp_fisher_path: str | None = field(
        default=None,
        metadata={"help": "EWC: a safetensors file of the diagonal Fisher of the base model (made by "
        "`hf-l2mt fisher`). Its values F weight the L2-SP penalty per coordinate: (lambda/2)*sum F*(theta - "
        "theta_0)^2. Needs l2sp_lambda > 0 (or l2sp_overrides)."},
    )
    l2sp_fisher_normalize: str = field(
        default="mean",
        metadata={"choices": list(FISHER_NORMALIZATIONS), "help": "'mean': F is divided by its mean over the regularized coordinates, so lambda keeps "
        "the scale of plain L2-SP; 'none': F is used as stored."},
    )

    # Parameters that control the KL term lambda_kl * KL(p_base || p_theta) per target token.
    kl_lambda: float = field(
        default=0.0,
        metadata={"help": "Strength of the KL divergence from the base model's (the anchor's) next-token "
        "distribution to the fine-tuned model's, averaged over target tokens. 0 turns it off."},
    )
    kl_temperature: float = field(
        default=1.0,
        metadata={"help": "Temperature T of both distributions in the KL term; the term is multiplied by T^2."},
    )
    kl_schedule: str = field(
        default="constant",
        metadata={"choices": list(SCHEDULES), "help": "Schedule of the KL strength over updates."},
    )
    kl_warmup_steps: int = field(
        default=0, metadata={"help": "Updates over which the KL strength ramps up linearly from 0."}
    )
    kl_sigmoid_k: float | None = field(
        default=None,
        metadata={"help": "Steepness per update of the 'sigmoid' KL schedule (default: 10/updates)."},
    )
    kl_sigmoid_t0: float | None = field(
        default=None,
        metadata={"help": "Update at which the 'sigmoid' KL schedule passes 0.5 (default: half-way)."},
    )

    # Parameters that control L1, applied as a soft-threshold step after each update.
    l1_lambda: float = field(
        default=0.0,
        metadata={"help": "Strength of the L1 penalty lambda_1*sum|theta - c|, applied after each optimizer step "
        "as theta <- c + sign(theta - c)*max(|theta - c| - lr*lambda_1, 0). 0 turns it off."},
    )
    l1_target: str = field(
        default="anchor",
        metadata={"choices": list(L1_TARGETS), "help": "c of the L1 penalty: 'anchor' (theta_0, every trainable parameter: few weights change) "
        "or 'zero' (the weights that get weight decay: sparse weights)."},
    )

    # Parameters that control LoRA adapters (hf_l2mt.core.lora, docs/lora.md; needs the `lora` extra).
    adapter: str = field(
        default="none",
        metadata={"choices": list(ADAPTERS), "help": "'none': train the model's own weights. 'lora': freeze them "
        "and train LoRA adapters (PEFT) on lora_target_modules; checkpoints and the final model are adapters."},
    )
    lora_r: int = field(default=8, metadata={"help": "Rank r of each LoRA update B·A (B: out x r, A: r x in)."})
    lora_alpha: float = field(
        default=16.0, metadata={"help": "LoRA's alpha: the update is scaled by s = lora_alpha / lora_r."}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the input of each LoRA update."})
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata={"help": "Layers that get adapters, matched as suffixes of module names (e.g. 'q_proj' 'v_proj'). "
        "Default: every attention projection and feed-forward layer of Marian, MBart, BART, M2M100/NLLB, T5 and "
        "mT5 (hf_l2mt.core.lora.DEFAULT_TARGET_MODULES)."},
    )
    lora_modules_to_save: list[str] = field(
        default_factory=list,
        metadata={"help": "Modules trained in full beside the adapters and saved with them (PEFT's "
        "modules_to_save), e.g. 'lm_head'. Default: none, only the adapters train."},
    )
    lora_l2sp_lambda: float = field(
        default=0.0,
        metadata={"help": "L2-SP for LoRA, in the merged weights: (lambda/2)*sum ||(lora_alpha/lora_r)*B*A||^2 "
        "over the adapted matrices, the distance to the pretrained weights; added to the gradients of A and B "
        "after the last micro-batch (coupled). 0 turns it off."},
    )
    lora_save_merged: bool = field(
        default=False,
        metadata={"help": "At the end of training, also write the merged model W + s*B*A to output_dir/merged, "
        "loadable with AutoModelForSeq2SeqLM without PEFT."},
    )

    def __post_init__(self):
        super().__post_init__()
        # The accepted values are the ones the field's metadata gives argparse (``--help`` lists them).
        for option in added_fields(type(self)):
            if "choices" in option.metadata:
                _one_of(option.name, getattr(self, option.name), option.metadata["choices"])
        self.l2sp_lambda = _non_negative("l2sp_lambda", self.l2sp_lambda)
        self.weight_decay = _non_negative("weight_decay", self.weight_decay)
        self.kl_lambda = _non_negative("kl_lambda", self.kl_lambda)
        self.l1_lambda = _non_negative("l1_lambda", self.l1_lambda)
        if not (isinstance(self.kl_temperature, (int, float)) and math.isfinite(self.kl_temperature)
                and self.kl_temperature > 0):
            raise ValueError(f"kl_temperature: got {self.kl_temperature!r}; accepted: a finite number > 0")
        for term in SCHEDULED_TERMS:
            warmup, k, t0 = (getattr(self, f"{term}_{name}") for name in ("warmup_steps", "sigmoid_k", "sigmoid_t0"))
            if not isinstance(warmup, int) or warmup < 0:
                raise ValueError(f"{term}_warmup_steps: got {warmup!r}; accepted: an integer >= 0")
            if k is not None and not (math.isfinite(k) and k > 0):
                raise ValueError(f"{term}_sigmoid_k: got {k!r}; accepted: a finite number > 0, or unset")
            if t0 is not None:
                _non_negative(f"{term}_sigmoid_t0", t0)
        if self.l2sp_include_regex is not None:
            try:
                re.compile(self.l2sp_include_regex)
            except re.error as err:
                raise ValueError(
                    f"l2sp_include_regex: {self.l2sp_include_regex!r} is not a valid regular expression ({err})"
                ) from None
        if isinstance(self.host_check_steps, bool) or not isinstance(self.host_check_steps, int) or (
            self.host_check_steps < 1
        ):
            raise ValueError(f"host_check_steps: got {self.host_check_steps!r}; accepted: an integer >= 1")
        if self.max_tokens_per_batch is not None and (
            isinstance(self.max_tokens_per_batch, bool) or not isinstance(self.max_tokens_per_batch, int)
            or self.max_tokens_per_batch < 1
        ):
            raise ValueError(
                f"max_tokens_per_batch: got {self.max_tokens_per_batch!r}; accepted: an integer >= 1, or unset"
            )
        parse_overrides("weight_decay_overrides", self.weight_decay_overrides)
        parse_overrides("l2sp_overrides", self.l2sp_overrides)
        if self.l2sp_fisher_path is not None:
            if not self.uses_l2sp:
                raise ValueError(
                    f"l2sp_fisher_path: {self.l2sp_fisher_path!r} is set but L2-SP is off; the Fisher weights the "
                    "L2-SP penalty, so set l2sp_lambda > 0 (or l2sp_overrides), or drop l2sp_fisher_path"
                )
            if not os.path.isfile(self.l2sp_fisher_path):
                raise ValueError(
                    f"l2sp_fisher_path: {self.l2sp_fisher_path!r} does not exist; create it with hf-l2mt fisher "
                    "--model_name_or_path BASE --source_file ... --target_file ... --output FILE"
                )
        check_lora_arguments(self)
        check_output_dir(self.output_dir)

    def uses(self, term: str) -> bool:
        """True when the scheduled ``term`` (one of ``SCHEDULED_TERMS``) has a non-zero strength somewhere."""
        in_use = {
            "weight_decay": self.weight_decay > 0 or bool(self.weight_decay_overrides),
            "l2sp": self.uses_l2sp,
            "kl": self.kl_lambda > 0,
        }
        return in_use[term]

    @property
    def uses_l2sp(self) -> bool:
        """True when any parameter can get a non-zero L2-SP strength, so an anchor is needed."""
        return self.l2sp_lambda > 0 or any(v > 0 for _, v in parse_overrides("l2sp_overrides", self.l2sp_overrides))
