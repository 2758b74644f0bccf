"""Checkpoint averaging: the element-wise mean of several state dicts of one model.

Averaging the weights of the last few checkpoints of a run smooths the noise of the last updates
(Vaswani et al. 2017, section 6.1, average the last 5 or 20 checkpoints; Popel & Bojar 2018). The mean
is accumulated in float64 and cast back to each tensor's type, so that averaging identical tensors
(frozen weights) gives them back bit for bit. Tensors that are not floating point (integer buffers)
cannot be averaged; they must be equal in every checkpoint and are kept as they are.
"""

from collections.abc import Mapping, Sequence

import torch


class CheckpointShapeError(ValueError):
    """Checkpoints that are not of one model: other tensor names, shapes, or differing integer buffers."""


def average_state_dicts(state_dicts: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str]) -> dict:
    """The element-wise mean of ``state_dicts``; ``names`` (one per state dict) name them in errors."""
    if not state_dicts:
        raise ValueError("average_state_dicts: no state dict to average")
    first, first_name = state_dicts[0], names[0]
    for state, name in zip(state_dicts[1:], names[1:]):
        if state.keys() != first.keys():
            only_first = sorted(first.keys() - state.keys())
            only_here = sorted(state.keys() - first.keys())
            raise CheckpointShapeError(
                f"{name} and {first_name} hold different tensors (only in {first_name}: {only_first[:3]}, "
                f"only in {name}: {only_here[:3]}); accepted: checkpoints of one model"
            )
        for key, tensor in state.items():
            if tensor.shape != first[key].shape:
                raise CheckpointShapeError(
                    f"{key!r} has shape {tuple(tensor.shape)} in {name} but {tuple(first[key].shape)} in "
                    f"{first_name}; accepted: checkpoints of one model, of one size"
                )
    return {key: _mean([state[key] for state in state_dicts], key, names) for key in first}


def _mean(tensors: list[torch.Tensor], key: str, names: Sequence[str]) -> torch.Tensor:
    if not tensors[0].is_floating_point():
        for tensor, name in zip(tensors[1:], names[1:]):
            if not torch.equal(tensor, tensors[0]):
                raise CheckpointShapeError(
                    f"{key!r} is an integer tensor that differs between {names[0]} and {name}; it cannot be "
                    "averaged; accepted: checkpoints of one model whose integer buffers are equal"
                )
        return tensors[0].clone()
    total = torch.zeros(tensors[0].shape, dtype=torch.float64)
    for tensor in tensors:
        total += tensor.to(torch.float64)
    return (total / len(tensors)).to(tensors[0].dtype)
