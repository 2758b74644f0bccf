"""``hf-l2mt average``: a model whose weights are the mean of a run's last N complete checkpoints.

Every tensor a checkpoint saved is averaged: frozen weights too (equal in each checkpoint, so their
mean is the weight itself) and buffers. A weight tied to another (Marian's embeddings and ``lm_head``)
is saved once and averaged once; loading the mean into the model ties it again. Incomplete
``checkpoint-*`` folders (``hf_l2mt.core.checkpoints.missing_parts``) are skipped with a warning.
"""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import ClassVar

logger = logging.getLogger("hf_l2mt")

# Where a recipe run that averages its last checkpoints (--average_last_checkpoints) keeps the model of its
# last update, not averaged, beside the averaged final model.
UNAVERAGED_DIR = "last"


class AverageError(ValueError):
    """Averaging that cannot be done as asked: too few checkpoints, an existing output, unreadable weights."""


@dataclass
class AverageSettings:
    """Which checkpoints are averaged, and where the averaged model goes."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dir",)

    run_dir: str | None = field(default=None, metadata={"help": "output_dir of a run with checkpoint-* folders"})
    last: int = field(default=5, metadata={"help": "how many of the newest complete checkpoints are averaged"})
    output_dir: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": "where the averaged model goes (default: RUN_DIR/average-last-N)"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output_dir"})

    def __post_init__(self):
        if self.last < 1:
            raise ValueError(f"--last: got {self.last}; accepted: an integer >= 1")

    def target(self) -> str:
        return self.output_dir or os.path.join(self.run_dir, f"average-last-{self.last}")


def last_complete_checkpoints(run_dir: str, count: int) -> list[str]:
    """The ``count`` newest complete ``checkpoint-*`` folders of ``run_dir``, oldest first."""
    from transformers.trainer_utils import sort_checkpoints

    from ...core.checkpoints import missing_parts

    if not os.path.isdir(run_dir):
        raise AverageError(f"RUN_DIR {run_dir!r} is not a directory; pass the output_dir of a run")
    complete = []
    for checkpoint in reversed(sort_checkpoints(run_dir)):
        missing = missing_parts(checkpoint, needs_anchor=False)
        if missing:
            logger.warning("skipping incomplete checkpoint %s: no %s", checkpoint, ", no ".join(missing))
            continue
        complete.append(checkpoint)
        if len(complete) == count:
            return complete[::-1]
    raise AverageError(
        f"--last {count}: {run_dir!r} holds {len(complete)} complete checkpoint-* folder(s); accepted: --last "
        f"between 1 and {len(complete)}, or a run saved more often (save_steps)" if complete else
        f"--last {count}: {run_dir!r} holds no complete checkpoint-* folder; a run writes them with save_strategy"
    )


def read_weights(checkpoint: str) -> dict:
    """The tensors of ``checkpoint``'s ``model.safetensors`` (or of every shard its index lists)."""
    from safetensors.torch import load_file
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

    single = os.path.join(checkpoint, SAFE_WEIGHTS_NAME)
    if os.path.isfile(single):
        return load_file(single)
    index = os.path.join(checkpoint, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle)["weight_map"].values()))
        return {key: value for shard in shards for key, value in load_file(os.path.join(checkpoint, shard)).items()}
    raise AverageError(
        f"{checkpoint!r} has no {SAFE_WEIGHTS_NAME} nor {SAFE_WEIGHTS_INDEX_NAME}; accepted: checkpoints saved "
        "as safetensors (the Trainer's default), not PEFT adapters or pytorch_model.bin"
    )


def average_weights(checkpoints: list[str]) -> dict:
    """The mean of the weights saved in ``checkpoints`` (folders of one run); refused before any model is loaded."""
    from ...core.averaging import average_state_dicts

    names = [os.path.basename(path) for path in checkpoints]
    return average_state_dicts([read_weights(path) for path in checkpoints], names)


def load_average(model, checkpoints: list[str]) -> None:
    """Set ``model``'s weights to the mean of those saved in ``checkpoints``."""
    set_weights(model, average_weights(checkpoints), checkpoints[-1])


def set_weights(model, weights: dict, source: str) -> None:
    # Tied weights are saved once, so they are "missing" here; loading the shared tensor sets both.
    unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise AverageError(
            f"{source!r} holds tensors that {type(model).__name__} does not have: {unexpected[:3]}; "
            "accepted: checkpoints of the model they are averaged into"
        )
    model.tie_weights()


def average_checkpoints(settings: AverageSettings) -> tuple[str, list[str]]:
    """Write the averaged model (config, weights, tokenizer, generation config); returns it and its checkpoints."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    from ...tokenizer_warnings import without_sacremoses_recommendation

    target = settings.target()
    if os.path.exists(target) and not settings.overwrite:
        raise AverageError(f"--output_dir {target!r} exists; pass --overwrite to replace it, or choose another path")
    checkpoints = last_complete_checkpoints(settings.run_dir, settings.last)
    names = [os.path.basename(path) for path in checkpoints]
    averaged = average_weights(checkpoints)
    newest = checkpoints[-1]
    config = AutoConfig.from_pretrained(newest, local_files_only=True)
    model_class = getattr(transformers, (config.architectures or ["AutoModelForSeq2SeqLM"])[0])
    model = model_class.from_pretrained(newest, local_files_only=True)
    set_weights(model, averaged, newest)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".hf_l2mt_average-") as scratch:
        staged = os.path.join(scratch, "model")
        model.save_pretrained(staged)
        tokenizer_dir = next(
            (path for path in (newest, settings.run_dir) if os.path.isfile(os.path.join(path, "tokenizer_config.json"))),
            None,
        )
        if tokenizer_dir is None:
            logger.warning("no tokenizer in %s nor %s; the averaged model has none", newest, settings.run_dir)
        else:
            with without_sacremoses_recommendation():
                AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True).save_pretrained(staged)
        with open(os.path.join(staged, "averaged_from.json"), "w", encoding="utf-8") as handle:
            json.dump({"run_dir": os.path.abspath(settings.run_dir), "checkpoints": names}, handle, indent=2)
            handle.write("\n")
        if os.path.exists(target):
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        os.replace(staged, target)
    return target, checkpoints


def run_average(settings: AverageSettings) -> None:
    target, checkpoints = average_checkpoints(settings)
    print(f"averaged {len(checkpoints)} checkpoints ({', '.join(map(os.path.basename, checkpoints))}): {target}")
