"""A job killed again and again, inside its saves and at random moments, and restarted each time with the same
command (``resume_from_checkpoint="auto"``), ends with the weights of a run never stopped, bit for bit.

The first kills land inside the very first checkpoint save, so the restarts after them find no complete
checkpoint and start from the beginning over the half-written folder (``latest`` would fail at every one).
"""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_marian
from hf_l2mt.core.checkpoints import checkpoint_folders, latest_complete_checkpoint, missing_parts
from hf_l2mt.core.run_lock import LOCK_FILE
from scripts.train_requeued import SETTINGS

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "train_requeued.py")
WAIT_S = 300  # only stops a hung process; nothing here races a clock
# One start per entry, each ended by SIGKILL: inside its N-th save at a point of it, or (None) at a random moment.
# The deletion of save_total_limit comes once the run has written more than 3 checkpoints.
KILLS = ["trainer_state:1", "anchor:1", None, "weights:2", None, None, "rotation:1", None, None, None]
HOLD_AFTER_SAVES = 3  # a start killed at a random moment waits after its third save


def start(base_dir, run_dir, saves_file, **env) -> subprocess.Popen:
    log = open(f"{saves_file}.stderr", "w")
    return subprocess.Popen([sys.executable, SCRIPT, str(base_dir), str(run_dir), str(saves_file)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)


def saves(saves_file) -> list[dict]:
    """The saves the process has recorded so far (a line still being written is left out)."""
    try:
        with open(saves_file, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.endswith("\n")]
    except FileNotFoundError:
        return []


def finish(process: subprocess.Popen, saves_file) -> int:
    try:
        process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"no end after {WAIT_S} s:\n{open(f'{saves_file}.stderr').read()[-3000:]}")
    return process.returncode


def kill_at_a_random_moment(process, saves_file, delay: float) -> None:
    """SIGKILL ``delay`` seconds after the process's first save: the start has made progress, and the moment
    falls in an update, a save, a deletion or the wait after the third save."""
    deadline = time.monotonic() + WAIT_S
    while not saves(saves_file):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no save from this start:\n{open(f'{saves_file}.stderr').read()[-3000:]}")
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)


def incomplete_folders(run_dir) -> list[str]:
    return sorted(os.path.basename(path) for path in checkpoint_folders(str(run_dir))
                  if missing_parts(path, needs_anchor=True))


def test_killed_again_and_again_and_restarted_with_the_same_command_ends_as_a_run_never_stopped(tmp_path):
    base_dir = tmp_path / "base"
    tiny_marian(seed=7).save_pretrained(base_dir)
    # The run never stopped, first: it also tells how long an update and its checkpoint take on this machine.
    reference = tmp_path / "reference"
    assert finish(start(base_dir, reference, tmp_path / "reference.jsonl"), tmp_path / "reference.jsonl") == 0
    times = [row["time"] for row in saves(tmp_path / "reference.jsonl")]
    update = statistics.median(b - a for a, b in zip(times, times[1:]))

    run, rng = tmp_path / "requeued", random.Random(24)
    for attempt, kill in enumerate(KILLS):
        saves_file = tmp_path / f"start{attempt}.jsonl"
        if kill is None:
            process = start(base_dir, run, saves_file, REQUEUE_HOLD_AFTER_SAVES=str(HOLD_AFTER_SAVES))
            kill_at_a_random_moment(process, saves_file, rng.uniform(0, 2.5 * update))
        else:
            if kill.startswith("rotation"):
                assert len(checkpoint_folders(str(run))) >= SETTINGS["save_total_limit"], "no deletion would come"
            process = start(base_dir, run, saves_file, REQUEUE_KILL_IN_SAVE=kill)
        assert finish(process, saves_file) == -signal.SIGKILL, f"start {attempt} ({kill}) was not killed"
        if kill is not None:
            assert incomplete_folders(run), f"start {attempt} ({kill}) left every checkpoint complete"
        if attempt < 2:  # killed inside the first save of all
            assert latest_complete_checkpoint(str(run), needs_anchor=True) is None
            assert incomplete_folders(run) == ["checkpoint-1"]
    assert latest_complete_checkpoint(str(run), needs_anchor=True) is not None
    assert (run / LOCK_FILE).exists()  # left by the killed process; the next start takes it over

    assert finish(start(base_dir, run, tmp_path / "last.jsonl"), tmp_path / "last.jsonl") == 0
    resumed, uninterrupted = load_file(run / "model.safetensors"), load_file(reference / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert [name for name in resumed if not torch.equal(resumed[name], uninterrupted[name])] == []
    last = run / f"checkpoint-{SETTINGS['max_steps']}"
    state = json.loads((last / "trainer_state.json").read_text(encoding="utf-8"))
    assert [row["step"] for row in state["log_history"] if "loss" in row] == list(range(1, SETTINGS["max_steps"] + 1))
    # What the kills left half-written was written again or deleted; the run's lock is gone.
    assert incomplete_folders(run) == []
    assert not (run / LOCK_FILE).exists()
