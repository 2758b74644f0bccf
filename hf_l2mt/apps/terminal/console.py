"""What a person reads while a Trainer runs: one progress bar per run and one tidy line per log.

transformers' ``ProgressCallback`` writes each log as a Python dict of quoted numbers
(``{'loss': '2.769', ...}``) through the bar, and ``PrinterCallback`` prints the dict bare.
``TidyProgressCallback`` replaces both: ``step 50/200  loss 2.77  l2sp_penalty 0.013`` under a bar
named after the run. The logged values themselves (``trainer.state.log_history``, hence
``trainer_state.json``) are untouched: only their display changes.
"""

import contextlib
from collections.abc import Iterator

import datasets
from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.trainer import DEFAULT_PROGRESS_CALLBACK
from transformers.utils import logging as transformers_logging

# Counted by the Trainer for its own bookkeeping; a floating-point operation count tells a reader nothing.
HIDDEN_LOG_KEYS = ("total_flos",)


def format_number(value) -> str:
    """Floats to three significant digits (``2.77``, ``0.000862``, ``1.2e-05``) or, from 1,000 on, whole with
    thousands separators (``3,830``); integers and anything else as they are."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def format_log_line(step: int, max_steps: int, logs: dict) -> str:
    """``step 50/200  loss 2.77  l2sp_penalty 0.013``: every logged value under its logged name, in log order."""
    values = [f"{name} {format_number(value)}" for name, value in logs.items() if name not in HIDDEN_LOG_KEYS]
    return "  ".join([f"step {step}/{max_steps}", *values])


class TidyProgressCallback(TrainerCallback):
    """One bar for the training steps (none with ``disable_tqdm``) and one ``format_log_line`` line per log.

    Evaluation during training gets no bar of its own: a second, nested bar is what leaves debris in a
    terminal or a log file; its scores arrive as one line when it ends.
    """

    def __init__(self, description: str = "training"):
        self.description = description
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.description, unit="step",
                            dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = format_log_line(state.global_step, state.max_steps, logs)
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def use_tidy_progress(trainer, description: str | None = "training") -> None:
    """Replace the Trainer's progress and printer callbacks by ``TidyProgressCallback(description)``.

    ``description=None`` removes them and adds nothing: for a Trainer whose progress the caller shows itself.
    """
    for callback in {ProgressCallback, PrinterCallback, DEFAULT_PROGRESS_CALLBACK}:
        trainer.remove_callback(callback)
    if description is not None:
        trainer.add_callback(TidyProgressCallback(description))


@contextlib.contextmanager
def without_library_progress_bars() -> Iterator[None]:
    """No bars from ``datasets.map``, weight loading or shard writing inside the block; the previous state after.

    For a command that shows its own bar per phase: those per-call bars of a few milliseconds each
    interleave with it and tell the reader nothing.
    """
    datasets_bars = datasets.is_progress_bar_enabled()
    transformers_bars = transformers_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if transformers_bars:
            transformers_logging.enable_progress_bar()
