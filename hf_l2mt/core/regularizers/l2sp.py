"""L2-SP as pure in-place tensor functions with no Trainer in sight.

L2-SP (Li et al. 2018, "Explicit inductive bias for transfer learning with convolutional networks";
"MAP-L2" in Miceli Barone et al. 2017 for NMT) penalises the distance to the starting weights θ₀,
the *anchor*:  R(θ) = (λ/2)·Σ‖θ − θ₀‖².  Its gradient is λ·(θ − θ₀).

All functions work on lists of tensors and use PyTorch's multi-tensor (``torch._foreach_*``)
kernels, so one call touches every parameter with a handful of kernel launches and allocates no
per-parameter temporaries. Anchors may be stored in a lower precision (bfloat16); the arithmetic
then happens in the parameter's dtype, one small piece at a time (``chunks.py``), never on a float32
copy of the anchor: the in-place adds read the bfloat16 values and cast them as they go. Under FSDP2
parameters and anchors are ``DTensor`` shards with the same placements: the element-wise functions act on each process's shard, and ``squared_distance``
reduces across processes. EWC's per-coordinate weighted version is in ``ewc.py``, weight decay
(L2 towards zero) in ``weight_decay.py``.
"""

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor

from .chunks import flat_chunks, same_dtype_split


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
    same, other = same_dtype_split(params, anchors)
    if same:
        grads = [params[i].grad for i in same]
        # Two in-place adds instead of one add of (θ − θ₀): no temporary as large as the model.
        torch._foreach_add_(grads, [params[i].detach() for i in same], alpha=strength)
        torch._foreach_add_(grads, [anchors[i] for i in same], alpha=-strength)
    for i in other:
        # Both adds on one piece while it is in cache; sub_ reads the bfloat16 piece and casts as it goes.
        for grad, param, anchor in flat_chunks(params[i].grad, params[i].detach(), anchors[i]):
            grad.add_(param, alpha=strength).sub_(anchor, alpha=strength)


def move_toward_anchor_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], fraction: float | torch.Tensor
) -> None:
    """Decoupled L2-SP: ``p ← p − fraction · (p − p₀)``, with ``fraction = lr_t · λ_t``.

    This is AdamW's decoupled decay (``p ← p − lr·wd·p``, Loshchilov & Hutter 2019) with the
    origin moved from 0 to the anchor. ``fraction`` may be a 0-d tensor on the parameters' device, so that
    an update skipped on the device (``host_check_steps``) moves nothing without the host reading it.
    """
    on_device = torch.is_tensor(fraction)
    if not params or (not on_device and fraction == 0.0):
        return
    same, other = same_dtype_split(params, anchors)
    with torch.no_grad():
        if same:
            weight = [fraction] * len(same) if on_device else fraction
            torch._foreach_lerp_([params[i].detach() for i in same], [anchors[i] for i in same], weight)
        keep = 1.0 - fraction
        for i in other:
            # p(1 − f) + f·p₀: the adds read the bfloat16 piece and cast as they go (lerp_ would need a copy).
            for param, anchor in flat_chunks(params[i].detach(), anchors[i]):
                if on_device:
                    param.mul_(keep).addcmul_(anchor, fraction)
                else:
                    param.mul_(keep).add_(anchor, alpha=fraction)


def squared_distance(params: list[torch.Tensor], anchors: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖p − p₀‖² over all tensors, accumulated in float32; the same full-model value on every process.

    One piece at a time (``chunks.py``), so the peak extra memory is one piece, not the whole model. Sharded
    parameters (FSDP2 ``DTensor``) give per-shard partial sums; these are added up per device mesh and
    reduced once at the end (one all-reduce per mesh, not one per parameter).
    """
    total = torch.zeros((), dtype=torch.float32, device=params[0].device if params else None)
    partial_sums: dict[DeviceMesh, DTensor] = {}
    with torch.no_grad():
        for p, a in zip(params, anchors):
            for param, anchor in flat_chunks(p.detach(), a):
                sq = (param.float() - anchor.float()).pow(2).sum()
                if isinstance(sq, DTensor):
                    previous = partial_sums.get(sq.device_mesh)
                    partial_sums[sq.device_mesh] = sq if previous is None else previous + sq
                else:
                    total += sq
        for partial in partial_sums.values():
            total += partial.full_tensor().to(total.device)
    return total
