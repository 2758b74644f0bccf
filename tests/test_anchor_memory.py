"""A bfloat16 anchor meets the float32 parameters one small piece at a time: the extra memory an update
needs is one piece's float32 copy, far less than the largest parameter, and the result is the same."""

import pytest
import torch

from benchmarks.tensor_bytes import TensorBytes
from hf_l2mt.core.regularizers.chunks import CHUNK_ELEMENTS, flat_chunks
from hf_l2mt.core.regularizers.ewc import (
    add_weighted_l2sp_grad_,
    move_toward_anchor_weighted_,
    weighted_squared_distance,
)
from hf_l2mt.core.regularizers.l2sp import add_l2sp_grad_, move_toward_anchor_, squared_distance

# One parameter of 16 pieces (as an embedding is many times larger than a piece), one that ends in a
# partial piece, and small ones.
SHAPES = [(256, 4 * CHUNK_ELEMENTS // 64), (3, CHUNK_ELEMENTS // 2 + 5), (7,), (2, 3)]
PIECE_BYTES = CHUNK_ELEMENTS * 4  # one piece in float32
# The distances sum about 1.15 M float32 terms: torch sums a 65,536-element piece pairwise (16 levels), then
# the 20 pieces one after another, after 3 roundings per term (difference, square, weight): relative error at
# most (16 + 20 + 3) u = 39 * 2**-24 = 2.3e-6.
DISTANCE_RTOL = 3e-6


def make(seed: int):
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in SHAPES]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    anchors = [(p.detach() + 0.1 * torch.randn(p.shape, generator=generator)).to(torch.bfloat16) for p in params]
    fisher = [torch.rand(p.shape, generator=generator).to(torch.bfloat16) for p in params]
    return params, anchors, fisher


def test_the_accounting_sees_a_whole_anchor_upcast():
    _, anchors, _ = make(0)
    with TensorBytes() as counted:
        upcast = [a.float() for a in anchors]
    assert counted.peak == sum(a.numel() * 4 for a in upcast)


def test_pieces_cover_every_element_once_as_views():
    tensor = torch.arange(2 * CHUNK_ELEMENTS + 3, dtype=torch.float32)
    pieces = [piece for (piece,) in flat_chunks(tensor)]
    assert [p.numel() for p in pieces] == [CHUNK_ELEMENTS, CHUNK_ELEMENTS, 3]
    assert torch.equal(torch.cat(pieces), tensor)
    assert all(p.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr() for p in pieces)
    transposed = torch.zeros(4, 5).t()  # not contiguous: one piece, the tensor itself
    assert [piece for (piece,) in flat_chunks(transposed)] == [transposed]


@pytest.mark.parametrize("mode", ["coupled", "decoupled", "distance"])
def test_bfloat16_anchor_needs_one_piece_not_the_largest_parameter(mode):
    params, anchors, _ = make(1)
    start = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    largest_fp32 = max(p.numel() for p in params) * 4
    assert largest_fp32 >= 16 * PIECE_BYTES
    with TensorBytes() as counted:
        if mode == "coupled":
            add_l2sp_grad_(params, anchors, 0.3)
        elif mode == "decoupled":
            move_toward_anchor_(params, anchors, 0.25)
        else:
            distance = squared_distance(params, anchors)
    # The update's adds read the bfloat16 anchor in place and need nothing; the logged distance a piece's
    # float32 copy, its difference and its square, at most.
    assert counted.peak <= 3 * PIECE_BYTES
    for p, s, g, a in zip(params, start, grads, anchors):
        if mode == "coupled":
            torch.testing.assert_close(p.grad, g + 0.3 * (s - a.float()))
        elif mode == "decoupled":
            torch.testing.assert_close(p.detach(), s - 0.25 * (s - a.float()))
    if mode == "distance":
        expected = sum(float((s.double() - a.double()).pow(2).sum()) for s, a in zip(start, anchors))
        assert float(distance) == pytest.approx(expected, rel=DISTANCE_RTOL)


@pytest.mark.parametrize("mode", ["coupled", "decoupled", "distance"])
def test_bfloat16_fisher_and_anchor_need_a_few_pieces(mode):
    params, anchors, fisher = make(2)
    start = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    with TensorBytes() as counted:
        if mode == "coupled":
            add_weighted_l2sp_grad_(params, anchors, fisher, 0.7)
        elif mode == "decoupled":
            move_toward_anchor_weighted_(params, anchors, fisher, 0.5)
        else:
            distance = weighted_squared_distance(params, anchors, fisher)
    assert counted.peak <= 4 * PIECE_BYTES
    for p, s, g, a, f in zip(params, start, grads, anchors, fisher):
        if mode == "coupled":
            torch.testing.assert_close(p.grad, g + 0.7 * f.float() * (s - a.float()))
        elif mode == "decoupled":
            torch.testing.assert_close(p.detach(), s - (0.5 * f.float()).clamp(max=1.0) * (s - a.float()))
    if mode == "distance":
        expected = sum(
            float((f.double() * (s.double() - a.double()).pow(2)).sum()) for s, a, f in zip(start, anchors, fisher)
        )
        assert float(distance) == pytest.approx(expected, rel=DISTANCE_RTOL)
