"""Stop signals sent for real to a training process (and to every process of a two-process gloo run): the run
finishes its update, writes a complete checkpoint, says how to resume and exits with 128 + the signal number;
resuming ends with the weights of an uninterrupted run, bit for bit."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from conftest import PadCollator, make_args, task_dataset, tiny_marian, train_with
from hf_l2mt import L2MTTrainer
from hf_l2mt.core.anchor import ANCHOR_FILE
from hf_l2mt.core.checkpoints import missing_parts
from hf_l2mt.core.fisher import FISHER_FILE, save_fisher
from hf_l2mt.core.preemption import PreemptionCallback, TrainingPreempted, exit_code
from hf_l2mt.core.run_lock import LOCK_FILE
from scripts.train_until_signalled import SETTINGS
from test_distributed import CPU_CONFIG, REPO, free_port

SCRIPT = os.path.join(REPO, "tests", "scripts", "train_until_signalled.py")
WAIT_S = 240
STOPPED = re.compile(r"training stopped by (SIG\w+) after update (\d+); the newest complete checkpoint is (\S+)\. "
                     r"Resume with the same command and --resume_from_checkpoint latest, or "
                     r"trainer\.train\(resume_from_checkpoint=True\) \(exit status (\d+)\)")


@pytest.fixture
def inputs(tmp_path):
    """The base model and an EWC Fisher file (positive, uneven weights), as the script reads them."""
    base = tiny_marian(seed=7)
    base.save_pretrained(tmp_path / "base")
    generator = torch.Generator().manual_seed(1)
    fisher = {n: torch.rand(p.shape, generator=generator) * 3 + 0.1 for n, p in base.named_parameters()}
    save_fisher(fisher, str(tmp_path / "fisher.safetensors"))
    return [str(tmp_path / "base"), str(tmp_path / "fisher.safetensors"), str(tmp_path / "markers")]


def wait_for_update(marker_dir, ranks: int, run: str, step: int, process) -> list[int]:
    """Wait until every rank has finished update ``step`` of ``run``; return the ranks' pids."""
    deadline = time.monotonic() + WAIT_S
    while True:
        markers = []
        for rank in range(ranks):
            try:
                markers.append(json.loads(open(os.path.join(marker_dir, f"rank{rank}.json")).read()))
            except (OSError, json.JSONDecodeError):
                break
        if len(markers) == ranks and all(m["run"] == run and m["step"] >= step for m in markers):
            return [m["pid"] for m in markers]
        if process.poll() is not None:
            pytest.fail(f"the training script ended with {process.returncode} before it was signalled")
        if time.monotonic() > deadline:
            pytest.fail(f"update {step} of {run} not reached after {WAIT_S} s")
        time.sleep(0.05)


def wait_for_file(path: str, process) -> None:
    deadline = time.monotonic() + WAIT_S
    while not os.path.exists(path):
        if process.poll() is not None:
            pytest.fail(f"the training script ended with {process.returncode} before writing {path}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} not written after {WAIT_S} s")
        time.sleep(0.05)


def assert_complete_checkpoint(checkpoint: str, processes: int) -> None:
    assert missing_parts(checkpoint, needs_anchor=True) == []
    files = os.listdir(checkpoint)
    assert ANCHOR_FILE in files and FISHER_FILE in files
    expected_rng = ["rng_state.pth"] if processes == 1 else [f"rng_state_{r}.pth" for r in range(processes)]
    assert sorted(f for f in files if f.startswith("rng_state")) == expected_rng


def stop_report(stderr: str) -> tuple[str, int, str, int]:
    found = STOPPED.findall(stderr)
    assert len(found) == 1, f"one stop message expected in:\n{stderr[-4000:]}"
    name, step, checkpoint, status = found[0]
    return name, int(step), checkpoint, int(status)


def assert_same_final_weights(run_dir, reference_dir) -> None:
    resumed, uninterrupted = load_file(f"{run_dir}/model.safetensors"), load_file(f"{reference_dir}/model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in resumed.items():
        assert torch.equal(tensor, uninterrupted[name]), name


def test_sigterm_stops_after_the_update_with_a_checkpoint_and_resumes_bit_for_bit(tmp_path, inputs):
    stopped = tmp_path / "stopped"
    log = tmp_path / "stderr.txt"
    # A session of its own, so that the signals reach the process group, dataloader worker included, as a
    # terminal's Ctrl-C or a scheduler's signal to every process of the job does.
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, SCRIPT, *inputs, str(stopped), "--hold"], stderr=stderr,
                                   stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        (pid,) = wait_for_update(inputs[2], 1, "stopped", 2, process)
        assert json.loads((stopped / LOCK_FILE).read_text())["pid"] == pid
        os.killpg(process.pid, signal.SIGTERM)
        # --hold: the run says it is stopping and waits there, so the second signal lands while it stops.
        wait_for_file(os.path.join(inputs[2], "rank0.stopping"), process)
        os.killpg(process.pid, signal.SIGINT)
        open(os.path.join(inputs[2], "release"), "w").close()
        process.wait(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode == exit_code(signal.SIGTERM) == 143
    text = log.read_text()
    assert "received SIGINT again: still stopping" in text
    name, step, checkpoint, status = stop_report(text)
    assert (name, status) == ("SIGTERM", 143)
    assert 2 <= step < SETTINGS["max_steps"]
    assert checkpoint == str(stopped / f"{PREFIX_CHECKPOINT_DIR}-{step}")
    assert sorted(os.listdir(stopped)) == [f"{PREFIX_CHECKPOINT_DIR}-{step}"]  # the lock is gone
    assert_complete_checkpoint(checkpoint, processes=1)

    # Resumed and uninterrupted runs in fresh processes, as the stopped one: what this test process holds (the
    # kernels torch chose when it loaded here, settings earlier tests of this worker left) must not be what
    # tells the runs apart.
    for run_dir, resume in ((stopped, ["--resume"]), (tmp_path / "full", [])):
        subprocess.run([sys.executable, SCRIPT, *inputs, str(run_dir), *resume], check=True, timeout=WAIT_S,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert_same_final_weights(stopped, tmp_path / "full")


def test_sigusr1_to_every_process_of_a_gloo_run_stops_both_at_one_update_and_resumes_bit_for_bit(tmp_path, inputs):
    full, stopped, markers = tmp_path / "full", tmp_path / "stopped", inputs[2]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", CPU_CONFIG,
                "--main_process_port", str(free_port()), SCRIPT, *inputs]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen([*launcher, str(full), str(stopped)], env=env, cwd=REPO, stderr=stderr,
                                   stdout=subprocess.DEVNULL)
    try:
        pids = wait_for_update(markers, 2, "stopped", 2, process)
        # Only the main process takes the lock.
        assert json.loads((stopped / LOCK_FILE).read_text())["pid"] == pids[0]
        for pid in pids:  # every rank, as schedulers signal every process of a job
            os.kill(pid, signal.SIGUSR1)
        process.wait(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode != 0
    code = str(exit_code(signal.SIGUSR1))
    assert [open(os.path.join(markers, f"rank{r}.exit")).read() for r in (0, 1)] == [code, code]
    name, step, checkpoint, status = stop_report(log.read_text())
    assert (name, str(status)) == ("SIGUSR1", code)
    assert 2 <= step < SETTINGS["max_steps"]
    # Both ranks stopped at that update: one checkpoint, with each rank's RNG state in it.
    assert sorted(os.listdir(stopped)) == [f"{PREFIX_CHECKPOINT_DIR}-{step}"]
    assert_complete_checkpoint(checkpoint, processes=2)

    resumed = subprocess.run([*launcher, str(stopped), "--resume"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=WAIT_S)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_same_final_weights(stopped, full)


class FlagFromAnotherProcess:
    """Stands in for the reduction across processes: another process saw ``signum`` at update ``at``."""

    def __init__(self, signum: int, at: int):
        self.signum, self.at, self.calls = signum, at, []

    def __call__(self, local: int) -> int:
        self.calls.append(local)
        return max(local, self.signum if len(self.calls) >= self.at else 0)


def test_a_signal_seen_by_another_process_stops_this_one_at_the_same_update(tmp_path):
    """Ranks may see a signal at different updates; each stops where the reduction first reports one."""
    other = FlagFromAnotherProcess(signal.SIGUSR1, at=2)
    args = make_args(tmp_path / "run", max_steps=5, l2sp_lambda=0.1)
    trainer = L2MTTrainer(model=tiny_marian(), args=args, train_dataset=task_dataset(32), data_collator=PadCollator())
    trainer.preemption.largest_across_processes = other
    with pytest.raises(TrainingPreempted) as stopped:
        trainer.train()
    assert stopped.value.code == exit_code(signal.SIGUSR1) and stopped.value.step == 2
    assert other.calls[:2] == [0, 0]  # this process saw no signal; it asked once per update, up to update 2
    assert stopped.value.checkpoint == str(tmp_path / "run" / f"{PREFIX_CHECKPOINT_DIR}-2")
    assert missing_parts(stopped.value.checkpoint, needs_anchor=True) == []


def test_handlers_are_put_back_and_a_signal_after_the_last_update_is_handed_on(tmp_path):
    received = []
    sigterm_before = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        callback = PreemptionCallback(lambda local: local)
        with callback.installed():
            assert signal.getsignal(signal.SIGUSR1) == callback._handle
            assert signal.getsignal(signal.SIGTERM) == callback._handle
            os.kill(os.getpid(), signal.SIGUSR1)  # after the last update's check: training has all its updates
        assert signal.getsignal(signal.SIGTERM) == sigterm_before
        assert received == []
        callback.raise_if_stopped(str(tmp_path), needs_anchor=False, is_main_process=True)
        assert received == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_without_a_signal_training_runs_to_the_end_and_leaves_no_lock(tmp_path):
    trainer = train_with(tiny_marian(), task_dataset(8), make_args(tmp_path / "run", max_steps=2))
    assert trainer.state.global_step == 2 and trainer.preemption.stop_signal is None
    assert not (tmp_path / "run" / LOCK_FILE).exists()
