"""Runs that survive pre-emption: a stop signal ends training at an update boundary with a complete checkpoint.

Clusters and spot instances stop a job with SIGTERM, SLURM can send SIGUSR1 ahead of the time limit, and
a person presses Ctrl-C (SIGINT). While ``L2MTTrainer.train`` runs, these signals only set a flag. At the
end of the current optimizer update the processes agree whether any of them saw one (one integer reduced
across processes, so all stop at the same update and the collective checkpoint save cannot hang); if so,
the update's checkpoint is written (weights, optimizer, scheduler, RNG states, anchor, Fisher weights) and
training stops. ``train`` then raises ``TrainingPreempted``, a ``SystemExit`` whose code is 128 + the
signal number, as shells report a process a signal ended (143 for SIGTERM, 130 for SIGINT, 138 for
SIGUSR1 on Linux), after logging the checkpoint and how to resume.

Further signals while the checkpoint is written are reported and ignored, so the save completes. The
previous handlers come back when ``train`` ends; a signal that arrived after the last update's check
(the run has all its updates) is then handed to them, as if it had arrived at that moment. Handlers can
only be set in the main thread; ``train`` called from another thread runs without them.

Dataloader workers ignore the stop signals (``workers_ignore_stop_signals``): a scheduler signals every
process of a job and a terminal's Ctrl-C its whole process group, and torch ends a worker on SIGTERM,
which makes the training process raise at once instead of finishing its update.
"""

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch.utils.data import DataLoader
from transformers import TrainerCallback

from .checkpoints import LATEST, latest_complete_checkpoint

logger = logging.getLogger("hf_l2mt")

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name))


def exit_code(signum: int) -> int:
    """128 + the signal number, the status a shell reports for a process that signal ended."""
    return 128 + int(signum)


class IgnoreStopSignals:
    """A dataloader ``worker_init_fn``: the worker ignores the stop signals, then runs the loader's own one.

    The training process shuts its workers down when it stops; a class, not a closure, so that workers
    started with ``spawn`` can unpickle it.
    """

    def __init__(self, init_fn: Callable[[int], None] | None):
        self.init_fn = init_fn

    def __call__(self, worker_id: int) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if self.init_fn is not None:
            self.init_fn(worker_id)


def workers_ignore_stop_signals(loader):
    """Make the worker processes of ``loader`` (a torch ``DataLoader``) ignore the stop signals; returns it.

    ``Trainer`` takes any iterable of batches as its loader (a ``get_train_dataloader`` override may return
    one); a loader that is not a torch ``DataLoader`` has no workers this can reach, and is left as it is."""
    # accelerate's prepared loaders (1.16) iterate the DataLoader they hold as base_dataloader.
    torch_loader = getattr(loader, "base_dataloader", loader)
    if not isinstance(torch_loader, DataLoader):
        return loader
    if torch_loader.num_workers > 0 and not isinstance(torch_loader.worker_init_fn, IgnoreStopSignals):
        torch_loader.worker_init_fn = IgnoreStopSignals(torch_loader.worker_init_fn)
    return loader


class TrainingPreempted(SystemExit):
    """Training stopped on a signal after writing a checkpoint; ``code`` is ``exit_code(signum)``.

    A ``SystemExit``, so a script that does not catch it ends with that status and no traceback.
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None, message: str):
        super().__init__(exit_code(signum))
        self.signum, self.step, self.checkpoint, self.message = signum, step, checkpoint, message

    def __str__(self) -> str:
        return self.message


def stop_message(signum: int, step: int, output_dir: str, needs_anchor: bool) -> tuple[str | None, str]:
    """The newest complete checkpoint of ``output_dir`` and what to tell the user about it."""
    name = signal.Signals(signum).name
    checkpoint = latest_complete_checkpoint(output_dir, needs_anchor)
    if checkpoint is None:
        where = f"no complete checkpoint was found in {output_dir}; the run cannot be resumed"
    else:
        where = f"the newest complete checkpoint is {checkpoint}"
    message = (
        f"training stopped by {name} after update {step}; {where}. Resume with the same command and "
        f"--resume_from_checkpoint {LATEST}, or trainer.train(resume_from_checkpoint=True) (exit status "
        f"{exit_code(signum)})"
    )
    return checkpoint, message


class PreemptionCallback(TrainerCallback):
    """Records stop signals while installed and stops training at the end of the update that sees one.

    ``largest_across_processes(value)`` returns the largest of every process's ``value`` (the identity
    with one process). It is called with the local signal number (0 for none) after every ``every``-th
    update and the last one, so every process learns the same signal at the same update; ``every`` > 1
    (``host_check_steps``) saves the collective and its host read in the other updates, and a signal then
    takes effect within ``every`` updates.
    """

    def __init__(self, largest_across_processes: Callable[[int], int], every: int = 1):
        self.largest_across_processes = largest_across_processes
        self.every = every
        self.received: int | None = None  # the first signal this process got
        self.stop_signal: int | None = None  # the signal the processes agreed to stop on
        self.stopped_at: int | None = None
        self._owner_pid: int | None = None

    def _handle(self, signum: int, frame) -> None:
        # A process forked during training (a dataloader worker) inherits this handler; the training
        # process does the stopping.
        if os.getpid() != self._owner_pid:
            return
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            note = f"received {name}: finishing the current update, then writing a checkpoint and stopping\n"
        else:
            note = (f"received {name} again: still stopping; the checkpoint is being written (SIGKILL or Ctrl-\\ "
                    "stop at once and leave it incomplete, which resuming skips)\n")
        os.write(2, note.encode())  # async-signal-safe, unlike logging

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if train_dataloader is not None:
            workers_ignore_stop_signals(train_dataloader)

    def on_step_end(self, args, state, control, **kwargs):
        due = state.global_step % self.every == 0 or state.global_step >= state.max_steps
        if self.stop_signal is None and due:
            agreed = self.largest_across_processes(self.received or 0)
            if agreed:
                self.stop_signal, self.stopped_at = agreed, state.global_step
                control.should_save = True
                control.should_training_stop = True
        return control

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Catch the stop signals for the block, then put back the handlers that were there before."""
        self.received, self.stop_signal, self.stopped_at = None, None, None
        if threading.current_thread() is not threading.main_thread():
            logger.info("train() runs outside the main thread: stop signals keep their usual effect")
            yield
            return
        self._owner_pid = os.getpid()
        previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def raise_if_stopped(self, output_dir: str, needs_anchor: bool, is_main_process: bool) -> None:
        """After training: raise ``TrainingPreempted`` if a signal stopped it, or hand a late signal on."""
        if self.stop_signal is not None:
            # Every process reaches this point before any exits: a launcher (torchrun) sends SIGTERM to the
            # others as soon as one process ends with a non-zero status.
            self.largest_across_processes(self.stop_signal)
            checkpoint, message = stop_message(self.stop_signal, self.stopped_at, output_dir, needs_anchor)
            if is_main_process:
                logger.error(message)
            raise TrainingPreempted(self.stop_signal, self.stopped_at, checkpoint, message)
        if self.received is not None:
            signal.raise_signal(self.received)
