"""EWC (Kirkpatrick et al. 2017; Thompson et al. 2019 for NMT): L2-SP weighted per coordinate by the
diagonal Fisher F of the base model, R(θ) = (λ/2)·Σ F ⊙ (θ − θ₀)², as pure in-place tensor functions.

With F ≡ 1 these are ``l2sp.py``'s functions. They go one parameter at a time, so the only temporary
is one parameter's difference; F and θ₀ may be stored in a lower precision than the parameters.
"""

import torch


def add_weighted_l2sp_grad_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor], strength: float
) -> None:
    """Coupled EWC (L2-SP with per-coordinate weights F): ``p.grad += strength · F ⊙ (p − p₀)``.

    One parameter at a time, so the only temporary is one parameter's difference.
    """
    if strength == 0.0 or not params:
        return
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.addcmul_(w.to(p.dtype), p.detach() - a.to(p.dtype), value=strength)


def move_toward_anchor_weighted_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor], fraction: float
) -> None:
    """Decoupled EWC: ``p ← p − min(fraction · F, 1) ⊙ (p − p₀)``, with ``fraction = lr_t · λ_t``.

    The per-coordinate step is clamped at 1: a coordinate with a large F lands on its anchor
    instead of overshooting it (an unclamped step > 2 would even diverge).
    """
    if fraction == 0.0 or not params:
        return
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            p.detach().lerp_(a.to(p.dtype), (w.to(p.dtype) * fraction).clamp_(max=1.0))


def weighted_squared_distance(
    params: list[torch.Tensor], anchors: list[torch.Tensor], weights: list[torch.Tensor]
) -> torch.Tensor:
    """Σ F ⊙ (p − p₀)² over all tensors, accumulated in float32, one tensor at a time."""
    total = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
    with torch.no_grad():
        for p, a, w in zip(params, anchors, weights):
            total += (w.float() * (p.detach().float() - a.float()).pow(2)).sum()
    return total
