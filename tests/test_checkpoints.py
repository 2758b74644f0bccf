"""Only complete checkpoints are resumed from; ``auto`` starts from the beginning when there is none; the errors
hold transformers' own words; save_total_limit keeps the resumed-from and the best one, and deletes half-written
ones first."""

import inspect
import logging
import os
import shutil
import time

import pytest
from transformers import MarianMTModel, Trainer, TrainerCallback

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
    with pytest.raises(IncompleteCheckpointError, match=rf"checkpoint-6, which is incomplete: it has {named}"):
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
    with pytest.raises(IncompleteCheckpointError, match=r"'latest': No valid checkpoint found in output directory "
                                                        r"\(.*\): it holds no complete checkpoint-\* folder"):
        resolve_resume_checkpoint("latest", str(tmp_path), needs_anchor=False)
    with pytest.raises(IncompleteCheckpointError, match=r"checkpoint-9: it is not a directory"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-9"), str(tmp_path), needs_anchor=False)


# What transformers' tests (test_can_resume_training) and scripts match in Trainer.train's errors.
NAMED_NOT_VALID = "Can't find a valid checkpoint at"
NONE_IN_OUTPUT_DIR = "No valid checkpoint found in output directory"


def test_trainers_words_are_in_the_errors_next_to_ours(finished_run, tmp_path):
    trainer_source = inspect.getsource(Trainer)
    assert f'"{NAMED_NOT_VALID} {{resume_from_checkpoint}}"' in trainer_source
    assert f'"{NONE_IN_OUTPUT_DIR} ({{args.output_dir}})"' in trainer_source
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-6" / "trainer_state.json")
    trainer = L2MTTrainer(model=tiny_marian(), args=make_args(tmp_path / "empty", **SETTINGS),
                          train_dataset=task_dataset(16, seed=5), data_collator=PadCollator())
    # As transformers' test does: a bogus name, an incomplete folder, and True in an output_dir without checkpoints.
    for named, ours in ((f"{run / 'checkpoint-6'}-bogus", "it is not a directory"),
                        (run / "checkpoint-6", "which is incomplete: it has no trainer_state.json")):
        with pytest.raises(IncompleteCheckpointError) as refused:
            trainer.train(resume_from_checkpoint=str(named))
        assert f"{NAMED_NOT_VALID} {named}" in str(refused.value) and ours in str(refused.value)
    with pytest.raises(IncompleteCheckpointError) as refused:
        trainer.train(resume_from_checkpoint=True)
    message = str(refused.value)
    assert f"{NONE_IN_OUTPUT_DIR} ({tmp_path / 'empty'}): it holds no complete checkpoint-* folder" in message
    assert trainer.state.global_step == 0


def test_auto_resumes_from_the_newest_complete_checkpoint_or_starts_from_the_beginning(finished_run, tmp_path,
                                                                                         caplog):
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-6" / "trainer_state.json")
    with caplog.at_level(logging.INFO, logger="hf_l2mt"):
        assert resolve_resume_checkpoint("auto", str(run), needs_anchor=True) == str(run / "checkpoint-4")
    assert f"resume_from_checkpoint 'auto': resuming from {run / 'checkpoint-4'}" in caplog.text
    for step in (2, 4):  # half-written: no trainer_state.json, or one cut short
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text('{"global_step": 4, "log_hi')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_l2mt"):
        assert resolve_resume_checkpoint("auto", str(run), needs_anchor=True) is None
        assert resolve_resume_checkpoint("auto", str(tmp_path / "not-yet"), needs_anchor=True) is None
    assert f"{run} holds no complete checkpoint; training starts from the beginning" in caplog.text
    assert f"{tmp_path / 'not-yet'} holds no complete checkpoint; training starts from the beginning" in caplog.text


def test_auto_never_starts_over_checkpoints_whose_save_finished(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    for step in (2, 4, 6):  # as a run without L2-SP writes them
        os.remove(run / f"checkpoint-{step}" / ANCHOR_FILE)
    os.remove(run / "checkpoint-6" / "trainer_state.json")
    with pytest.raises(IncompleteCheckpointError, match=rf"'auto': {NONE_IN_OUTPUT_DIR} \({run}\), but it holds "
                       rf"checkpoints whose save finished and that this run cannot resume from \(checkpoint-2 has no "
                       rf"{ANCHOR_FILE} \(the L2-SP anchor\); checkpoint-4 has no {ANCHOR_FILE} .*\); starting from "
                       r"the beginning would write over them"):
        resolve_resume_checkpoint("auto", str(run), needs_anchor=True)
    assert resolve_resume_checkpoint("auto", str(run), needs_anchor=False) == str(run / "checkpoint-4")


def test_auto_over_half_written_checkpoints_trains_from_the_beginning_to_the_uninterrupted_result(finished_run,
                                                                                                   tmp_path):
    root, expected = finished_run
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-2" / "trainer_state.json")
    (run / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_hi')
    for name in os.listdir(run / "checkpoint-6"):
        if name != ANCHOR_FILE:  # killed just after the anchor, the first file of a save
            os.remove(run / "checkpoint-6" / name)
    model = MarianMTModel.from_pretrained(root / "base")
    trainer = train_with(model, task_dataset(16, seed=5), make_args(run, **SETTINGS), resume_from_checkpoint="auto")
    assert trainer._resume_dir is None and [row["step"] for row in trainer.state.log_history if "loss" in row] == [
        1, 2, 3, 4, 5, 6]
    assert_same_params(params_of(model), expected)
    for step in (2, 4, 6):
        assert missing_parts(str(run / f"checkpoint-{step}"), needs_anchor=True) == [], f"checkpoint-{step}"


def test_trainer_resumes_from_latest_complete_checkpoint_to_the_uninterrupted_result(finished_run, tmp_path):
    root, expected = finished_run
    run = copy_run(finished_run, tmp_path)
    os.remove(run / "checkpoint-6" / "trainer_state.json")
    os.remove(run / "checkpoint-4" / "model.safetensors")
    model = MarianMTModel.from_pretrained(root / "base")
    trainer = train_with(model, task_dataset(16, seed=5), make_args(run, **SETTINGS), resume_from_checkpoint="latest")
    assert trainer.state.log_history[0]["step"] == 1 and trainer._resume_dir == str(run / "checkpoint-2")
    assert_same_params(params_of(model), expected)


def test_rotation_deletes_folders_without_weights_or_state_before_complete_ones(tmp_path):
    complete = ["model.safetensors", "trainer_state.json"]
    for step, age in ((1, 50), (2, 40), (3, 30), (6, 0)):
        make_checkpoint(tmp_path, step, complete, age=age)
    # A killed save (no trainer_state.json), and a deletion killed halfway, which made its folder newer.
    make_checkpoint(tmp_path, 4, ["model.safetensors"], age=45)
    make_checkpoint(tmp_path, 5, ["trainer_state.json"], age=5)
    deleted = rotate_checkpoints(str(tmp_path), 3, keep=[])
    assert sorted(os.path.basename(path) for path in deleted) == ["checkpoint-1", "checkpoint-4", "checkpoint-5"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-3", "checkpoint-6"]


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
