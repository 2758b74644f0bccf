"""`L2MTTrainingArguments`: Seq2SeqTrainingArguments plus the regularization settings."""

import math
import re
from dataclasses import dataclass, field

from transformers import Seq2SeqTrainingArguments

from .l2sp import ANCHOR_DTYPES
from .preflight import check_output_dir
from .schedules import SCHEDULES

MODES = ("decoupled", "coupled")


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


@dataclass
class L2MTTrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with coupled/decoupled weight decay, L2-SP and their schedules.

    With every field below at its default the trainer trains like a plain ``Seq2SeqTrainer``.
    ``docs/regularization.md`` gives the update equations.
    """

    # Parameters that control weight decay (L2 towards zero); its strength is `weight_decay`.
    weight_decay_mode: str = field(
        default="decoupled",
        metadata={
            "help": "How `weight_decay` is applied: 'decoupled' (AdamW: the optimizer shrinks the weights) or "
            "'coupled' (classic L2: weight_decay*theta is added to the gradient before the optimizer, exactly "
            "as torch.optim.Adam(weight_decay=...) does)."
        },
    )
    weight_decay_schedule: str = field(
        default="constant",
        metadata={"help": f"Schedule of the weight-decay strength over updates: one of {', '.join(SCHEDULES)}."},
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
            "help": "'coupled': lambda*(theta - theta_0) is added to the gradient (same as adding the penalty to "
            "the loss, gradient clipping included, without an autograd graph). 'decoupled': before each update "
            "theta <- theta - lr*lambda*(theta - theta_0), the AdamW analogue towards the anchor."
        },
    )
    l2sp_schedule: str = field(
        default="constant",
        metadata={"help": f"Schedule of the L2-SP strength over updates: one of {', '.join(SCHEDULES)}."},
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
        metadata={"help": f"Precision in which the anchor is kept: one of {', '.join(ANCHOR_DTYPES)} "
        "(bfloat16 halves its memory)."},
    )

    def __post_init__(self):
        super().__post_init__()
        _one_of("weight_decay_mode", self.weight_decay_mode, MODES)
        _one_of("l2sp_mode", self.l2sp_mode, MODES)
        _one_of("weight_decay_schedule", self.weight_decay_schedule, SCHEDULES)
        _one_of("l2sp_schedule", self.l2sp_schedule, SCHEDULES)
        _one_of("anchor_dtype", self.anchor_dtype, tuple(ANCHOR_DTYPES))
        self.l2sp_lambda = _non_negative("l2sp_lambda", self.l2sp_lambda)
        self.weight_decay = _non_negative("weight_decay", self.weight_decay)
        for flag in ("weight_decay_warmup_steps", "l2sp_warmup_steps"):
            value = getattr(self, flag)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{flag}: got {value!r}; accepted: an integer >= 0")
        for flag in ("weight_decay_sigmoid_k", "l2sp_sigmoid_k"):
            value = getattr(self, flag)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{flag}: got {value!r}; accepted: a finite number > 0, or unset")
        for flag in ("weight_decay_sigmoid_t0", "l2sp_sigmoid_t0"):
            value = getattr(self, flag)
            if value is not None:
                _non_negative(flag, value)
        if self.l2sp_include_regex is not None:
            try:
                re.compile(self.l2sp_include_regex)
            except re.error as err:
                raise ValueError(
                    f"l2sp_include_regex: {self.l2sp_include_regex!r} is not a valid regular expression ({err})"
                ) from None
        parse_overrides("weight_decay_overrides", self.weight_decay_overrides)
        parse_overrides("l2sp_overrides", self.l2sp_overrides)
        check_output_dir(self.output_dir)

    @property
    def uses_l2sp(self) -> bool:
        """True when any parameter can get a non-zero L2-SP strength, so an anchor is needed."""
        return self.l2sp_lambda > 0 or any(v > 0 for _, v in parse_overrides("l2sp_overrides", self.l2sp_overrides))
