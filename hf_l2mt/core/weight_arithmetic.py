"""Models made by arithmetic on weights, one tensor at a time: interpolation toward a base, and merges of task
vectors. Pure functions of tensors, with no model or file in sight (``hf_l2mt.apps.weights`` streams the tensors).

A task vector is what fine-tuning added to the base, τ = θ_run − θ_base (Ilharco et al. 2023).

- ``interpolate``: θ(α) = (1 − α)·θ_base + α·θ_run (WiSE-FT, Wortsman et al. 2022): α = 0 is the base, 1 the run.
- ``linear``: the weighted average of the runs, Σ w_i·θ_i / Σ w_i.
- ``task_arithmetic``: θ_base + Σ w_i·τ_i.
- ``ties``: TIES-merging (Yadav et al. 2023), as PEFT's ``peft.utils.merge_utils.ties`` with
  ``majority_sign_method="total"``: each τ_i keeps its ``density`` share of entries of largest magnitude, the sign
  of each entry is the sign of the sum of the trimmed τ_i, and the entry is the mean of the weighted trimmed
  w_i·τ_i that have that sign (0 where none has); the result is θ_base + that mean. The trim is a threshold per
  task vector (``trim_threshold``), so that the rest is element-wise and runs on parts of a tensor.

Every result is computed in float64 and cast back to the tensor's own dtype, so that tensors equal in every model
(frozen weights) come back bit for bit. Tensors that are not floating point (integer buffers) are taken from the
first run unchanged.
"""

from collections.abc import Sequence

import torch


def interpolate(base: torch.Tensor, run: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 − α)·base + α·run, in float64, cast back to ``run``'s dtype."""
    if not run.is_floating_point():
        return run.clone()
    mixed = (1.0 - alpha) * base.to(torch.float64) + alpha * run.to(torch.float64)
    return mixed.to(run.dtype)


def linear(runs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ w_i·run_i / Σ w_i, in float64, cast back to the first run's dtype."""
    if not runs[0].is_floating_point():
        return runs[0].clone()
    total = torch.zeros(runs[0].shape, dtype=torch.float64)
    for run, weight in zip(runs, weights):
        total += weight * run.to(torch.float64)
    return (total / sum(weights)).to(runs[0].dtype)


def task_arithmetic(base: torch.Tensor, runs: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """base + Σ w_i·(run_i − base), in float64, cast back to the first run's dtype."""
    if not runs[0].is_floating_point():
        return runs[0].clone()
    anchor = base.to(torch.float64)
    total = anchor.clone()
    for run, weight in zip(runs, weights):
        total += weight * (run.to(torch.float64) - anchor)
    return total.to(runs[0].dtype)


def trim_threshold(magnitudes: torch.Tensor, density: float) -> float:
    """The smallest magnitude that TIES keeps of a task vector whose entries' magnitudes are ``magnitudes``: the
    int(density · numel)-th largest (infinity when that is 0 entries). Entries at least this large are kept, which is
    PEFT's ``magnitude_based_pruning`` (``topk``) wherever no two magnitudes tie at the threshold."""
    flat = magnitudes.reshape(-1)
    keep = int(density * flat.numel())
    if keep == 0:
        return float("inf")
    return torch.kthvalue(flat, flat.numel() - keep + 1).values.item()


def ties(base: torch.Tensor, runs: Sequence[torch.Tensor], weights: Sequence[float],
         thresholds: Sequence[float]) -> torch.Tensor:
    """base + the TIES merge of the runs' task vectors, each trimmed at its threshold (``trim_threshold`` of the
    whole task vector, so that this element-wise step may run on any part of the tensors); in float64, cast back
    to the first run's dtype."""
    if not runs[0].is_floating_point():
        return runs[0].clone()
    anchor = base.to(torch.float64)
    vectors = [run.to(torch.float64) - anchor for run in runs]
    trimmed = torch.stack([vector * (vector.abs() >= threshold) for vector, threshold in zip(vectors, thresholds)])
    elected = torch.where(trimmed.sum(dim=0) >= 0, 1.0, -1.0).to(trimmed.dtype)
    agrees = trimmed.sign() == elected
    scale = torch.tensor(list(weights), dtype=trimmed.dtype).reshape(-1, *([1] * (trimmed.dim() - 1)))
    kept = (trimmed * scale * agrees).sum(dim=0)
    merged = kept / torch.clamp(agrees.sum(dim=0), min=1).to(trimmed.dtype)
    return (anchor + merged).to(runs[0].dtype)


def ties_whole(base: torch.Tensor, runs: Sequence[torch.Tensor], weights: Sequence[float],
               density: float) -> torch.Tensor:
    """``ties`` on whole tensors, the thresholds taken from them."""
    anchor = base.to(torch.float64)
    thresholds = [trim_threshold((run.to(torch.float64) - anchor).abs(), density) for run in runs]
    return ties(base, runs, weights, thresholds)
