"""How every model of the demo is trained: tokenized pairs, one set of training arguments, one bar per run."""

import tempfile

from transformers import DataCollatorForSeq2Seq

from ...core.preemption import TrainingPreempted
from ...core.trainer import L2MTTrainer
from ...core.training_args import L2MTTrainingArguments
from ..terminal.console import use_tidy_progress
from .arguments import BATCH_SIZE, EVAL_BATCH_SIZE, LEARNING_RATE, MAX_LENGTH


def tokenized(dataset, tokenizer):
    return dataset.map(
        lambda batch: tokenizer(batch["source"], text_target=batch["target"]),
        batched=True,
        remove_columns=dataset.column_names,
        desc="tokenizing",
    )


def training_args(scratch: str, steps: int, seed: int, **overrides) -> L2MTTrainingArguments:
    return L2MTTrainingArguments(
        output_dir=scratch,
        max_steps=steps,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        optim="adamw_torch",
        logging_steps=max(1, steps // 5),
        save_strategy="no",
        report_to="none",
        seed=seed,
        predict_with_generate=True,
        generation_max_length=MAX_LENGTH,
        generation_num_beams=1,
        disable_tqdm=False,
        dataloader_pin_memory=False,  # batches of a few kilobytes: pinning gains nothing, and warns on CPU
        **overrides,
    )


def train(model, tokenizer, train_set, steps: int, seed: int, description: str, **overrides) -> None:
    """``steps`` updates of ``model`` on ``train_set`` with ``L2MTTrainer``, shown as one bar named ``description``."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer = L2MTTrainer(
            model=model,
            args=training_args(scratch, steps, seed, **overrides),
            train_dataset=train_set,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        )
        use_tidy_progress(trainer, description)
        try:
            trainer.train()
        except TrainingPreempted as stopped:
            raise demo_stopped(stopped, description) from None


def demo_stopped(stopped: TrainingPreempted, description: str) -> TrainingPreempted:
    """The stop as the demo's user should read it: its runs keep no checkpoints (they train in a temporary folder,
    gone by now), so there is nothing to resume, only the command to run again."""
    message = (f"the demo stopped while {description} ({stopped.message.split(';')[0]}); it keeps no checkpoints, "
               f"so run the same command again to start over (exit status {stopped.code})")
    return TrainingPreempted(stopped.signum, stopped.step, None, message)
