"""Which ``checkpoint-*`` folders a run may resume from, and which ``save_total_limit`` may delete.

A job killed while it writes a checkpoint leaves a folder that looks like a checkpoint but is not
one. ``Trainer._save_checkpoint`` (transformers 5.24) writes the weights first and
``trainer_state.json`` last, and ``L2MTTrainer`` writes the anchor before both, so a folder is
complete when it has readable weights, a ``trainer_state.json`` that parses, and (with L2-SP on)
``l2sp_anchor.safetensors``. Resuming picks the newest complete folder; an explicit path to an
incomplete one is refused.

``"auto"`` is for a job that may be restarted with the same command (a SLURM requeue): the newest complete
checkpoint if there is one, otherwise a start from the beginning, which writes over the folders a killed save
left half-written (no readable ``trainer_state.json``, the last file a save writes). A folder whose save
finished but that this run cannot resume from (no anchor, written without L2-SP) is not written over: ``"auto"``
then stops with an error. ``rotate_checkpoints`` deletes folders without weights or state before complete ones.

The errors hold ``Trainer``'s own (transformers 5.25), which scripts and tests match, word for word: "Can't find a
valid checkpoint at PATH" for a named folder, "No valid checkpoint found in output directory (OUTPUT_DIR)" for
``True``.
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
AUTO = "auto"
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
    if (state := _state_problem(checkpoint)) is not None:
        missing.append(state)
    if needs_anchor and not os.path.isfile(os.path.join(checkpoint, ANCHOR_FILE)):
        missing.append(f"{ANCHOR_FILE} (the L2-SP anchor)")
    return missing


def _state_problem(checkpoint: str) -> str | None:
    """What ``checkpoint`` lacks of a readable ``trainer_state.json``; ``None`` when it has one."""
    state = os.path.join(checkpoint, TRAINER_STATE_NAME)
    if not os.path.isfile(state):
        return TRAINER_STATE_NAME
    try:
        with open(state, encoding="utf-8") as f:
            json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"a readable {TRAINER_STATE_NAME} ({err})"
    return None


def require_complete(checkpoint: str, needs_anchor: bool) -> str:
    """Return ``checkpoint`` if a run can resume from it, else raise ``IncompleteCheckpointError``."""
    if not os.path.isdir(checkpoint):
        raise IncompleteCheckpointError(
            f"resume_from_checkpoint: Can't find a valid checkpoint at {checkpoint}: it is not a directory. "
            f"Accepted: a checkpoint-N folder, {LATEST!r} for the newest complete one of output_dir, or {AUTO!r} "
            "for that one or, when there is none, a start from the beginning"
        )
    missing = missing_parts(checkpoint, needs_anchor)
    if missing:
        raise IncompleteCheckpointError(
            f"resume_from_checkpoint: Can't find a valid checkpoint at {checkpoint}, which is incomplete: it has "
            f"no {', no '.join(missing)}. A job that stopped while saving leaves such a folder, and one written "
            f"without L2-SP has no anchor. Give another checkpoint, or {LATEST!r} for the newest complete one."
        )
    return checkpoint


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str, needs_anchor: bool) -> str | None:
    """The folder a run resumes from: ``None``/``False`` none, ``True``/``"latest"`` the newest complete
    checkpoint of ``output_dir``, ``"auto"`` that one or none when there is none, a path that folder if it is
    complete."""
    if value is None or value is False:
        return None
    if value is True or value in (LATEST, AUTO):
        found = latest_complete_checkpoint(output_dir, needs_anchor)
        if value == AUTO:
            return _auto(found, output_dir, needs_anchor)
        if found is None:
            raise IncompleteCheckpointError(
                f"resume_from_checkpoint: {value!r}: No valid checkpoint found in output directory ({output_dir}): "
                f"it holds no complete checkpoint-* folder. Accepted: {AUTO!r} to resume from the newest complete "
                "checkpoint when there is one and start from the beginning otherwise (a job that may be "
                "restarted), a checkpoint folder, or no resuming"
            )
        return found
    return require_complete(os.fspath(value), needs_anchor)


def _auto(found: str | None, output_dir: str, needs_anchor: bool) -> str | None:
    """``"auto"``: ``found``, or ``None`` (start from the beginning) when nothing finished would be written over."""
    if found is not None:
        logger.info("resume_from_checkpoint %r: resuming from %s", AUTO, found)
        return found
    steps = checkpoint_folders(output_dir)
    finished = {path: missing for path in sorted(steps, key=steps.get)
                if not _half_written(path) and (missing := missing_parts(path, needs_anchor))}
    if finished:
        listed = "; ".join(f"{os.path.basename(path)} has no {', no '.join(gaps)}" for path, gaps in finished.items())
        raise IncompleteCheckpointError(
            f"resume_from_checkpoint: {AUTO!r}: No valid checkpoint found in output directory ({output_dir}), but "
            f"it holds checkpoints whose save finished and that this run cannot resume from ({listed}); starting "
            "from the beginning would write over them. Resume them with the settings they were written with "
            "(L2-SP on for an anchor), move them away, or choose another output_dir"
        )
    logger.info("resume_from_checkpoint %r: %s holds no complete checkpoint; training starts from the beginning",
                AUTO, output_dir)
    return None


def _half_written(checkpoint: str) -> bool:
    """A save that did not finish: ``trainer_state.json``, which ``Trainer`` writes last, is absent or unreadable."""
    return _state_problem(checkpoint) is not None


def checkpoint_folders(output_dir: str) -> dict[str, int]:
    """``{path: N}`` for every ``checkpoint-N`` folder of ``output_dir``."""
    if not os.path.isdir(output_dir):
        return {}
    steps = {}
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_NAME.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps[os.path.join(output_dir, name)] = int(match.group(1))
    return steps


def latest_complete_checkpoint(output_dir: str, needs_anchor: bool) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the largest N that is complete, or ``None``.

    Every newer, incomplete folder is skipped with a warning that names it and what it lacks.
    """
    steps = checkpoint_folders(output_dir)
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
    resumed from: until the run has finished, it may be the last good state a user has), and deletes the
    folders a killed save or a killed deletion left without weights or a readable ``trainer_state.json``
    first, whatever their age: a deletion changes a folder's time, and such a folder kept in place of a
    complete one would leave fewer checkpoints to resume from than ``save_total_limit`` promises.
    """
    if not save_total_limit or save_total_limit <= 0:
        return []
    checkpoints = [os.path.realpath(path) for path in sort_checkpoints(run_dir, use_mtime=True)]
    if not checkpoints:
        return []
    protected = {os.path.realpath(path) for path in keep if path is not None} & set(checkpoints)
    protected.add(checkpoints[-1])
    broken = [path for path in checkpoints if path not in protected and missing_parts(path, needs_anchor=False)]
    deleted, remaining = [], len(checkpoints)
    for checkpoint in broken + [path for path in checkpoints if path not in broken]:
        if remaining <= max(save_total_limit, len(protected)):
            break
        if checkpoint not in protected:
            logger.info("deleting %s (save_total_limit=%d)", checkpoint, save_total_limit)
            shutil.rmtree(checkpoint, ignore_errors=True)
            deleted.append(checkpoint)
            remaining -= 1
    return deleted
