"""Fine-tunes the tiny Marian saved in BASE_DIR with EWC into each RUN_DIR in turn, one update every STEP_SECONDS.

    python tests/scripts/train_until_signalled.py BASE_DIR FISHER_FILE MARKER_DIR RUN_DIR... [--resume] [--hold]
    accelerate launch --config_file recipes/accelerate_configs/cpu_multi_process.yaml \
        tests/scripts/train_until_signalled.py BASE_DIR FISHER_FILE MARKER_DIR RUN_DIR... [--resume]

tests/test_preemption.py starts it and sends it a stop signal once MARKER_DIR shows training under way,
as a scheduler pre-empting the job would. After each update every process writes
``MARKER_DIR/rank<R>.json`` (its pid, the run and the update); when it ends it writes its exit status to
``MARKER_DIR/rank<R>.exit``, which a launcher does not pass on. ``--resume`` resumes every run from its
newest complete checkpoint. Each finished run saves its final model into its RUN_DIR.

``--hold``: once a stop signal has arrived, the process writes ``MARKER_DIR/rank<R>.stopping`` after the
checkpoint it makes and waits there, still stopping, until ``MARKER_DIR/release`` exists, so that a test can send a
second signal that is sure to land before the run ends, however loaded the machine.
"""

import argparse
import json
import os
import sys
import time

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS_DIR, os.path.dirname(TESTS_DIR)]  # conftest's helpers and this checkout's hf_l2mt

import torch  # noqa: E402
from transformers import MarianMTModel, TrainerCallback  # noqa: E402

from conftest import PadCollator, make_args, task_dataset  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402

STEP_SECONDS = 0.3
# No scheduled checkpoint: the only one a stopped run has is the one the signal makes it write.
SETTINGS = dict(
    max_steps=12, save_strategy="no", lr_scheduler_type="linear", l2sp_lambda=0.5, l2sp_schedule="linear",
    weight_decay=0.05, max_grad_norm=1.0, dataloader_num_workers=1,
)
DATA = dict(n=48, seed=5)


class Marker(TrainerCallback):
    """Says which update this process has finished, then waits, so that a signal lands mid-run."""

    def __init__(self, marker_dir: str, run: str, rank: int, hold: bool = False):
        self.marker_dir, self.run, self.rank, self.hold = marker_dir, run, rank, hold
        self.path = os.path.join(marker_dir, f"rank{rank}.json")
        self.preemption = None  # the trainer's PreemptionCallback, set once the trainer exists

    def on_step_end(self, args, state, control, **kwargs):
        with open(f"{self.path}.tmp", "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "run": self.run, "step": state.global_step}, handle)
        os.replace(f"{self.path}.tmp", self.path)
        time.sleep(STEP_SECONDS)

    def on_save(self, args, state, control, **kwargs):
        # After the checkpoint a stop signal makes, still inside train(), where a second signal is reported.
        if self.hold and self.preemption.received is not None:
            open(os.path.join(self.marker_dir, f"rank{self.rank}.stopping"), "w").close()
            while not os.path.exists(os.path.join(self.marker_dir, "release")):
                time.sleep(0.05)


def train(base_dir: str, fisher_file: str, marker_dir: str, run_dir: str, resume: bool, rank: int,
          hold: bool = False) -> None:
    # One CPU thread in every process that trains: the stopped run's first updates happen in a subprocess, the
    # resumed and uninterrupted ones in the test's process, whose thread count an earlier test may have changed
    # (the demo sets it). Another thread count sums in another order, and the near-zero gradients of the
    # attention key biases (softmax ignores them) then differ in their last bits, which AdamW magnifies.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(base_dir, fisher_file, marker_dir, run_dir, resume, rank, hold)
    finally:
        torch.set_num_threads(threads)


def _train(base_dir: str, fisher_file: str, marker_dir: str, run_dir: str, resume: bool, rank: int,
           hold: bool) -> None:
    marker = Marker(marker_dir, os.path.basename(run_dir), rank, hold)
    trainer = L2MTTrainer(
        model=MarianMTModel.from_pretrained(base_dir),
        args=make_args(run_dir, l2sp_fisher_path=fisher_file, **SETTINGS),
        train_dataset=task_dataset(**DATA), data_collator=PadCollator(),
        callbacks=[marker],
    )
    marker.preemption = trainer.preemption
    trainer.train(resume_from_checkpoint="latest" if resume else None)
    trainer.save_model()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_dir")
    parser.add_argument("fisher_file")
    parser.add_argument("marker_dir")
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hold", action="store_true")
    cli = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(cli.marker_dir, exist_ok=True)
    status = "error"
    try:
        for run_dir in cli.run_dirs:
            train(cli.base_dir, cli.fisher_file, cli.marker_dir, run_dir, cli.resume, rank, cli.hold)
        status = 0
    except SystemExit as stop:
        status = stop.code
        raise
    finally:
        with open(os.path.join(cli.marker_dir, f"rank{rank}.exit"), "w", encoding="utf-8") as handle:
            handle.write(str(status))


if __name__ == "__main__":
    main()
