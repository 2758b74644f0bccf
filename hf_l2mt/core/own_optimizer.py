"""When a ready-made optimizer (``optimizers=(optimizer, scheduler)``) can be used.

``L2MTTrainer`` applies its regularizers through the parameter groups it builds and through hooks on the
optimizer it creates. A ready-made optimizer has neither, so it is accepted only when no setting needs
them, which is the case with every regularizer off; its own groups then decide any weight decay, as with
transformers' ``Trainer``.
"""

from .training_args import L2MTTrainingArguments


def settings_needing_own_optimizer(args: L2MTTrainingArguments) -> list[str]:
    """The settings of ``args`` that need the optimizer ``L2MTTrainer`` builds (empty: any optimizer will do)."""
    needs = {
        f"l2sp_lambda={args.l2sp_lambda:g}": args.l2sp_lambda > 0,
        "l2sp_overrides": bool(args.l2sp_overrides),
        f"weight_decay={args.weight_decay:g}": args.weight_decay > 0,
        "weight_decay_overrides": bool(args.weight_decay_overrides),
        f"kl_lambda={args.kl_lambda:g}": args.kl_lambda > 0,
        f"l1_lambda={args.l1_lambda:g}": args.l1_lambda > 0,
    }
    return [setting for setting, needed in needs.items() if needed]
