"""The L2 maths without a Trainer: L2-SP, EWC and weight decay against their formulas, computed independently
(autograd of the penalty for the coupled gradients, the closed form for the decoupled steps)."""

import pytest
import torch

from hf_l2mt.core.anchor import snapshot_anchor
from hf_l2mt.core.regularizers.ewc import (
    add_weighted_l2sp_grad_,
    move_toward_anchor_weighted_,
    weighted_squared_distance,
)
from hf_l2mt.core.regularizers.l2sp import add_l2sp_grad_, move_toward_anchor_, squared_distance
from hf_l2mt.core.regularizers.weight_decay import add_weight_decay_grad_, scale_toward_zero_

SHAPES = [(3, 4), (5,), (2, 2, 3)]
# squared_distance sums 29 non-negative float32 terms, each a difference and a square (2 roundings): relative
# error at most (29 + 2) u = 31 * 2**-24 = 1.8e-6 (Higham, eq. 4.4); one more rounding for a weight.
SUM_RTOL = 2e-6


def tensors(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, generator=generator) for shape in SHAPES]


def parameters(seed: int, grads: bool = True) -> list[torch.nn.Parameter]:
    """Parameters with a task gradient already there (the first one without, as a parameter unused in the batch)."""
    params = [torch.nn.Parameter(t) for t in tensors(seed)]
    if grads:
        for p, g in zip(params[1:], tensors(seed + 100)[1:]):
            p.grad = g
    return params


def grads_of_penalty(params, penalty) -> list[torch.Tensor]:
    """∂penalty/∂θ by autograd, on detached copies (the parameters' own .grad is untouched)."""
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    return list(torch.autograd.grad(penalty(leaves), leaves))


def task_grads(params) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("anchor_dtype", [torch.float32, torch.bfloat16])
def test_coupled_l2sp_adds_the_gradient_of_half_lambda_squared_distance(anchor_dtype):
    params, lam = parameters(0), 0.3
    anchors = [a.to(anchor_dtype) for a in tensors(1)]
    before = task_grads(params)
    # The anchor enters the arithmetic in the parameter's dtype: θ₀ is the rounded (bf16) value.
    penalty = grads_of_penalty(
        params, lambda ps: sum(lam / 2 * (p - a.float()).pow(2).sum() for p, a in zip(ps, anchors))
    )
    add_l2sp_grad_(params, anchors, lam)
    for p, g, r in zip(params, before, penalty):
        torch.testing.assert_close(p.grad, g + r)
    assert params[0].grad is not None  # a parameter without a gradient gets exactly the penalty's


@pytest.mark.parametrize("anchor_dtype", [torch.float32, torch.bfloat16])
def test_decoupled_l2sp_moves_each_weight_a_fraction_of_the_way_to_its_anchor(anchor_dtype):
    params, fraction = parameters(2), 0.25
    anchors = [a.to(anchor_dtype) for a in tensors(3)]
    start = [p.detach().clone() for p in params]
    move_toward_anchor_(params, anchors, fraction)
    for p, s, a in zip(params, start, anchors):
        torch.testing.assert_close(p.detach(), s - fraction * (s - a.float()))


def test_decoupled_l2sp_with_fraction_one_lands_on_the_anchor():
    params, anchors = parameters(4), tensors(5)
    move_toward_anchor_(params, anchors, 1.0)
    for p, a in zip(params, anchors):
        torch.testing.assert_close(p.detach(), a)


def test_squared_distance_is_the_sum_of_squares_in_float64():
    params, anchors = parameters(6), [a.to(torch.bfloat16) for a in tensors(7)]
    expected = sum(float((p.detach().double() - a.double()).pow(2).sum()) for p, a in zip(params, anchors))
    assert float(squared_distance(params, anchors)) == pytest.approx(expected, rel=SUM_RTOL)


def test_coupled_weight_decay_adds_the_gradient_of_half_wd_squared_norm():
    params, wd = parameters(8), 0.05
    before = [None if p.grad is None else p.grad.clone() for p in params]
    penalty = grads_of_penalty(params, lambda ps: sum(wd / 2 * p.pow(2).sum() for p in ps))
    add_weight_decay_grad_(params, wd)
    # As torch.optim.Adam(weight_decay=...): a parameter without a gradient is left without one.
    assert params[0].grad is None
    for p, g, r in zip(params[1:], before[1:], penalty[1:]):
        torch.testing.assert_close(p.grad, g + r)


def test_decoupled_weight_decay_is_adamws_shrink():
    params, fraction = parameters(9), 0.1
    start = [p.detach().clone() for p in params]
    grads = task_grads(params)
    scale_toward_zero_(params, fraction)
    for p, s, g in zip(params, start, grads):
        torch.testing.assert_close(p.detach(), (1 - fraction) * s)
        torch.testing.assert_close(task_grads([p])[0], g)  # gradients are left alone
    # AdamW's own decoupled decay on the same weights, with a zero gradient: the same step.
    reference = [torch.nn.Parameter(s.clone()) for s in start]
    for r in reference:
        r.grad = torch.zeros_like(r)
    torch.optim.AdamW(reference, lr=0.5, weight_decay=fraction / 0.5).step()
    for p, r in zip(params, reference):
        torch.testing.assert_close(p.detach(), r.detach())


@pytest.mark.parametrize("anchor_dtype", [torch.float32, torch.bfloat16])
def test_coupled_ewc_adds_the_gradient_of_the_fisher_weighted_penalty(anchor_dtype):
    params, lam = parameters(10), 0.7
    anchors = [a.to(anchor_dtype) for a in tensors(11)]
    fisher = [f.abs() for f in tensors(12)]
    before = task_grads(params)
    penalty = grads_of_penalty(
        params, lambda ps: sum(lam / 2 * (f * (p - a.float()).pow(2)).sum() for p, a, f in zip(ps, anchors, fisher))
    )
    add_weighted_l2sp_grad_(params, anchors, fisher, lam)
    for p, g, r in zip(params, before, penalty):
        torch.testing.assert_close(p.grad, g + r)


def test_decoupled_ewc_step_is_clamped_per_coordinate():
    params, anchors, fraction = parameters(13), tensors(14), 0.5
    # F spans both sides of the clamp: fraction·F < 1 moves part of the way, ≥ 1 lands on the anchor.
    fisher = [torch.linspace(0.0, 5.0, p.numel()).reshape(p.shape) for p in params]
    start = [p.detach().clone() for p in params]
    move_toward_anchor_weighted_(params, anchors, fisher, fraction)
    for p, s, a, f in zip(params, start, anchors, fisher):
        step = torch.minimum(fraction * f, torch.ones_like(f))
        torch.testing.assert_close(p.detach(), s - step * (s - a))
        landed = fraction * f >= 1
        assert landed.any() and torch.equal(p.detach()[landed], a[landed])


def test_ewc_with_unit_fisher_is_plain_l2sp():
    lam, fraction = 0.4, 0.2
    plain, weighted = parameters(15), parameters(15)
    anchors = tensors(16)
    ones = [torch.ones_like(a) for a in anchors]
    add_l2sp_grad_(plain, anchors, lam)
    add_weighted_l2sp_grad_(weighted, anchors, ones, lam)
    move_toward_anchor_(plain, anchors, fraction)
    move_toward_anchor_weighted_(weighted, anchors, ones, fraction)
    for p, w in zip(plain, weighted):
        torch.testing.assert_close(w.grad, p.grad)
        torch.testing.assert_close(w.detach(), p.detach())
    assert float(weighted_squared_distance(weighted, anchors, ones)) == pytest.approx(
        float(squared_distance(plain, anchors)), rel=SUM_RTOL
    )


def test_weighted_squared_distance_is_the_fisher_weighted_sum_in_float64():
    params, anchors, fisher = parameters(17), tensors(18), [f.abs() for f in tensors(19)]
    expected = sum(
        float((f.double() * (p.detach().double() - a.double()).pow(2)).sum())
        for p, a, f in zip(params, anchors, fisher)
    )
    assert float(weighted_squared_distance(params, anchors, fisher)) == pytest.approx(expected, rel=SUM_RTOL)


@pytest.mark.parametrize(
    "call",
    [
        lambda ps, a, f: add_l2sp_grad_(ps, a, 0.0),
        lambda ps, a, f: move_toward_anchor_(ps, a, 0.0),
        lambda ps, a, f: add_weight_decay_grad_(ps, 0.0),
        lambda ps, a, f: scale_toward_zero_(ps, 0.0),
        lambda ps, a, f: add_weighted_l2sp_grad_(ps, a, f, 0.0),
        lambda ps, a, f: move_toward_anchor_weighted_(ps, a, f, 0.0),
    ],
    ids=["l2sp_grad", "l2sp_move", "wd_grad", "wd_shrink", "ewc_grad", "ewc_move"],
)
def test_zero_strength_changes_neither_weights_nor_gradients(call):
    params, anchors, fisher = parameters(20), tensors(21), [f.abs() for f in tensors(22)]
    start, grads = [p.detach().clone() for p in params], [None if p.grad is None else p.grad.clone() for p in params]
    call(params, anchors, fisher)
    for p, s, g in zip(params, start, grads):
        assert torch.equal(p.detach(), s)
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_snapshot_anchor_is_a_detached_copy_in_the_anchor_dtype(dtype):
    params = parameters(23)
    start = [p.detach().clone() for p in params]
    anchors = snapshot_anchor(params, dtype)
    with torch.no_grad():
        for p in params:
            p.add_(1.0)  # training moves the weights; the anchor stays where they started
    for s, a in zip(start, anchors):
        assert a.dtype == dtype and not a.requires_grad
        assert torch.equal(a, s.to(dtype))
