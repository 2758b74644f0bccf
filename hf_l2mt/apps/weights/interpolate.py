"""``hf-l2mt interpolate``: models on the line between a base and its fine-tune, θ(α) = (1 − α)·θ_base + α·θ_run
(WiSE-FT, Wortsman et al. 2022), one folder per α; with held-out sets, each α scored against the base, and with a
forgetting budget, the α that keeps the most in-domain gain within it (docs/interpolation.md).

Tensors are read one at a time (``hf_l2mt.apps.weights.tensors``) and combined in float64
(``hf_l2mt.core.weight_arithmetic``) in chunks, and written as they are made: the peak is the tensors being combined
(one of each model and the result), or, for a LoRA run, that plus the merged fine-tune. Buffers are taken from the
fine-tune unchanged.
"""

import os
from dataclasses import dataclass, field
from typing import ClassVar

from ..terminal.settings import RepeatableFlag
from .interpolation_scores import alpha_folder

DEFAULT_ALPHAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
OUTPUT_SUBDIR = "interpolated"
PROVENANCE_FILE = "interpolated_from.json"


@dataclass
class InterpolateSettings:
    """Which fine-tune is interpolated toward which base, at which α, scored on what."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dir",)

    run_dir: str | None = field(default=None, metadata={"help": "the fine-tuned model (a run's output_dir, or "
                                                                "a LoRA adapter folder)"})
    base: str | None = field(default=None, metadata={"metavar": "BASE_MODEL",
                                                     "help": "the model RUN_DIR was fine-tuned from (a local folder)"})
    alpha: list[float] = field(default_factory=lambda: list(DEFAULT_ALPHAS), metadata={
        "help": "the weights of the fine-tune: 0 is the base, 1 the fine-tune"})
    output_dir: str | None = field(default=None, metadata={
        "metavar": "PATH", "help": f"where the alpha-A folders go (default: RUN_DIR/{OUTPUT_SUBDIR})"})
    overwrite: bool = field(default=False, metadata={"help": "replace existing alpha-A folders (one of these same models "
                                                             "is kept without it)"})

    # Parameters that control the scoring and the forgetting budget
    test: list[str] = field(default_factory=list, metadata={
        "action": RepeatableFlag, "metavar": "NAME=SOURCE_FILE,REFERENCE_FILE",
        "help": "held-out sets to score every alpha on (default: the sets RUN_DIR/forgetting_report.json keeps)"})
    general_sets: list[str] = field(default_factory=lambda: ["general"], metadata={
        "action": RepeatableFlag, "metavar": "NAME", "help": "which --test sets are general domain"})
    scores: bool = field(default=True, metadata={"help": "score every alpha on the held-out sets (--no_scores: "
                                                         "write the models only)"})
    metric: str = field(default="chrf", metadata={
        "choices": ["bleu", "chrf", "chrf_pp", "exact_match"], "help": "the score the budget is counted in"})
    max_general_drop: float | None = field(default=None, metadata={
        "metavar": "POINTS", "help": "budget: the most the general-domain score may fall below the base's"})
    min_gain_kept: float | None = field(default=None, metadata={
        "metavar": "SHARE", "help": "budget: the least share (0 to 1) of the fine-tune's in-domain gain to keep"})
    batch_size: int = field(default=32, metadata={"help": "sentences per batch when translating"})
    num_beams: int = field(default=4, metadata={"help": "beam size when translating"})
    max_new_tokens: int = field(default=128, metadata={"help": "longest translation, in tokens"})
    source_prefix: str | None = field(default=None, metadata={"metavar": "TEXT", "help": "text put before every "
                                                                                          "source sentence (T5)"})
    bootstrap_seed: int = field(default=12345, metadata={"help": "seed of the paired bootstrap"})
    bootstrap_resamples: int = field(default=1000, metadata={"help": "resamples of the paired bootstrap"})
    device: str | None = field(default=None, metadata={"help": "where translation runs (default: cuda if "
                                                               "available)"})

    def __post_init__(self):
        for flag in ("run_dir", "base"):
            if not getattr(self, flag):
                name = "RUN_DIR" if flag == "run_dir" else "--base BASE_MODEL"
                raise ValueError(f"{name}: none given; accepted: a local model folder")
        check_alphas(self.alpha)
        if self.max_general_drop is not None and self.max_general_drop < 0:
            raise ValueError(f"--max_general_drop: got {self.max_general_drop}; accepted: a number of points >= 0")
        if self.min_gain_kept is not None and not 0 <= self.min_gain_kept <= 1:
            raise ValueError(f"--min_gain_kept: got {self.min_gain_kept}; accepted: a share from 0 to 1")
        if not self.scores and self.budget():
            raise ValueError("--no_scores: a forgetting budget (--max_general_drop, --min_gain_kept) needs the scores")

    def budget(self) -> dict:
        return {key: getattr(self, key) for key in ("max_general_drop", "min_gain_kept")
                if getattr(self, key) is not None}

    def target_root(self) -> str:
        return self.output_dir or os.path.join(self.run_dir, OUTPUT_SUBDIR)


def check_alphas(alphas: list[float]) -> None:
    bad = [alpha for alpha in alphas if not 0 <= alpha <= 1]
    if bad or not alphas:
        raise ValueError(f"--alpha: got {', '.join(map(str, bad or alphas)) or 'none'}; accepted: numbers from 0 "
                         "(the base) to 1 (the fine-tune)")
    if len(set(alphas)) < len(alphas):
        raise ValueError(f"--alpha: {', '.join(map(str, alphas))} names one alpha twice; accepted: distinct values")


def interpolate(run_dir: str, base: str, alphas: list[float], output_dir: str | None = None,
                overwrite: bool = False) -> dict[float, str]:
    """Write one model folder per α under ``output_dir`` (default ``run_dir/interpolated``); returns α → folder.

    ``run_dir`` is a saved model or a LoRA adapter folder, whose merged weights are interpolated: each adapted
    matrix becomes W + α·s·B·A. Every tensor name and shape is checked before anything is written. An α folder
    that exists is kept as it is when its ``interpolated_from.json`` records this base, this fine-tune and this α,
    with their weight files as they are now (size and modification time), so that its translations stay cached;
    any other existing folder is refused unless ``overwrite``.
    """
    from ...core.weight_arithmetic import interpolate as mix
    from ...core.lora import is_adapter_directory
    from .tensors import (
        SavedTensors, buffer_names, check_output, check_same_tensors, elementwise, open_model, write_model,
    )

    check_alphas(list(alphas))
    root = output_dir or os.path.join(run_dir, OUTPUT_SUBDIR)
    targets = {alpha: os.path.join(root, alpha_folder(alpha)) for alpha in alphas}
    provenance = {alpha: provenance_of(run_dir, base, alpha) for alpha in alphas}
    kept = {alpha for alpha, target in targets.items() if not overwrite and recorded(target) == provenance[alpha]}
    for alpha, target in targets.items():
        if alpha not in kept:
            check_output(target, overwrite)
    base_tensors = SavedTensors(base, "--base")
    run_tensors = open_model(run_dir, base_tensors, "RUN_DIR")
    check_same_tensors(base_tensors, run_tensors)
    adapter = is_adapter_directory(run_dir)
    config_dir = base if adapter else run_dir
    buffers = buffer_names(config_dir)
    for alpha, target in targets.items():
        if alpha in kept:
            continue

        def produce(name, alpha=alpha):
            run_tensor = run_tensors.get(name)
            if name in buffers:
                return run_tensor
            return elementwise(lambda base, run: mix(base, run, alpha), [base_tensors.get(name), run_tensor])

        write_model(
            target, run_tensors, produce, config_dir, [run_dir, base], provenance_file=PROVENANCE_FILE,
            provenance=provenance[alpha],
        )
    return targets


def provenance_of(run_dir: str, base: str, alpha: float) -> dict:
    """What ``interpolated_from.json`` records of one α folder."""
    from ...core.lora import is_adapter_directory

    return {
        "base": os.path.abspath(base), "fine_tuned": os.path.abspath(run_dir), "alpha": alpha,
        "formula": "(1 - alpha) * base + alpha * fine_tuned", "lora_adapter": is_adapter_directory(run_dir),
        "weight_files": {"base": weight_files(base), "fine_tuned": weight_files(run_dir)},
    }


def weight_files(folder: str) -> dict[str, list[int]]:
    """Each ``*.safetensors`` file of ``folder`` → [size, modification time in ns]: what tells a model saved again."""
    if not os.path.isdir(folder):
        return {}
    names = sorted(name for name in os.listdir(folder) if name.endswith(".safetensors"))
    return {name: [os.stat(os.path.join(folder, name)).st_size, os.stat(os.path.join(folder, name)).st_mtime_ns]
            for name in names}


def recorded(target: str) -> dict | None:
    """What ``target/interpolated_from.json`` records, or None where there is none to read."""
    import json

    try:
        with open(os.path.join(target, PROVENANCE_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def run_interpolate(settings: InterpolateSettings) -> None:
    """The command: the models, then (unless --no_scores, or no held-out set is known) the table and the budget."""
    from .interpolation_scores import held_out_sets, score_alphas  # sacreBLEU, numpy: once the models are written

    sets = None if not settings.scores else held_out_sets(settings.run_dir, settings.test, settings.general_sets,
                                                         settings.budget())
    targets = interpolate(settings.run_dir, settings.base, settings.alpha, settings.output_dir, settings.overwrite)
    for alpha, target in targets.items():
        print(f"alpha {alpha}: {target}")
    if sets is None:
        if settings.scores:
            print("no held-out sets (give --test NAME=SOURCE_FILE,REFERENCE_FILE, or run evaluate --base first): "
                  "the models are not scored")
        return
    print(score_alphas(settings, targets, sets))
