"""Checks of the LoRA fields of ``L2MTTrainingArguments`` (``adapter``, ``lora_*``), kept beside the dataclass
so that it stays a list of fields."""

import math

from .lora import require_peft

ADAPTERS = ("none", "lora")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_lora_arguments(args) -> None:
    """Raise ``ValueError`` naming the flag, the bad value and what is accepted."""
    if isinstance(args.lora_r, bool) or not isinstance(args.lora_r, int) or args.lora_r < 1:
        raise ValueError(f"lora_r: got {args.lora_r!r}; accepted: an integer >= 1")
    if not _finite(args.lora_alpha) or args.lora_alpha <= 0:
        raise ValueError(f"lora_alpha: got {args.lora_alpha!r}; accepted: a finite number > 0")
    if not _finite(args.lora_dropout) or not 0 <= args.lora_dropout < 1:
        raise ValueError(f"lora_dropout: got {args.lora_dropout!r}; accepted: a number in [0, 1)")
    if not _finite(args.lora_l2sp_lambda) or args.lora_l2sp_lambda < 0:
        raise ValueError(f"lora_l2sp_lambda: got {args.lora_l2sp_lambda!r}; accepted: a finite number >= 0")
    if args.adapter != "lora":
        used = [flag for flag, on in (
            ("lora_l2sp_lambda", args.lora_l2sp_lambda > 0), ("lora_save_merged", args.lora_save_merged),
            ("lora_target_modules", bool(args.lora_target_modules)),
            ("lora_modules_to_save", bool(args.lora_modules_to_save)),
        ) if on]
        if used:
            raise ValueError(f"{used[0]}: set, but adapter is {args.adapter!r}; accepted: adapter='lora' with it, "
                             f"or leave {used[0]} at its default")
        return
    require_peft("adapter", "'lora'")
    if args.uses_l2sp:
        # The base weights are frozen, so L2-SP on the trainable parameters would pull A (random at the start)
        # back to its random start instead of pulling the model toward its pretrained weights.
        raise ValueError(
            f"l2sp_lambda: got {args.l2sp_lambda!r} (l2sp_overrides {args.l2sp_overrides}) with adapter='lora'; "
            "the pretrained weights are frozen and L2-SP on the adapter matrices A and B would pull them toward "
            "their random start, not the model toward its pretrained weights. Accepted: l2sp_lambda=0 with "
            "lora_l2sp_lambda > 0, which penalises (lambda/2)*||s*B*A||^2, the distance of the merged weights "
            "to the pretrained ones"
        )
