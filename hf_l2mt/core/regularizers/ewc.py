"""EWC (Kirkpatrick et al. 2017; Thompson et al. 2019 for NMT): L2-SP weighted per coordinate by the
diagonal Fisher F of the base model, R(θ) = (λ/2)·Σ F ⊙ (θ − θ₀)², as pure in-place tensor functions.

With F ≡ 1 these are ``l2sp.py``'s functions. They go one small piece at a time (``chunks.py``), so the
only temporaries are one piece's difference and float32 copies; F and θ₀ may be stored in a lower
precision than the parameters.
"""

import torch

from .chunks import flat_chunks


def add_weighted_l2sp_grad_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor], strength: float
) -> None:
    """Coupled EWC (L2-SP with per-coordinate weights F): ``p.grad += strength · F ⊙ (p − p₀)``.

    One piece at a time, so the only temporaries are one piece's difference and float32 copies.
    """
    if strength == 0.0 or not params:
        return
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            for grad, param, anchor, weight in flat_chunks(p.grad, p.detach(), a, w):
                grad.addcmul_(weight.to(param.dtype), param - anchor.to(param.dtype), value=strength)


def move_toward_anchor_weighted_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor], fraction: float | torch.Tensor
) -> None:
    """Decoupled EWC: ``p ← p − min(fraction · F, 1) ⊙ (p − p₀)``, with ``fraction = lr_t · λ_t``.

    The per-coordinate step is clamped at 1: a coordinate with a large F lands on its anchor
    instead of overshooting it (an unclamped step > 2 would even diverge). ``fraction`` may be a 0-d tensor
    on the device, as for ``move_toward_anchor_``.
    """
    if not params or (not torch.is_tensor(fraction) and fraction == 0.0):
        return
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            for param, anchor, weight in flat_chunks(p.detach(), a, w):
                param.lerp_(anchor.to(param.dtype), (weight.to(param.dtype) * fraction).clamp_(max=1.0))


def weighted_squared_distance(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor]
) -> torch.Tensor:
    """Σ F ⊙ (p − p₀)² over all tensors, accumulated in float32, one piece at a time."""
    total = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            for param, anchor, weight in flat_chunks(p.detach(), a, w):
                total += (weight.float() * (param.float() - anchor.float()).pow(2)).sum()
    return total
