"""``hf-l2mt merge``: one model from several fine-tunes of one base, by combining their task vectors
τ_i = θ_i − θ_base (``hf_l2mt.core.weight_arithmetic``: linear, task arithmetic, TIES; docs/interpolation.md).

The runs' tensors are read, combined and written one name at a time: the peak is one tensor of each run and of the
base and the result (TIES adds float64 copies of that tensor's task vectors; a LoRA run adds its merged model).
Buffers are taken from the first run unchanged.
"""

import os
from dataclasses import dataclass, field
from typing import ClassVar

METHODS = ("linear", "task_arithmetic", "ties")
PROVENANCE_FILE = "merged_from.json"


@dataclass
class MergeSettings:
    """Which fine-tunes of which base are merged, how, and where the model goes."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dirs",)

    run_dirs: list[str] = field(default_factory=list, metadata={
        "help": "fine-tunes of BASE_MODEL (run output_dirs or LoRA adapter folders)"})
    base: str | None = field(default=None, metadata={"metavar": "BASE_MODEL",
                                                     "help": "the model every run was fine-tuned from"})
    method: str = field(default="task_arithmetic", metadata={
        "choices": list(METHODS), "help": "linear: weighted average of the models; task_arithmetic: base + sum of "
        "w_i * task vector; ties: TIES-merging (Yadav et al. 2023)"})
    weights: list[float] = field(default_factory=list, metadata={
        "help": "one weight per run (default: 1 each; linear divides by their sum)"})
    density: float = field(default=0.2, metadata={
        "help": "ties: the share of each task vector's entries kept, those of largest magnitude"})
    output_dir: str | None = field(default=None, metadata={"metavar": "PATH", "help": "where the merged model goes"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output_dir"})

    def __post_init__(self):
        if not self.run_dirs:
            raise ValueError("RUN_DIR: none given; accepted: one or more fine-tunes of --base")
        if not self.base:
            raise ValueError("--base BASE_MODEL: none given; accepted: the local folder the runs were fine-tuned from")
        if not self.output_dir:
            raise ValueError("--output_dir: none given; accepted: the folder the merged model goes to")
        check_merge(self.method, len(self.run_dirs), self.weights, self.density)

    def run_weights(self) -> list[float]:
        return list(self.weights) or [1.0] * len(self.run_dirs)


def check_merge(method: str, runs: int, weights: list[float], density: float) -> None:
    if method not in METHODS:
        raise ValueError(f"--method: got {method!r}; accepted: {', '.join(METHODS)}")
    if weights and len(weights) != runs:
        raise ValueError(f"--weights: got {len(weights)} weight(s) for {runs} run(s); accepted: one per RUN_DIR")
    if method == "linear" and weights and sum(weights) == 0:
        raise ValueError(f"--weights: {', '.join(map(str, weights))} sum to 0; linear divides by their sum")
    if not 0 < density <= 1:
        raise ValueError(f"--density: got {density}; accepted: a share above 0, at most 1")


def merge(run_dirs: list[str], base: str, output_dir: str, *, method: str = "task_arithmetic",
          weights: list[float] | None = None, density: float = 0.2, overwrite: bool = False) -> str:
    """Write the merge of ``run_dirs`` (fine-tunes of ``base``) to ``output_dir``; returns it. Every run's tensor
    names and shapes are checked against the base before anything is written."""
    import torch

    from ...core import weight_arithmetic
    from ...core.lora import is_adapter_directory
    from .tensors import (
        SavedTensors, buffer_names, check_output, check_same_tensors, elementwise, open_model, write_model,
    )

    weights = list(weights or [1.0] * len(run_dirs))
    check_merge(method, len(run_dirs), weights, density)
    check_output(output_dir, overwrite)
    base_tensors = SavedTensors(base, "--base")
    runs = [open_model(run_dir, base_tensors, f"RUN_DIR {position}") for position, run_dir in
            enumerate(run_dirs, start=1)]
    for run in runs:
        check_same_tensors(base_tensors, run)
    first = run_dirs[0]
    config_dir = base if is_adapter_directory(first) else first
    buffers = buffer_names(config_dir)

    def produce(name):
        parts = [run.get(name) for run in runs]
        if name in buffers:
            return parts[0]
        if method == "linear":
            return elementwise(lambda *chunks: weight_arithmetic.linear(chunks, weights), parts)
        if method == "task_arithmetic":
            return elementwise(lambda anchor, *chunks: weight_arithmetic.task_arithmetic(anchor, chunks, weights),
                               [base_tensors.get(name), *parts])
        anchor = base_tensors.get(name)
        if not anchor.is_floating_point():
            return parts[0]
        # TIES keeps the largest entries of each whole task vector: one threshold per run from all its magnitudes
        # (one float64 tensor at a time), then the element-wise rest in chunks.
        thresholds = [
            weight_arithmetic.trim_threshold(
                elementwise(lambda b, r: (r.to(torch.float64) - b.to(torch.float64)).abs(), [anchor, part]), density)
            for part in parts
        ]
        return elementwise(lambda b, *chunks: weight_arithmetic.ties(b, chunks, weights, thresholds),
                           [anchor, *parts])

    provenance = {"base": os.path.abspath(base), "runs": [os.path.abspath(path) for path in run_dirs],
                  "method": method, "weights": weights}
    if method == "ties":
        provenance["density"] = density
    write_model(output_dir, runs[0], produce, config_dir, [first, base], provenance, PROVENANCE_FILE)
    return output_dir


def run_merge(settings: MergeSettings) -> None:
    target = merge(settings.run_dirs, settings.base, settings.output_dir, method=settings.method,
                   weights=settings.run_weights(), density=settings.density, overwrite=settings.overwrite)
    print(f"merged {len(settings.run_dirs)} run(s) with {settings.method}: {target}")
