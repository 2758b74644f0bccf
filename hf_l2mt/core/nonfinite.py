"""What a run does when its training loss, L2-SP penalty or weights become NaN or infinite.

One NaN gradient turns every weight into NaN at the next optimizer step, and a checkpoint saved
after that is lost work that looks like a result. So a non-finite loss is caught before the
optimizer step of its update: ``nonfinite_loss="stop"`` raises ``NonFiniteLossError``, ``"skip"``
drops the whole update (every micro-batch of it) and counts it. A non-finite penalty or weights
always stop the run (no batch is to blame), and no checkpoint is written with non-finite weights.
"""

import logging
import math

import torch

logger = logging.getLogger("hf_l2mt")

NONFINITE_ACTIONS = ("stop", "skip")
SKIPPED_METRIC = "nonfinite_skipped_updates"


class NonFiniteLossError(FloatingPointError):
    """Training stopped at an update whose loss, L2-SP penalty or weights were NaN or infinite."""


def first_nonfinite_parameter(model: torch.nn.Module) -> str | None:
    """The name of the first parameter holding a NaN or an infinity, or ``None``."""
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            return name
    return None


def stop_message(step: int, problem: str) -> str:
    return (
        f"step {step}: {problem}; training stopped, and the checkpoints already in output_dir are left "
        "as they are. Resume from the latest one with a lower learning_rate or max_grad_norm > 0, look at "
        "the data of this step, or set nonfinite_loss='skip' to drop such updates"
    )


class NonFiniteGuard:
    """Collects the micro-batch losses of one update and judges them at its last micro-batch."""

    def __init__(self, action: str):
        self.action = action
        self.skipped = 0
        self._losses: list[torch.Tensor] = []

    def observe(self, loss: torch.Tensor) -> None:
        self._losses.append(loss.detach().reshape(()))

    def update_is_skipped(self, step: int, count_across_processes=None) -> bool:
        """At the last micro-batch of update ``step``: ``True`` to drop it; raises in ``"stop"`` mode.

        ``count_across_processes`` sums a one-element tensor over processes, so that every
        process stops or skips together (their gradients are averaged together).
        """
        losses, self._losses = torch.stack(self._losses), []
        bad = ~torch.isfinite(losses)
        count = bad.sum().float().reshape(1)
        if count_across_processes is not None:
            count = count_across_processes(count)
        if not bool(count.item()):
            return False
        if bool(bad.any()):
            problem = f"the training loss is {float(losses[bad][0])}"
        else:
            problem = "the training loss of another process is not finite"
        if self.action == "stop":
            raise NonFiniteLossError(stop_message(step, f"{problem} (the update was not applied)"))
        self.skipped += 1
        logger.warning("step %d: %s; update skipped (nonfinite_loss='skip')", step, problem)
        return True

    def check_penalty(self, step: int, penalty: float) -> None:
        if not math.isfinite(penalty):
            raise NonFiniteLossError(stop_message(step, f"the L2-SP penalty is {penalty}"))
