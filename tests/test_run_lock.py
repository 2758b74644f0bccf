"""One run per output_dir: a second run on a folder a live run holds is refused; a dead run's lock is taken over."""

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from transformers import TrainerCallback

from conftest import PadCollator, make_args, task_dataset, tiny_marian, train_with
from hf_l2mt import L2MTTrainer
from hf_l2mt.apps.publish.hub import NEVER_UPLOADED
from hf_l2mt.core import run_lock
from hf_l2mt.core.run_lock import LOCK_FILE, OutputDirInUseError


def write_lock(output_dir, pid: int, host: str | None = None, **slurm) -> str:
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    with open(path, "w") as handle:
        json.dump({"pid": pid, "host": host or socket.gethostname(), "started": time.time() - 60, **slurm}, handle)
    return path


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_holds_this_process_and_is_removed_when_released(tmp_path):
    before = time.time()
    path = run_lock.acquire(str(tmp_path / "run"))
    after = time.time()
    holder = json.loads(open(path).read())
    assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
    # The clock read while acquiring, however long that took on a loaded machine.
    assert before <= holder["started"] <= after
    run_lock.release(path)
    assert not os.path.exists(path)


def test_second_run_on_a_live_runs_output_dir_is_refused_with_the_holder(tmp_path, live_pid):
    path = write_lock(tmp_path / "run", live_pid)
    before = open(path).read()
    with pytest.raises(OutputDirInUseError) as refused:
        train_with(tiny_marian(), task_dataset(8), make_args(tmp_path / "run", max_steps=1))
    message = str(refused.value)
    assert f"output_dir: '{tmp_path / 'run'}' is in use by another training run (pid {live_pid} on host" in message
    assert "choose another output_dir" in message and path in message
    assert open(path).read() == before  # the live run's lock is left alone
    assert os.listdir(tmp_path / "run") == [LOCK_FILE]  # nothing was trained or written


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, dead_pid, caplog):
    write_lock(tmp_path / "run", dead_pid)
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        trainer = train_with(tiny_marian(), task_dataset(8), make_args(tmp_path / "run", max_steps=1))
    assert trainer.state.global_step == 1
    assert f"taking over the lock of a run that no longer runs (pid {dead_pid} on host" in caplog.text
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_unreadable_lock_is_taken_over(tmp_path, caplog):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text("")  # a writer killed between creating and filling it
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        path = run_lock.acquire(str(tmp_path / "run"))
    assert json.loads(open(path).read())["pid"] == os.getpid()
    assert "(unreadable)" in caplog.text


def test_lock_from_another_host_is_refused(tmp_path):
    write_lock(tmp_path / "run", os.getpid(), host="other-node")
    with pytest.raises(OutputDirInUseError, match="on host 'other-node'.*if no such run is alive on host 'other-node', "
                                                  "delete the lock file"):
        run_lock.acquire(str(tmp_path / "run"))


def test_a_requeued_slurm_job_takes_over_the_lock_of_its_earlier_start_on_another_node(tmp_path, monkeypatch,
                                                                                       caplog):
    write_lock(tmp_path / "run", 4242, host="gpu-b01", slurm_job_id="777", slurm_restart_count=0)
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # set by SLURM when it requeues the job
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        path = run_lock.acquire(str(tmp_path / "run"))
    holder = json.loads(open(path).read())
    assert (holder["pid"], holder["slurm_job_id"], holder["slurm_restart_count"]) == (os.getpid(), "777", 1)
    assert "taking over the lock of a run that no longer runs (pid 4242 on host 'gpu-b01'" in caplog.text


@pytest.mark.parametrize("job, restarts", [("777", None), ("776", "3")])
def test_a_lock_of_this_start_of_the_job_or_of_another_job_on_another_node_is_refused(tmp_path, monkeypatch, job,
                                                                                     restarts):
    write_lock(tmp_path / "run", 4242, host="gpu-b01", slurm_job_id=job, slurm_restart_count=0)
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    if restarts is None:
        monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)  # a first start
    else:
        monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    with pytest.raises(OutputDirInUseError, match="pid 4242 on host 'gpu-b01'"):
        run_lock.acquire(str(tmp_path / "run"))


def test_a_lock_holding_this_processs_own_id_is_stale(tmp_path, caplog):
    """A container restarted on the same host often gets the process id its killed run had."""
    left = open(write_lock(tmp_path / "run", os.getpid())).read()
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        path = run_lock.acquire(str(tmp_path / "run"))
    assert open(path).read() != left  # written anew, with this start's time
    assert f"taking over the lock of a run that no longer runs (pid {os.getpid()} on host" in caplog.text


def test_lock_is_removed_when_training_fails(tmp_path):
    args = make_args(tmp_path / "run", max_steps=3, l2sp_lambda=0.1, l2sp_warmup_steps=3)
    with pytest.raises(ValueError, match="l2sp_warmup_steps: got 3"):
        train_with(tiny_marian(), task_dataset(8), args)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_other_processes_raise_the_main_processs_refusal(tmp_path):
    """Under several processes only the main one takes the lock; the others raise what it found."""
    refusal = "output_dir: 'run' is in use by another training run (pid 1 on host 'h', …)"
    with pytest.raises(OutputDirInUseError) as raised:
        with run_lock.hold(str(tmp_path / "run"), is_main_process=False, from_main=lambda value: refusal):
            pytest.fail("the block ran although the main process was refused")
    assert str(raised.value) == refusal
    assert not (tmp_path / "run").exists()  # only the main process touches output_dir


class ListAtSave(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_save(self, args, state, control, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        self.seen.append((sorted(os.listdir(args.output_dir)), sorted(os.listdir(checkpoint))))


def test_lock_is_held_while_training_and_never_uploaded_or_checkpointed(tmp_path):
    assert LOCK_FILE in NEVER_UPLOADED and LOCK_FILE.startswith("_")  # transformers' own uploads skip "_*"
    listing = ListAtSave()
    trainer = L2MTTrainer(model=tiny_marian(), train_dataset=task_dataset(8), data_collator=PadCollator(),
                          args=make_args(tmp_path / "run", max_steps=2, save_strategy="steps", save_steps=1),
                          callbacks=[listing])
    trainer.train()
    assert len(listing.seen) == 2
    for run_files, checkpoint_files in listing.seen:
        assert LOCK_FILE in run_files and LOCK_FILE not in checkpoint_files
    assert LOCK_FILE not in os.listdir(tmp_path / "run")
