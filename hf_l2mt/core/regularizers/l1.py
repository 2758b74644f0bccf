"""L1 towards zero or towards the anchor, applied as a proximal (soft-threshold) step.

The penalty R(θ) = λ₁·Σ|θ − c| (c = 0, or c = θ₀ the anchor) has no gradient at θ = c, and its
subgradient λ₁·sign(θ − c) makes a gradient method oscillate around c instead of reaching it.
The proximal operator of η·R is the soft threshold (Tibshirani 1996; proximal gradient /
ISTA, Beck & Teboulle 2009):

    prox(θ) = c + sign(θ − c) · max(|θ − c| − η·λ₁, 0)

Applied after each optimizer step it sets every coordinate that moved less than η·λ₁ from c
exactly back to c: sparse weights (c = 0), or a sparse set of changed weights (c = θ₀).
"""

import torch


def soft_threshold_(params: list[torch.Tensor], targets: list[torch.Tensor] | None, threshold: float) -> None:
    """``p ← c + sign(p − c) · max(|p − c| − threshold, 0)`` in place; ``targets=None`` means c = 0."""
    if threshold == 0.0 or not params:
        return
    with torch.no_grad():
        for i, p in enumerate(params):
            p = p.detach()
            if targets is None:
                p.copy_(p.sign() * (p.abs() - threshold).clamp_(min=0.0))
            else:
                target = targets[i].to(p.dtype)
                offset = p - target
                p.copy_(target + offset.sign() * (offset.abs() - threshold).clamp_(min=0.0))


def l1_distance(params: list[torch.Tensor], targets: list[torch.Tensor] | None) -> torch.Tensor:
    """Σ|p − c| over all tensors, accumulated in float32; ``targets=None`` means c = 0."""
    total = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
    with torch.no_grad():
        for i, p in enumerate(params):
            offset = p.detach().float() if targets is None else p.detach().float() - targets[i].float()
            total += offset.abs().sum()
    return total
