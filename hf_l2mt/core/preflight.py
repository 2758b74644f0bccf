"""Checks run before the first update, so that a run cannot fail after hours for a reason known at the start.

- the output directory can be written (checkpoints and the final model go there);
- a checkpoint to resume from holds weights of this model (same names, same shapes): transformers
  5.24 loads a checkpoint with other names non-strictly, with a warning, and trains on from the
  model's own weights, and fails on other shapes with a ``RuntimeError`` listing every tensor.
  A model with its own ``load_state_dict`` is left to it, as ``Trainer`` leaves it;
- a regularizer's warmup ends before training does, or its strength would never reach its value.
"""

import json
import os

import torch
from safetensors import safe_open
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from .schedules import SCHEDULED_TERMS


class OutputDirError(ValueError):
    """An output directory that cannot be created or written."""


class CheckpointMismatchError(ValueError):
    """A checkpoint whose weights do not belong to the model being trained."""


def check_output_dir(path: str, flag: str = "output_dir") -> None:
    """``path`` is a directory that can be written, or can be created: its nearest existing ancestor is one.

    Nothing is created: transformers' ``Trainer`` creates the directory itself.
    """
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is a file" if existing == os.path.abspath(path) else f"cannot be created: {existing} is a file"
        raise OutputDirError(f"{flag}: {path!r} {what}, not a directory; give a directory path for the run")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(
            f"{flag}: {path!r} cannot be written: {existing} is not writable by this user; give a directory "
            "you can write to"
        )


def checkpoint_shapes(checkpoint: str) -> tuple[str, dict[str, tuple[int, ...]]] | None:
    """``(weights file, {tensor name: shape})`` read from safetensors headers only; ``None`` without them."""
    single, index = os.path.join(checkpoint, SAFE_WEIGHTS_NAME), os.path.join(checkpoint, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(single):
        files, where = [single], single
    elif os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
        files, where = [os.path.join(checkpoint, shard) for shard in shards], index
    else:
        return None
    shapes = {}
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                shapes[name] = tuple(weights.get_slice(name).get_shape())
    return where, shapes


def loads_its_own_way(model) -> bool:
    """``model`` defines its own ``load_state_dict`` (which ``Trainer`` calls to resume), or one of its modules
    has a load-state-dict pre-hook: either may take names or shapes that torch's loading would refuse (a
    buffer that grows in training, renamed tensors)."""
    own_method = type(model).load_state_dict is not torch.nn.Module.load_state_dict
    return own_method or any(module._load_state_dict_pre_hooks for module in model.modules())


def check_checkpoint_fits(model, checkpoint: str) -> None:
    """Every tensor in the checkpoint's weights is one of ``model``'s, with the same shape.

    Tensors of the model missing from the checkpoint are allowed: tied weights (``lm_head``) and
    fixed tables are not saved. A model with its own ``load_state_dict`` decides itself what it loads
    (``loads_its_own_way``), so it is not checked: the check must not refuse what ``Trainer`` would resume.
    """
    if loads_its_own_way(model):
        return
    found = checkpoint_shapes(checkpoint)
    if found is None:
        return
    where, stored = found
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    model_name = type(model).__name__
    unknown = [name for name in stored if name not in expected]
    if unknown:
        raise CheckpointMismatchError(
            f"resume_from_checkpoint: {where} holds {len(unknown)} tensor(s) that {model_name} does not have, "
            f"e.g. {unknown[0]!r}; the checkpoint comes from another model. Resume with the model it was "
            "trained from, or start a new run in another output_dir"
        )
    for name, shape in expected.items():
        if name in stored and stored[name] != shape:
            raise CheckpointMismatchError(
                f"resume_from_checkpoint: {where}: {name!r} has shape {stored[name]} but {model_name} has "
                f"{shape}; the checkpoint comes from a model of another size. Resume with the model "
                "it was trained from, or start a new run in another output_dir"
            )


def check_warmups(args, total_steps: int) -> None:
    """Each scheduled regularizer in use (``SCHEDULED_TERMS``) warms up in fewer updates than the run has."""
    for term in SCHEDULED_TERMS:
        warmup = getattr(args, f"{term}_warmup_steps")
        if args.uses(term) and total_steps > 0 and warmup >= total_steps:
            raise ValueError(
                f"{term}_warmup_steps: got {warmup}, but the run has {total_steps} updates, so the strength "
                f"would never reach its full value; accepted: fewer than {total_steps} (or 0)"
            )
