"""The anchor θ₀: snapshotted once when training starts, saved with every checkpoint, reloaded on resume.

It is stored as ``l2sp_anchor.safetensors`` (no pickle) keyed by parameter name, one entry per
parameter (a tied weight appears once, under the name ``named_parameters()`` gives it first).

Under FSDP2 the anchor is sharded like the parameters (each process holds its shard of θ₀), but the file
always holds full tensors, gathered and written by the main process: a checkpoint loads the same way with
any number of processes, with or without FSDP.
"""

import os

import torch
from safetensors.torch import load_file, save_file
from torch.distributed.tensor import DTensor, distribute_tensor

from ..atomic_write import atomic_path

ANCHOR_FILE = "l2sp_anchor.safetensors"
# The precisions the anchor can be kept in (``anchor_dtype``); bfloat16 halves its memory.
ANCHOR_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def snapshot_anchor(params: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Detached copies of ``params`` in ``dtype``: θ₀."""
    return [p.detach().to(dtype=dtype, copy=True) for p in params]


class AnchorError(ValueError):
    """An anchor file that is missing, unreadable or does not fit the model."""


def snapshot(named_params: dict[str, torch.nn.Parameter], anchor_dtype: str) -> dict[str, torch.Tensor]:
    """θ₀ for the given parameters, as detached copies in ``anchor_dtype``."""
    names = list(named_params)
    copies = snapshot_anchor([named_params[n] for n in names], ANCHOR_DTYPES[anchor_dtype])
    return dict(zip(names, copies))


def gather(anchor: dict[str, torch.Tensor], keep: bool = True) -> dict[str, torch.Tensor]:
    """Full CPU tensors of ``anchor``, one parameter at a time; sharded entries are all-gathered.

    Every process must call it (the gather is collective); those with ``keep=False`` (all but the one
    that writes) drop each gathered tensor at once, so no process but the writer holds the full anchor.
    """
    full = {}
    for name, tensor in anchor.items():
        tensor = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        if keep:
            full[name] = tensor.detach().cpu()
    return full


def save(anchor: dict[str, torch.Tensor], directory: str) -> str:
    """Write the anchor (full tensors, see ``gather``) into ``directory`` atomically (temporary file, then rename).

    On a failed write (a full disk, say) the temporary file is removed, an anchor already there is
    left as it was, and the ``OSError`` names the file.
    """
    path = os.path.join(directory, ANCHOR_FILE)
    try:
        with atomic_path(path) as tmp:
            save_file({n: t.detach().contiguous().cpu() for n, t in anchor.items()}, tmp, metadata={"format": "pt"})
    except OSError as err:
        code = err.errno if err.errno is not None else next((a for a in err.args if isinstance(a, int)), None)
        reason = err.strerror or (os.strerror(code) if code is not None else str(err))
        raise OSError(code, f"cannot write the L2-SP anchor {path}: {reason}; free space or choose another "
                      "output_dir, then resume from the last complete checkpoint") from err
    return path


def load(directory: str, named_params: dict[str, torch.nn.Parameter], anchor_dtype: str) -> dict[str, torch.Tensor]:
    """Read the anchor saved in ``directory`` and check it against the parameters it regularizes.

    Entries of sharded parameters come back sharded like them (each process keeps its own shard).
    """
    path = os.path.join(directory, ANCHOR_FILE)
    if not os.path.isfile(path):
        raise AnchorError(
            f"resume_from_checkpoint: {directory!r} has no {ANCHOR_FILE}, so the L2-SP anchor (the pretrained "
            "weights) cannot be restored; re-anchoring at the checkpoint's fine-tuned weights would change the "
            "objective. Resume from a checkpoint written by L2MTTrainer with L2-SP on, or start a new run."
        )
    try:
        stored = load_file(path)
    except Exception as err:  # safetensors raises several types for a damaged file
        raise AnchorError(f"{path}: cannot read the anchor ({err}); the file is damaged or not safetensors") from None
    missing = [n for n in named_params if n not in stored]
    if missing:
        raise AnchorError(
            f"{path}: no anchor for {len(missing)} regularized parameter(s), e.g. {missing[0]!r}; the checkpoint "
            "comes from another model or other L2-SP settings (l2sp_include_regex / l2sp_overrides)"
        )
    anchor = {}
    for name, param in named_params.items():
        tensor = stored[name]
        if tensor.shape != param.shape:
            raise AnchorError(
                f"{path}: anchor of {name!r} has shape {tuple(tensor.shape)} but the parameter has "
                f"{tuple(param.shape)}; the checkpoint comes from another model"
            )
        tensor = tensor.to(device=param.device, dtype=ANCHOR_DTYPES[anchor_dtype])
        if isinstance(param, DTensor):
            tensor = distribute_tensor(tensor, param.device_mesh, param.placements)
        anchor[name] = tensor
    return anchor
