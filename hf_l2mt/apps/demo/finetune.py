"""Step 4: a copy of the base fine-tuned on the new domain only, at one L2-SP strength."""

import copy

from .arguments import DemoArguments
from .training import train


def finetune(base, tokenizer, train_set, lam: float, args: DemoArguments):
    """A fine-tuned copy of ``base``; the base itself, the anchor of L2-SP, stays as it was."""
    model = copy.deepcopy(base)
    train(model, tokenizer, train_set, args.finetune_steps, args.seed, f"fine-tuning, lambda={lam:g}",
          lr_scheduler_type="constant", l2sp_lambda=lam)
    return model
