"""The command a requeued job runs at every start: fine-tunes the tiny Marian saved in BASE_DIR into OUTPUT_DIR
with ``resume_from_checkpoint="auto"``, a checkpoint every update, then saves the final model there.

    python tests/scripts/train_requeued.py BASE_DIR OUTPUT_DIR SAVES_FILE

After every checkpoint it appends a line ``{"step", "time"}`` to SAVES_FILE. tests/test_requeue.py kills it
again and again; two variables of the environment are its hooks, never set by a user:

- ``REQUEUE_KILL_IN_SAVE=POINT:N``: the process sends itself SIGKILL inside its N-th checkpoint save, at POINT:
  ``anchor`` (the anchor written, nothing else), ``weights`` (the weights written, not the optimizer),
  ``trainer_state`` (half of trainer_state.json written) or ``rotation`` (save_total_limit's deletion of an
  old checkpoint has removed its weights);
- ``REQUEUE_HOLD_AFTER_SAVES=K``: after its K-th save the process waits until it is killed, so that a kill at
  a random moment lands before the run ends, however fast the machine.
"""

import json
import os
import signal
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import MarianMTModel, TrainerCallback  # noqa: E402
from transformers.trainer_callback import TrainerState  # noqa: E402

from conftest import PadCollator, make_args, task_dataset  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402
from hf_l2mt.core import anchor, checkpoints  # noqa: E402

# 48 pairs in batches of 4: 12 updates an epoch, so resumes also land in the second and third epochs.
SETTINGS = dict(
    max_steps=30, save_strategy="steps", save_steps=1, save_total_limit=3, lr_scheduler_type="linear",
    l2sp_lambda=0.5, l2sp_schedule="linear", weight_decay=0.05, max_grad_norm=1.0,
)
DATA = dict(n=48, seed=5)


class Saves(TrainerCallback):
    """Records each checkpoint in SAVES_FILE, and holds the run after ``hold_after`` of them."""

    def __init__(self, path: str, hold_after: int | None):
        self.path, self.hold_after, self.count = path, hold_after, 0

    def on_save(self, args, state, control, **kwargs):
        self.count += 1
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": state.global_step, "time": time.monotonic()}) + "\n")
        if self.count == self.hold_after:
            threading.Event().wait()


def kill_inside_save(point: str, nth: int) -> None:
    """Wrap the step of a checkpoint save named ``point`` so that the ``nth`` save of this process dies there."""
    saves = {"count": 0}

    def die_in_nth_save():
        if saves["count"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    save_checkpoint = L2MTTrainer._save_checkpoint

    def counted(self, model, trial):
        saves["count"] += 1
        save_checkpoint(self, model, trial)

    L2MTTrainer._save_checkpoint = counted
    if point == "anchor":
        save_anchor = anchor.save

        def after_anchor(*args, **kwargs):
            save_anchor(*args, **kwargs)
            die_in_nth_save()

        anchor.save = after_anchor
    elif point == "weights":
        save_optimizer = L2MTTrainer._save_optimizer_and_scheduler

        def after_weights(self, output_dir):
            die_in_nth_save()
            save_optimizer(self, output_dir)

        L2MTTrainer._save_optimizer_and_scheduler = after_weights
    elif point == "trainer_state":
        save_state = TrainerState.save_to_json

        def half_state(self, json_path):
            save_state(self, json_path)
            if saves["count"] == nth:
                os.truncate(json_path, os.path.getsize(json_path) // 2)
            die_in_nth_save()

        TrainerState.save_to_json = half_state
    elif point == "rotation":
        rmtree = checkpoints.shutil.rmtree

        def halfway(path, **kwargs):
            if saves["count"] == nth:
                os.remove(os.path.join(path, "model.safetensors"))
            die_in_nth_save()
            rmtree(path, **kwargs)

        checkpoints.shutil = types.SimpleNamespace(rmtree=halfway)
    else:
        raise ValueError(f"REQUEUE_KILL_IN_SAVE: unknown point {point!r}")


def main(base_dir: str, output_dir: str, saves_file: str) -> None:
    if "REQUEUE_KILL_IN_SAVE" in os.environ:
        point, nth = os.environ["REQUEUE_KILL_IN_SAVE"].split(":")
        kill_inside_save(point, int(nth))
    hold_after = int(os.environ["REQUEUE_HOLD_AFTER_SAVES"]) if "REQUEUE_HOLD_AFTER_SAVES" in os.environ else None
    trainer = L2MTTrainer(
        model=MarianMTModel.from_pretrained(base_dir), args=make_args(output_dir, **SETTINGS),
        train_dataset=task_dataset(**DATA), data_collator=PadCollator(), callbacks=[Saves(saves_file, hold_after)],
    )
    trainer.train(resume_from_checkpoint="auto")
    trainer.save_model()


if __name__ == "__main__":
    main(*sys.argv[1:])
