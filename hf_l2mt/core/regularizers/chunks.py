"""Walking parameters and a lower-precision anchor together in small flat pieces.

A bfloat16 anchor has to meet the float32 parameters in float32. Converting the whole anchor at once
would make a float32 copy of it in every update, as large as a float32 anchor, which is what a bfloat16
anchor is chosen to avoid. Piece by piece, the update's in-place adds read the bfloat16 values and cast
them as they go, with no copy at all, and what does convert (EWC's F, the logged distance) converts one
piece: at most ``CHUNK_ELEMENTS`` float32 values (256 KiB), whatever the size of the largest parameter
(opus-mt's embedding has 29.7M). The size is the fastest of 32Ki to 4Mi elements timed on a 2-core
x86_64 CPU: small enough that a piece read twice is still in cache the second time, large enough that
the per-piece call overhead stays small.
"""

from collections.abc import Iterator

import torch
from torch.distributed.tensor import DTensor

CHUNK_ELEMENTS = 1 << 16


def _splittable(tensor: torch.Tensor) -> bool:
    return not isinstance(tensor, DTensor) and tensor.is_contiguous()


def flat_chunks(*tensors: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> Iterator[tuple[torch.Tensor, ...]]:
    """The same pieces of same-shaped ``tensors``: flat views of at most ``chunk_elements`` elements each.

    In-place operations on a piece change the tensor it was cut from. Tensors that cannot be viewed flat
    (a non-contiguous one, an FSDP2 ``DTensor`` shard) come back whole, as one piece.
    """
    if not all(_splittable(t) for t in tensors):
        yield tensors
        return
    flats = [t.view(-1) for t in tensors]
    for start in range(0, flats[0].numel(), chunk_elements):
        yield tuple(f[start : start + chunk_elements] for f in flats)


def same_dtype_split(params: list[torch.Tensor], anchors: list[torch.Tensor]) -> tuple[list[int], list[int]]:
    """Indices of the anchors kept in their parameter's dtype, and of those kept in another one."""
    same = [i for i, (p, a) in enumerate(zip(params, anchors)) if p.dtype == a.dtype]
    other = [i for i, (p, a) in enumerate(zip(params, anchors)) if p.dtype != a.dtype]
    return same, other
