"""Only complete checkpoints are resumed from; save_total_limit keeps the resumed-from and the best one."""

import logging
import os
import shutil
import time

import pytest
from transformers import MarianMTModel, TrainerCallback

from conftest import PadCollator, assert_same_params, make_args, params_of, task_dataset, tiny_marian, train_with
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.anchor import ANCHOR_FILE
from hf_l2mt.core.checkpoints import (
    IncompleteCheckpointError,
    latest_complete_checkpoint,
    missing_parts,
    resolve_resume_checkpoint,
    rotate_checkpoints,
)

SETTINGS = dict(
    max_steps=6, save_strategy="steps", save_steps=2, lr_scheduler_type="linear", l2sp_lambda=0.5,
    l2sp_schedule="cosine", weight_decay=0.05, max_grad_norm=1.0,
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A base model and a 6-update run with checkpoints at 2, 4 and 6, plus the uninterrupted weights."""
    root = tmp_path_factory.mktemp("checkpoints")
    tiny_marian(seed=7).save_pretrained(root / "base")
    model = MarianMTModel.from_pretrained(root / "base")
    train_with(model, task_dataset(16, seed=5), make_args(root / "run", **SETTINGS))
    return root, params_of(model)


def copy_run(finished_run, tmp_path):
    root, _ = finished_run
    return shutil.copytree(root / "run", tmp_path / "run")


def make_checkpoint(run, step, files, age=0.0):
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("{}" if name.endswith(".json") else "weights")
    stamp = time.time() - age
    os.utime(folder, (stamp, stamp))
    return folder


@pytest.mark.parametrize(
    "removed, named",
    [
        ("trainer_state.json", "no trainer_state.json"),
        ("model.safetensors", "no model weights"),
        (ANCHOR_FILE, f"no {ANCHOR_FILE}"),
    ],
)
def test_latest_skips_an_incomplete_newest_checkpoint_with_a_warning(finished_run, tmp_path, caplog, removed, named):
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-6" / removed)
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        assert latest_complete_checkpoint(str(run), needs_anchor=True) == str(run / "checkpoint-4")
    assert f"skipping incomplete checkpoint {run / 'checkpoint-6'}: {named}" in caplog.text
    with pytest.raises(IncompleteCheckpointError, match=rf"checkpoint-6' is incomplete: it has {named}"):
        resolve_resume_checkpoint(str(run / "checkpoint-6"), str(run), needs_anchor=True)


def test_half_written_trainer_state_and_anchor_only_with_l2sp(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    (run / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": 6, "log_hi')
    os.remove(run / "checkpoint-4" / ANCHOR_FILE)
    assert missing_parts(str(run / "checkpoint-6"), needs_anchor=False)[0].startswith("a readable trainer_state.json")
    assert missing_parts(str(run / "checkpoint-4"), needs_anchor=False) == []
    assert resolve_resume_checkpoint("latest", str(run), needs_anchor=True) == str(run / "checkpoint-2")
    assert resolve_resume_checkpoint(True, str(run), needs_anchor=False) == str(run / "checkpoint-4")
    assert resolve_resume_checkpoint(False, str(run), needs_anchor=True) is None


def test_no_complete_checkpoint_or_missing_folder_is_an_error(tmp_path):
    make_checkpoint(tmp_path, 5, ["model.safetensors"])
    with pytest.raises(IncompleteCheckpointError, match=r"'latest', but .* holds no complete checkpoint-\* folder"):
        resolve_resume_checkpoint("latest", str(tmp_path), needs_anchor=False)
    with pytest.raises(IncompleteCheckpointError, match=r"checkpoint-9' is not a directory"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-9"), str(tmp_path), needs_anchor=False)


def test_trainer_resumes_from_latest_complete_checkpoint_to_the_uninterrupted_result(finished_run, tmp_path):
    root, expected = finished_run
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-6" / "trainer_state.json")
    os.remove(run / "checkpoint-4" / "model.safetensors")
    model = MarianMTModel.from_pretrained(root / "base")
    trainer = train_with(model, task_dataset(16, seed=5), make_args(run, **SETTINGS), resume_from_checkpoint="latest")
    assert trainer.state.log_history[0]["step"] == 1 and trainer._resume_dir == str(run / "checkpoint-2")
    assert_same_params(params_of(model), expected)


def test_rotation_keeps_newest_best_and_resumed_from(tmp_path):
    complete = ["model.safetensors", "trainer_state.json"]
    for step, age in ((1, 50), (2, 40), (3, 30), (4, 20), (5, 10), (6, 0)):
        make_checkpoint(tmp_path, step, complete, age=age)
    keep = [str(tmp_path / "checkpoint-1"), str(tmp_path / "checkpoint-3") + os.sep, None]
    deleted = rotate_checkpoints(str(tmp_path), 2, keep=keep)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1", "checkpoint-3", "checkpoint-6"]
    assert sorted(os.path.basename(path) for path in deleted) == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]
    assert rotate_checkpoints(str(tmp_path), None, keep=[]) == []


def test_save_total_limit_never_deletes_the_checkpoint_the_run_resumed_from(finished_run, tmp_path):
    root, _ = finished_run
    run = copy_run(finished_run, tmp_path)
    # An older checkpoint chosen on purpose: the run goes on from update 2 next to newer folders.
    old = run / "checkpoint-2"
    for name in ("checkpoint-4", "checkpoint-6"):
        stamp = time.time() - 100
        os.utime(run / name, (stamp, stamp))
    stamp = time.time() - 200
    os.utime(old, (stamp, stamp))
    args = make_args(run, **{**SETTINGS, "save_total_limit": 1})
    train_with(MarianMTModel.from_pretrained(root / "base"), task_dataset(16, seed=5), args,
               resume_from_checkpoint=str(old))
    assert sorted(os.listdir(run)) == ["checkpoint-2", "checkpoint-6"]
    assert not missing_parts(str(old), needs_anchor=True)


class RecordFolders(TrainerCallback):
    """The checkpoint folders on disk and the best checkpoint after every save (and its rotation)."""

    def __init__(self):
        self.seen = []

    def on_save(self, args, state, control, **kwargs):
        checkpoints = [name for name in os.listdir(args.output_dir) if name.startswith("checkpoint-")]
        self.seen.append((sorted(checkpoints), state.best_model_checkpoint))


def test_save_total_limit_never_deletes_the_best_checkpoint(finished_run, tmp_path):
    root, _ = finished_run
    args = make_args(
        tmp_path / "run", **{**SETTINGS, "save_total_limit": 1}, eval_strategy="steps", eval_steps=2,
        metric_for_best_model="loss", greater_is_better=True, per_device_eval_batch_size=8,
    )
    record = RecordFolders()
    trainer = L2MTTrainer(
        model=MarianMTModel.from_pretrained(root / "base"), args=args, train_dataset=task_dataset(16, seed=5),
        eval_dataset=task_dataset(8, seed=9), data_collator=PadCollator(), callbacks=[record],
    )
    trainer.train()
    assert len(record.seen) == 3
    # The eval loss falls, so with greater_is_better the best checkpoint stays an old one.
    assert any(os.path.basename(best) != f"checkpoint-{step}" for step, (_, best) in zip((2, 4, 6), record.seen))
    for step, (folders, best) in zip((2, 4, 6), record.seen):
        newest = f"checkpoint-{step}"
        assert folders == sorted({newest, os.path.basename(best)}), f"after saving {newest}"
