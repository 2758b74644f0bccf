"""The L2 maths, as pure in-place tensor functions with no Trainer in sight.

L2-SP (Li et al. 2018, "Explicit inductive bias for transfer learning with convolutional networks";
"MAP-L2" in Miceli Barone et al. 2017 for NMT) penalises the distance to the starting weights θ₀,
the *anchor*:  R(θ) = (λ/2)·Σ‖θ − θ₀‖².  Its gradient is λ·(θ − θ₀).

All functions work on lists of tensors and use PyTorch's multi-tensor (``torch._foreach_*``)
kernels, so one call touches every parameter with a handful of kernel launches and allocates no
per-parameter temporaries. Anchors may be stored in a lower precision (bfloat16); the arithmetic
then happens in the parameter's dtype. Under FSDP2 parameters and anchors are ``DTensor`` shards with the
same placements: the element-wise functions act on each process's shard, and ``squared_distance``
reduces across processes.
"""

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor

ANCHOR_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def snapshot_anchor(params: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Detached copies of ``params`` in ``dtype``: θ₀."""
    return [p.detach().to(dtype=dtype, copy=True) for p in params]


def _upcast(anchors: list[torch.Tensor], like: list[torch.Tensor]) -> list[torch.Tensor]:
    if all(a.dtype == p.dtype for a, p in zip(anchors, like)):
        return anchors
    return [a.to(p.dtype) for a, p in zip(anchors, like)]


def add_l2sp_grad_(params: list[torch.Tensor], anchors: list[torch.Tensor], strength: float) -> None:
    """Coupled L2-SP: ``p.grad += strength · (p − p₀)`` for every parameter.

    ``strength`` is λ_t, times the loss scale when gradients are scaled (fp16). A parameter without a
    gradient (unused in this batch) gets exactly the penalty's gradient.
    """
    if strength == 0.0 or not params:
        return
    for p, a in zip(params, anchors):
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    # Two in-place adds instead of one add of (θ − θ₀): no temporary as large as the model.
    torch._foreach_add_(grads, [p.detach() for p in params], alpha=strength)
    torch._foreach_add_(grads, _upcast(anchors, params), alpha=-strength)


def move_toward_anchor_(params: list[torch.Tensor], anchors: list[torch.Tensor], fraction: float) -> None:
    """Decoupled L2-SP: ``p ← p − fraction · (p − p₀)``, with ``fraction = lr_t · λ_t``.

    This is AdamW's decoupled decay (``p ← p − lr·wd·p``, Loshchilov & Hutter 2019) with the
    origin moved from 0 to the anchor.
    """
    if fraction == 0.0 or not params:
        return
    with torch.no_grad():
        torch._foreach_lerp_([p.detach() for p in params], _upcast(anchors, params), fraction)


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


def squared_distance(params: list[torch.Tensor], anchors: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖p − p₀‖² over all tensors, accumulated in float32; the same full-model value on every process.

    One tensor at a time, so the peak extra memory is one parameter, not the whole model. Sharded
    parameters (FSDP2 ``DTensor``) give per-shard partial sums; these are added up per device mesh and
    reduced once at the end (one all-reduce per mesh, not one per parameter).
    """
    total = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
    partial_sums: dict[DeviceMesh, DTensor] = {}
    with torch.no_grad():
        for p, a in zip(params, anchors):
            sq = (p.detach().float() - a.float()).pow(2).sum()
            if isinstance(sq, DTensor):
                previous = partial_sums.get(sq.device_mesh)
                partial_sums[sq.device_mesh] = sq if previous is None else previous + sq
            else:
                total += sq
        for partial in partial_sums.values():
            total += partial.full_tensor().to(total.device)
    return total


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
