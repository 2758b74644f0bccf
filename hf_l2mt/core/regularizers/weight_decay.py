"""Weight decay (L2 towards zero) as pure in-place tensor functions: the coupled gradient and the decoupled step.

Coupled (classic L2): the gradient of (wd/2)·‖θ‖² is added to the gradient, ``grad += wd·θ``, before the
optimizer sees it. Decoupled (Loshchilov & Hutter 2019, AdamW): the weights shrink apart from the
gradient, ``θ ← (1 − lr·wd)·θ``. Both use PyTorch's multi-tensor (``torch._foreach_*``) kernels.
``WeightDecayBy`` names who applies a group's decay: the optimizer, or the trainer's hook with one of these.
"""

from enum import Enum

import torch


class WeightDecayBy(Enum):
    """Who applies a group's weight decay in each update."""

    OPTIMIZER = "the optimizer (AdamW's own decoupled decay)"
    GRADIENT = "the pre-step hook, adding wd·θ to the gradient (coupled)"
    PRE_STEP_SHRINK = "the pre-step hook, shrinking θ by lr·wd (decoupled, optimizer without its own)"


def scale_toward_zero_(params: list[torch.Tensor], fraction: float) -> None:
    """Decoupled weight decay: ``p ← (1 − fraction) · p`` with ``fraction = lr_t · wd_t``, as AdamW does."""
    if fraction == 0.0 or not params:
        return
    with torch.no_grad():
        torch._foreach_mul_([p.detach() for p in params], 1.0 - fraction)


def add_weight_decay_grad_(params: list[torch.Tensor], strength: float) -> None:
    """Coupled weight decay (classic L2 to zero): ``p.grad += strength · p``, as
    ``torch.optim.Adam(weight_decay=strength)`` does before its moment estimates."""
    if strength == 0.0:
        return
    with_grad = [p for p in params if p.grad is not None]
    if with_grad:
        torch._foreach_add_([p.grad for p in with_grad], [p.detach() for p in with_grad], alpha=strength)
