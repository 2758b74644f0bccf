"""Fine-tunes the tiny Marian saved in BASE_DIR into OUTPUT_DIR, one update every STEP_SECONDS.

    python tests/scripts/train_until_killed.py BASE_DIR OUTPUT_DIR

tests/test_crash_resume.py starts it and kills it with SIGKILL once a checkpoint is on disk, as a
pre-empted job would be killed; the slow updates leave time to do so before the run ends.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import MarianMTModel, TrainerCallback  # noqa: E402

from conftest import PadCollator, make_args, task_dataset  # noqa: E402
from hf_l2mt import L2MTTrainer  # noqa: E402

STEP_SECONDS = 0.3
SETTINGS = dict(
    max_steps=12, save_strategy="steps", save_steps=3, lr_scheduler_type="linear", l2sp_lambda=0.5,
    l2sp_schedule="linear", weight_decay=0.05, max_grad_norm=1.0,
)
DATA = dict(n=48, seed=5)


class SlowUpdates(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(STEP_SECONDS)


def main(base_dir: str, output_dir: str) -> None:
    trainer = L2MTTrainer(
        model=MarianMTModel.from_pretrained(base_dir), args=make_args(output_dir, **SETTINGS),
        train_dataset=task_dataset(**DATA), data_collator=PadCollator(), callbacks=[SlowUpdates()],
    )
    trainer.train()


if __name__ == "__main__":
    main(*sys.argv[1:])
