"""Tensor-size accounting on any device: the bytes of the tensors that the ops run inside a block allocate,
and the most of them alive at once.

CPU memory has no allocator statistics like ``torch.cuda.max_memory_allocated``; this counts what the ops
return instead (a ``TorchDispatchMode`` sees every op and its outputs). Views and in-place results share a
storage with an input and are not counted; a temporary that a kernel allocates and frees inside one op is
not seen either.
"""

import weakref

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode


class TensorBytes(TorchDispatchMode):
    """``with TensorBytes() as counted: ...`` then ``counted.peak``: the most bytes of newly allocated
    tensors alive at once inside the block."""

    def __init__(self):
        super().__init__()
        self.live, self.peak = 0, 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        leaves = pytree.tree_leaves((args, kwargs))
        inputs = {t.untyped_storage().data_ptr() for t in leaves if isinstance(t, torch.Tensor)}
        for tensor in pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in inputs:
                nbytes = tensor.untyped_storage().nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._free, nbytes)
        return out
