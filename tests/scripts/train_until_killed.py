"""Fine-tunes the tiny Marian saved in BASE_DIR into OUTPUT_DIR and waits after its first checkpoint.

    python tests/scripts/train_until_killed.py BASE_DIR OUTPUT_DIR

tests/test_crash_resume.py starts it and kills it with SIGKILL once a checkpoint is on disk, as a
pre-empted job would be killed; the wait keeps the run from ending first, however loaded the machine.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import MarianMTModel, TrainerCallback  # noqa: E402

from conftest import PadCollator, make_args, task_dataset  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402

SETTINGS = dict(
    max_steps=12, save_strategy="steps", save_steps=3, lr_scheduler_type="linear", l2sp_lambda=0.5,
    l2sp_schedule="linear", weight_decay=0.05, max_grad_norm=1.0,
)
DATA = dict(n=48, seed=5)


class WaitToBeKilled(TrainerCallback):
    """Holds the run once its first checkpoint is complete (on_save comes after the whole checkpoint)."""

    def on_save(self, args, state, control, **kwargs):
        threading.Event().wait()


def main(base_dir: str, output_dir: str) -> None:
    trainer = L2MTTrainer(
        model=MarianMTModel.from_pretrained(base_dir), args=make_args(output_dir, **SETTINGS),
        train_dataset=task_dataset(**DATA), data_collator=PadCollator(), callbacks=[WaitToBeKilled()],
    )
    trainer.train()


if __name__ == "__main__":
    main(*sys.argv[1:])
