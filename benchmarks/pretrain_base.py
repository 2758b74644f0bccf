"""A "pretrained" base model for the forgetting study: trained on the general domain, resumable, cached.

A useful Ding base takes hours on a CPU, so pretraining runs for a budget of minutes (or updates)
counted over all runs together: each run resumes from the latest checkpoint in the cache folder and
stops when the budget is spent, and a later run with a larger budget trains on. The learning rate is
constant after warm-up, so an extended run is the same run as one that was given the larger budget
from the start. A checkpoint is written every ``save_minutes`` and at the end; a killed run loses
at most that much.

Cache folder layout::

    tokenizer/         MarianTokenizer (SentencePiece) trained on the general training pairs
    trainer/           Trainer checkpoints (model, optimizer, scheduler, RNG states)
    base/              the latest base model and its tokenizer (save_pretrained), what fine-tuning starts from
    progress.json      updates, seconds of training, last loss and the model settings

Start it in the background, single-threaded so a core stays free, and let it run as long as it may:

    nohup python -m benchmarks.domain_adaptation --task ding --stage pretrain --pretrain_minutes 600 \\
        --cache_dir ~/.cache/hf_l2mt/ding_base > /tmp/ding_base.log 2>&1 &
"""

import copy
import json
import logging
import os
import shutil
import time

from transformers import MarianMTModel, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.data import make_data_collator

logger = logging.getLogger("hf_l2mt")


class Budget(TrainerCallback):
    """Stops training once the total training time reaches ``seconds`` and saves every ``save_every`` seconds.

    Each save also exports the base and records the progress, so a study can start from the latest
    base while pretraining goes on, and a killed run resumes from its last save.
    """

    def __init__(self, cache_dir: str, settings: dict, seconds_before: float, seconds: float | None,
                 save_every: float):
        self.cache_dir, self.settings = cache_dir, settings
        self.seconds_before, self.seconds, self.save_every = seconds_before, seconds, save_every
        self.seconds_now = seconds_before

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last_save = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        self.seconds_now = self.seconds_before + now - self._start
        if self.seconds is not None and self.seconds_now >= self.seconds:
            control.should_training_stop = control.should_save = True
        if now - self._last_save >= self.save_every:
            control.should_save, self._last_save = True, now
        return control

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        export_base(model, processing_class, os.path.join(self.cache_dir, "base"))
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        write_json(os.path.join(self.cache_dir, "progress.json"), {
            "steps": state.global_step, "train_seconds": self.seconds_now,
            "last_loss": losses[-1] if losses else None, "settings": self.settings,
        })


def export_base(model, tokenizer, base_dir: str) -> None:
    """``save_pretrained`` into a temporary folder, then swap it in: a reader never sees half a base."""
    tmp, old = f"{base_dir}.tmp", f"{base_dir}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if os.path.isdir(base_dir):
        os.replace(base_dir, old)
    os.replace(tmp, base_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_progress(cache_dir: str) -> dict:
    path = os.path.join(cache_dir, "progress.json")
    if not os.path.isfile(path):
        return {"steps": 0, "train_seconds": 0.0}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def pretrain_base(cache_dir: str, config, tokenizer, train_dataset, *, minutes: float | None = None,
                  max_steps: int | None = None, batch_size: int = 64, learning_rate: float = 5e-4,
                  warmup_steps: int = 500, lr_scheduler_type: str = "constant_with_warmup", save_minutes: float = 10.0,
                  seed: int = 0, use_cpu: bool = True) -> str:
    """Train (or continue training) the base in ``cache_dir`` until ``minutes`` or ``max_steps`` in total.

    ``train_dataset`` is tokenised (``preprocess_pairs``). Returns the folder of the base model.
    ``config`` and the other settings must match those the cache was started with. With the default
    ``constant_with_warmup`` a budget can be extended; a decaying schedule (``"linear"``) decays over
    ``max_steps`` and suits a fixed step budget. ``use_cpu=False`` trains on the GPU when there is one.
    """
    if minutes is None and max_steps is None:
        raise ValueError("pretraining needs a budget: give --pretrain_minutes or --pretrain_steps")
    progress = read_progress(cache_dir)
    # Compared as JSON (as stored); the model gets a copy, since saving it writes into its config.
    settings = {"config": config.to_diff_dict(), "batch_size": batch_size, "learning_rate": learning_rate,
                "warmup_steps": warmup_steps, "lr_scheduler_type": lr_scheduler_type, "seed": seed,
                "train_pairs": len(train_dataset)}
    if lr_scheduler_type != "constant_with_warmup":
        settings["max_steps"] = max_steps  # a decaying schedule is fixed by its length: it cannot be extended
    settings = json.loads(json.dumps(settings))
    if progress.get("settings", settings) != settings:
        raise ValueError(
            f"{cache_dir}: holds a base pretrained with other settings ({os.path.join(cache_dir, 'progress.json')}); "
            "use another --cache_dir, or the same model shape, batch size and learning rate"
        )
    base_dir = os.path.join(cache_dir, "base")
    seconds = None if minutes is None else 60.0 * minutes
    done = (seconds is not None and progress["train_seconds"] >= seconds) or (
        max_steps is not None and progress["steps"] >= max_steps)
    if done and os.path.isfile(os.path.join(base_dir, "config.json")):
        return base_dir

    trainer_dir = os.path.join(cache_dir, "trainer")
    checkpoint = get_last_checkpoint(trainer_dir) if os.path.isdir(trainer_dir) else None
    args = L2MTTrainingArguments(
        output_dir=trainer_dir, per_device_train_batch_size=batch_size, learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler_type, warmup_steps=warmup_steps, max_steps=max_steps or 10**8,
        train_sampling_strategy="group_by_length", remove_unused_columns=False, save_strategy="steps",
        save_steps=10**9, save_total_limit=1, logging_steps=200, report_to=[], disable_tqdm=True, seed=seed,
        use_cpu=use_cpu, dataloader_num_workers=0,
    )
    budget = Budget(cache_dir, settings, progress["train_seconds"], seconds, 60.0 * save_minutes)
    model = MarianMTModel(copy.deepcopy(config))
    trainer = L2MTTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                          data_collator=make_data_collator(tokenizer, model), callbacks=[budget])
    logger.info("pretraining the base in %s from update %d (%.0f of %s minutes done)", cache_dir,
                progress["steps"], progress["train_seconds"] / 60, "unlimited" if minutes is None else f"{minutes:g}")
    # Both budgets end with a save (transformers saves at max_steps; Budget at its time limit).
    trainer.train(resume_from_checkpoint=checkpoint)
    return base_dir
