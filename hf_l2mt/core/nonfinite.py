"""What a run does when its training loss, L2-SP penalty or weights become NaN or infinite.

One NaN gradient turns every weight into NaN at the next optimizer step, and a checkpoint saved
after that is lost work that looks like a result. So a non-finite loss is caught before the
optimizer step of its update: ``nonfinite_loss="stop"`` raises ``NonFiniteLossError``, ``"skip"``
drops the whole update (every micro-batch of it) and counts it. A non-finite penalty or weights
then stop the run (no batch is to blame), and no checkpoint is written with non-finite weights.
``"continue"`` checks nothing and trains on, as transformers' ``Trainer`` does: the update is applied, NaN
and all, the logged ``loss`` leaves non-finite values out while ``logging_nan_inf_filter`` is on, and
checkpoints are written whatever the weights hold.

Judging a loss on the host waits for the device at every update. With ``host_check_steps`` N > 1,
``DeviceNonFiniteGuard`` judges it on the device instead: the fused optimizer takes the verdict as
``found_inf`` and leaves weights, moments and step count as they were (the mechanism torch.optim's fused
AdamW / Adam / SGD have for fp16 overflows), and the host reads the verdicts once every N updates. The
weights end as a check every update would leave them: "stop" keeps skipping from the first bad update
until the read, then raises naming it; "skip" skips each bad update alone and counts it when read.
"""

import logging
import math

import torch

from .regularizers.weight_decay import WeightDecayBy

logger = logging.getLogger("hf_l2mt")

NONFINITE_ACTIONS = ("stop", "skip", "continue")
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


def loss_problem(losses: torch.Tensor) -> str:
    """What was wrong with an update whose micro-batch ``losses`` (or another process's) were not all finite."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        return f"the training loss is {float(losses[bad][0])}"
    return "the training loss of another process is not finite"


class NonFiniteGuard:
    """Collects the micro-batch losses of one update and judges them at its last micro-batch.

    With ``action="continue"`` it collects and judges nothing: no host read, no collective."""

    def __init__(self, action: str):
        self.action = action
        self.checks = action != "continue"
        self.skipped = 0
        self._losses: list[torch.Tensor] = []

    def observe(self, loss: torch.Tensor) -> None:
        if self.checks:
            self._losses.append(loss.detach().reshape(()))

    def update_is_skipped(self, step: int, count_across_processes=None) -> bool:
        """At the last micro-batch of update ``step``: ``True`` to drop it; raises in ``"stop"`` mode.

        ``count_across_processes`` sums a one-element tensor over processes, so that every
        process stops or skips together (their gradients are averaged together).
        """
        if not self.checks:
            return False
        losses, self._losses = torch.stack(self._losses), []
        bad = ~torch.isfinite(losses)
        count = bad.sum().float().reshape(1)
        if count_across_processes is not None:
            count = count_across_processes(count)
        if not bool(count.item()):
            return False
        problem = loss_problem(losses)
        if self.action == "stop":
            raise NonFiniteLossError(stop_message(step, f"{problem} (the update was not applied)"))
        self.skipped += 1
        logger.warning("step %d: %s; update skipped (nonfinite_loss='skip')", step, problem)
        return True

    def check(self) -> None:
        """Nothing to read: every update was judged at its last micro-batch."""

    def check_penalty(self, step: int, penalty: float) -> None:
        if self.checks and not math.isfinite(penalty):
            raise NonFiniteLossError(stop_message(step, f"the L2-SP penalty is {penalty}"))

    def check_weights(self, step: int, model: torch.nn.Module) -> None:
        """Before a checkpoint: raise if a parameter holds NaN or infinite values."""
        bad = first_nonfinite_parameter(model) if self.checks else None
        if bad is not None:
            raise NonFiniteLossError(
                f"step {step}: parameter {bad!r} holds NaN or infinite values; no checkpoint was written, and the "
                "earlier ones in output_dir are left as they are"
            )


class DeviceNonFiniteGuard(NonFiniteGuard):
    """``NonFiniteGuard`` for ``host_check_steps`` > 1: the verdict stays on the device until ``check``."""

    def __init__(self, action: str):
        super().__init__(action)
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (step, verdict, its losses)
        self._stopping: torch.Tensor | None = None  # "stop": up from the first bad update on

    def skip_flag(self, step: int, count_across_processes=None) -> torch.Tensor:
        """At the last micro-batch of update ``step``: a 0-d float tensor on the device, 1 when the optimizer
        must not apply this update (its ``found_inf``). No host read."""
        losses, self._losses = torch.stack(self._losses), []
        count = (~torch.isfinite(losses)).sum().float().reshape(1)
        if count_across_processes is not None:
            count = count_across_processes(count)
        bad = (count > 0).float().reshape(())
        self._pending.append((step, bad, losses))
        if self.action == "stop":
            self._stopping = bad if self._stopping is None else torch.maximum(self._stopping, bad)
            return self._stopping
        return bad

    def check(self) -> None:
        """Read the verdicts since the last check (one host read): in "stop" mode raise for the first bad
        update, in "skip" mode count and report each."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        verdicts = torch.stack([bad for _, bad, _ in pending]).tolist()
        for index, ((step, _, losses), bad) in enumerate(zip(pending, verdicts)):
            if not bad:
                continue
            problem = loss_problem(losses)
            if self.action == "stop":
                later = len(pending) - 1 - index
                note = "the update was not applied" + (f", nor the {later} after it before this check" if later else "")
                raise NonFiniteLossError(stop_message(step, f"{problem} ({note})"))
            self.skipped += 1
            logger.warning("step %d: %s; update skipped (nonfinite_loss='skip')", step, problem)


def device_skip_blockers(args, optimizer: torch.optim.Optimizer, groups: list) -> list[str]:
    """The settings that keep ``DeviceNonFiniteGuard`` from skipping an update on the device (empty: none):
    an optimizer that takes no ``found_inf``, fp16's own skipping, and what changes the weights outside the
    optimizer's step and cannot be told on the device to leave a skipped update alone (decoupled L2-SP can).

    ``groups``: the trainer's ``RegularizedGroup`` records (empty for a ready-made optimizer)."""
    blockers = []
    if not getattr(optimizer, "_step_supports_amp_scaling", False):
        optim = getattr(args.optim, "value", args.optim)  # transformers' OptimizerNames, or a string
        blockers.append(
            f"optim={optim!r} ({type(optimizer).__name__} without found_inf; torch's fused AdamW, Adam and SGD "
            "take it: optim='adamw_torch_fused', the default)"
        )
    if args.fp16:
        blockers.append("fp16 (its GradScaler skips updates itself)")
    if args.l1_lambda > 0:
        blockers.append(f"l1_lambda={args.l1_lambda:g} (its soft threshold runs after the optimizer's step)")
    if any(g.weight_decay_by is WeightDecayBy.PRE_STEP_SHRINK and g.weight_decay > 0 for g in groups):
        blockers.append(f"decoupled weight decay with {type(optimizer).__name__}, which has none of its own")
    return blockers
