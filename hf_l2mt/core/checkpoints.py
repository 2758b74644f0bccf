"""Which ``checkpoint-*`` folders a run may resume from, and which ``save_total_limit`` may delete.

A job killed while it writes a checkpoint leaves a folder that looks like a checkpoint but is not
one. ``Trainer._save_checkpoint`` (transformers 5.24) writes the weights first and
``trainer_state.json`` last, and ``L2MTTrainer`` writes the anchor before both, so a folder is
complete when it has readable weights, a ``trainer_state.json`` that parses, and (with L2-SP on)
``l2sp_anchor.safetensors``. Resuming picks the newest complete folder; an explicit path to an
incomplete one is refused.
"""

import json
import logging
import os
import re
import shutil

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints
from transformers.utils import (
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from .anchor import ANCHOR_FILE

logger = logging.getLogger("hf_l2mt")

LATEST = "latest"
WEIGHT_FILES = (
    SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME,
    ADAPTER_SAFE_WEIGHTS_NAME, ADAPTER_WEIGHTS_NAME,
)
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class IncompleteCheckpointError(ValueError):
    """A checkpoint folder that a run cannot resume from: absent, or written only in part."""


def missing_parts(checkpoint: str, needs_anchor: bool) -> list[str]:
    """What ``checkpoint`` lacks to be resumed from; empty when it is complete."""
    missing = []
    if not any(os.path.isfile(os.path.join(checkpoint, name)) for name in WEIGHT_FILES):
        missing.append(f"model weights ({' or '.join(WEIGHT_FILES[:2])})")
    state = os.path.join(checkpoint, TRAINER_STATE_NAME)
    if not os.path.isfile(state):
        missing.append(TRAINER_STATE_NAME)
    else:
        try:
            with open(state, encoding="utf-8") as f:
                json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            missing.append(f"a readable {TRAINER_STATE_NAME} ({err})")
    if needs_anchor and not os.path.isfile(os.path.join(checkpoint, ANCHOR_FILE)):
        missing.append(f"{ANCHOR_FILE} (the L2-SP anchor)")
    return missing


def require_complete(checkpoint: str, needs_anchor: bool) -> str:
    """Return ``checkpoint`` if a run can resume from it, else raise ``IncompleteCheckpointError``."""
    if not os.path.isdir(checkpoint):
        raise IncompleteCheckpointError(f"resume_from_checkpoint: {checkpoint!r} is not a directory")
    missing = missing_parts(checkpoint, needs_anchor)
    if missing:
        raise IncompleteCheckpointError(
            f"resume_from_checkpoint: {checkpoint!r} is incomplete: it has no {', no '.join(missing)}. A job that "
            "stopped while saving leaves such a folder, and one written without L2-SP has no anchor. Give another "
            f"checkpoint, or {LATEST!r} for the newest complete one."
        )
    return checkpoint


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str, needs_anchor: bool) -> str | None:
    """The folder a run resumes from: ``None``/``False`` none, ``True``/``"latest"`` the newest complete
    checkpoint of ``output_dir``, a path that folder if it is complete."""
    if value is None or value is False:
        return None
    if value is True or value == LATEST:
        found = latest_complete_checkpoint(output_dir, needs_anchor)
        if found is None:
            raise IncompleteCheckpointError(
                f"resume_from_checkpoint: {value!r}, but {output_dir!r} holds no complete checkpoint-* folder"
            )
        return found
    return require_complete(os.fspath(value), needs_anchor)


def latest_complete_checkpoint(output_dir: str, needs_anchor: bool) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the largest N that is complete, or ``None``.

    Every newer, incomplete folder is skipped with a warning that names it and what it lacks.
    """
    if not os.path.isdir(output_dir):
        return None
    steps = {}
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_NAME.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[os.path.join(output_dir, name)] = int(match.group(1))
    for checkpoint in sorted(steps, key=steps.get, reverse=True):
        missing = missing_parts(checkpoint, needs_anchor)
        if not missing:
            return checkpoint
        logger.warning("skipping incomplete checkpoint %s: no %s", checkpoint, ", no ".join(missing))
    return None


def rotate_checkpoints(run_dir: str, save_total_limit: int | None, keep: list[str | None]) -> list[str]:
    """Delete the oldest checkpoints beyond ``save_total_limit``; returns the deleted folders.

    As ``transformers.trainer_utils.rotate_checkpoints`` (5.24), which always keeps the newest
    folder and ``best_model_checkpoint``, but also keeps every folder in ``keep`` (the one the run
    resumed from: until the run has finished, it may be the last good state a user has).
    """
    if not save_total_limit or save_total_limit <= 0:
        return []
    checkpoints = [os.path.realpath(path) for path in sort_checkpoints(run_dir, use_mtime=True)]
    if not checkpoints:
        return []
    protected = {os.path.realpath(path) for path in keep if path is not None} & set(checkpoints)
    protected.add(checkpoints[-1])
    deleted, remaining = [], len(checkpoints)
    for checkpoint in checkpoints:
        if remaining <= max(save_total_limit, len(protected)):
            break
        if checkpoint not in protected:
            logger.info("deleting %s (save_total_limit=%d)", checkpoint, save_total_limit)
            shutil.rmtree(checkpoint, ignore_errors=True)
            deleted.append(checkpoint)
            remaining -= 1
    return deleted
