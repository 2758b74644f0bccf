"""A run killed with SIGKILL after a checkpoint resumes to the weights and λ schedule of an uninterrupted run;
the recipes resume from the newest complete checkpoint with ``--resume_from_checkpoint latest`` (or ``auto``, which
starts from the beginning when there is none). tests/test_requeue.py kills a run many times."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from transformers import MarianMTModel

from conftest import assert_same_params, make_args, params_of, task_dataset, tiny_marian, train_with
from hf_l2mt.core.checkpoints import missing_parts
from hf_l2mt.apps.recipes.runner import run
from scripts.train_until_killed import DATA, SETTINGS
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "train_until_killed.py")


def kill_after_first_checkpoint(base_dir, output_dir, timeout=600.0) -> str:
    """Run the script until a complete checkpoint exists, SIGKILL it, and return that checkpoint.

    The script waits after that checkpoint, so no deadline races it; ``timeout`` only stops a hung run.
    """
    process = subprocess.Popen([sys.executable, SCRIPT, str(base_dir), str(output_dir)], stderr=subprocess.PIPE)
    first = os.path.join(output_dir, f"checkpoint-{SETTINGS['save_steps']}")
    deadline = time.monotonic() + timeout
    try:
        while not (os.path.isdir(first) and not missing_parts(first, needs_anchor=True)):
            if process.poll() is not None:
                pytest.fail(f"the training script ended before it was killed:\n{process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no complete {first} after {timeout} s")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return first


def logged_lambdas(trainer) -> dict[int, float]:
    return {row["step"]: row["l2sp_lambda"] for row in trainer.state.log_history if "l2sp_lambda" in row}


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    base_dir = tmp_path / "base"
    tiny_marian(seed=7).save_pretrained(base_dir)
    killed_dir = tmp_path / "killed"
    checkpoint = kill_after_first_checkpoint(base_dir, killed_dir)
    last_step = SETTINGS["max_steps"]
    assert not (killed_dir / f"checkpoint-{last_step}").exists(), "the run ended before it was killed"
    shutil.copytree(killed_dir, tmp_path / "latest")

    data = task_dataset(**DATA)
    uninterrupted = MarianMTModel.from_pretrained(base_dir)
    full = train_with(uninterrupted, data, make_args(tmp_path / "full", **SETTINGS))
    expected = params_of(uninterrupted)
    expected_lambdas = logged_lambdas(full)

    for output_dir, resume in ((killed_dir, checkpoint), (tmp_path / "latest", "latest")):
        model = MarianMTModel.from_pretrained(base_dir)
        resumed = train_with(model, data, make_args(output_dir, **SETTINGS), resume_from_checkpoint=resume)
        assert_same_params(params_of(model), expected)
        # The history up to the checkpoint comes from it; the steps after it were logged by the resumed run.
        lambdas = logged_lambdas(resumed)
        assert sorted(lambdas) == list(range(1, last_step + 1))
        assert lambdas == pytest.approx(expected_lambdas), f"resume_from_checkpoint={resume!r}"


def test_recipe_resumes_from_latest_complete_checkpoint(tmp_path, caplog):
    marian_dir = save_checkpoint(tmp_path / "opus-mt-tiny", "marian")
    train = write_tsv(tmp_path / "train.tsv", sentence_pairs(24, seed=0))
    out = tmp_path / "run"
    argv = [
        "--model_name_or_path", marian_dir, "--src_lang", "en", "--tgt_lang", "de", "--train_source", train,
        "--eval_sources", f"general={train}",
        "--max_eval_samples", "2", "--per_device_train_batch_size", "4", "--save_strategy", "steps",
        "--save_steps", "1", "--eval_strategy", "no", "--logging_steps", "1", "--generation_num_beams", "1",
        "--generation_max_length", "8", "--max_source_length", "16", "--max_target_length", "16", "--use_cpu",
        "--dataloader_num_workers", "0", "--report_to", "none", "--output_dir", str(out),
    ]
    with caplog.at_level(logging.INFO, logger="hf_l2mt"):
        run({}, [*argv, "--max_steps", "2", "--resume_from_checkpoint", "auto"])
    assert f"resume_from_checkpoint 'auto': {out} holds no complete checkpoint; training starts from the beginning" in (
        caplog.text)
    os.remove(out / "checkpoint-2" / "trainer_state.json")  # as if killed while saving update 2

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        run({}, [*argv, "--max_steps", "3", "--resume_from_checkpoint", "latest"])
    assert f"skipping incomplete checkpoint {out / 'checkpoint-2'}: no trainer_state.json" in caplog.text
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text(encoding="utf-8"))
    assert [row["step"] for row in state["log_history"] if "loss" in row] == [1, 2, 3]
