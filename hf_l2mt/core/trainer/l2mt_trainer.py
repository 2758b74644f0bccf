"""``L2MTTrainer``: ``Seq2SeqTrainer`` with the regularizers, its ``train`` (complete checkpoints only, the run
lock, stop signals) and its update (the non-finite check, coupled L2-SP, the checkpoint with its anchor)."""

import logging
import os

import torch
from accelerate.utils import broadcast_object_list
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .. import anchor as anchor_io
from .. import preflight, run_lock
from ..checkpoints import resolve_resume_checkpoint, rotate_checkpoints
from ..fisher import FISHER_FILE, save_fisher
from ..lora import check_adapter_resume, save_merged
from ..loss import uses_token_level_loss
from ..nonfinite import DeviceNonFiniteGuard, NonFiniteGuard
from ..own_optimizer import settings_needing_own_optimizer
from ..param_groups import freeze_fixed_positions
from ..preemption import PreemptionCallback
from ..regularized_group import RegularizedGroup
from ..training_args import L2MTTrainingArguments
from .arguments import with_default_arguments, with_lora_adapters
from .batches import BatchesAndEvaluation
from .optimizer import RegularizedOptimizer
from .strengths import RegularizerStrengths
from .task_loss import TaskLoss

logger = logging.getLogger("hf_l2mt")


class L2MTTrainer(TaskLoss, RegularizedOptimizer, RegularizerStrengths, BatchesAndEvaluation, Seq2SeqTrainer):
    """Seq2SeqTrainer with weight decay (coupled or decoupled), L2-SP towards the starting weights,
    schedules for both, and an exact token-level loss under gradient accumulation for encoder–decoders.

    Takes the same arguments as ``Seq2SeqTrainer``; ``args`` must be ``L2MTTrainingArguments``. With every
    regularizer off it updates any model as ``Trainer`` / ``Seq2SeqTrainer`` would (docs/decoder_only.md).
    """

    def __init__(self, *args, **kwargs):
        args, kwargs = with_lora_adapters(*with_default_arguments(args, kwargs))
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, L2MTTrainingArguments):
            raise TypeError(f"args: L2MTTrainer needs L2MTTrainingArguments, got {type(self.args).__name__}")
        if self.optimizer is not None and (needs := settings_needing_own_optimizer(self.args)):
            raise ValueError(
                f"optimizers: a ready-made optimizer cannot carry {', '.join(needs)}: these need L2MTTrainer's "
                "parameter groups and update hooks; choose the optimizer with args.optim / args.optim_args or "
                "optimizer_cls_and_kwargs=(cls, kwargs), or turn those settings off"
            )
        self.frozen_position_tables = freeze_fixed_positions(self.model)
        # Encoder–decoders get the token-level loss, which divides by num_items_in_batch itself (the model never
        # sees it), so the Trainer must count it; every other model keeps transformers' own detection.
        self.token_level_loss = self.compute_loss_func is None and uses_token_level_loss(self.model)
        if self.token_level_loss:
            self.model_accepts_loss_kwargs = True
        # One record per optimizer parameter group; bound to the live parameters by _build_anchor.
        self.regularized_groups: list[RegularizedGroup] | None = None
        self._groups_bound = False
        self.anchor: dict[str, torch.Tensor] | None = None
        self.fisher: dict[str, torch.Tensor] | None = None  # EWC's per-coordinate L2-SP weights F
        self._kl_sum: torch.Tensor | None = None  # Σ KL and target tokens since the last log
        self._kl_tokens: torch.Tensor | None = None
        self._resume_dir: str | None = None
        self._lora_pair_cache = None  # the adapters' (A, B, s) for lora_l2sp_lambda
        # "continue" checks nothing, so nothing is left on the device to read back.
        self.on_device_checks = self.args.host_check_steps > 1 and self.args.nonfinite_loss != "continue"
        guard = DeviceNonFiniteGuard if self.on_device_checks else NonFiniteGuard
        self.nonfinite = guard(self.args.nonfinite_loss)
        self._skip_update = False
        self._applied: torch.Tensor | None = None  # with on-device checks: 0 when this update is skipped, else 1
        # With one process a stop signal is read from a Python flag, which costs nothing; with several the
        # processes agree through a collective, read back every host_check_steps updates.
        agree_every = self.args.host_check_steps if self.accelerator.num_processes > 1 else 1
        # In the callback list only while train() runs: outside it the list is Trainer's own, which scripts and
        # transformers' tests compare by name.
        self.preemption = PreemptionCallback(self._largest_across_processes, agree_every)

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """As ``Trainer.train``, but only from a complete checkpoint (``hf_l2mt.core.checkpoints``): ``True`` or
        ``"latest"`` take the newest complete one, ``"auto"`` that one or, when there is none, none (a job restarted
        with the same command); the anchor is read from it, never re-snapshotted.

        Holds the lock of ``output_dir`` (``hf_l2mt.core.run_lock``) while it runs; SIGTERM, SIGINT or SIGUSR1
        stop it after the current update with a checkpoint and raise ``TrainingPreempted``
        (``hf_l2mt.core.preemption``)."""
        from_main = None if self.accelerator.num_processes == 1 else lambda value: broadcast_object_list([value])[0]
        with run_lock.hold(self.args.output_dir, self.is_world_process_zero(), from_main):
            resume_from_checkpoint = resolve_resume_checkpoint(
                resume_from_checkpoint, self.args.output_dir, self.args.uses_l2sp
            )
            if resume_from_checkpoint is not None:
                check_adapter_resume(resume_from_checkpoint, self.args.adapter)
                preflight.check_checkpoint_fits(self.model, resume_from_checkpoint)
            self._resume_dir = resume_from_checkpoint
            self.add_callback(self.preemption)
            try:
                with self.preemption.installed():
                    output = super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
                    self.nonfinite.check()
            finally:
                self.remove_callback(self.preemption)
        self.preemption.raise_if_stopped(self._get_output_dir(trial), self.args.uses_l2sp, self.is_world_process_zero())
        if self.args.lora_save_merged and self.is_world_process_zero():
            merged = save_merged(self.accelerator.unwrap_model(self.model), os.path.join(self.args.output_dir, "merged"),
                                 self.processing_class)
            logger.info("merged model (base + adapters) written to %s", merged)
        return output

    def _largest_across_processes(self, value: int) -> int:
        if self.accelerator.num_processes == 1:
            return value
        return int(self.accelerator.gather(torch.tensor([value], device=self.args.device)).max())

    # ---- The update -------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self._groups_bound:
            self._build_anchor()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.nonfinite.observe(loss)
        if not self.accelerator.sync_gradients:
            return loss
        across = (lambda t: self.accelerator.reduce(t, "sum")) if self.accelerator.num_processes > 1 else None
        step = self.state.global_step + 1
        if self.on_device_checks:
            self._skip_on_device(step, across)
        else:
            self._skip_update = self.nonfinite.update_is_skipped(step, across)
        if self._skip_update:
            # The optimizer leaves parameters without a gradient as they are, its state included. An fp16
            # GradScaler skips the step itself on the non-finite gradients (and refuses a step with none).
            if self._grad_scaler() is None:
                model.zero_grad(set_to_none=True)
        else:
            if self.anchor is not None and self.args.l2sp_mode == "coupled":
                self._add_coupled_l2sp()
            if self.args.lora_l2sp_lambda > 0:
                self._add_lora_l2sp()
        return loss

    def _skip_on_device(self, step: int, across) -> None:
        """The verdict on update ``step`` goes to the fused optimizer as ``found_inf`` (it then leaves weights,
        moments and step count alone) and to decoupled L2-SP; the host reads it every ``host_check_steps``
        updates and at the last one."""
        found_inf = self.nonfinite.skip_flag(step, across)
        self._torch_optimizer().found_inf = found_inf
        self._applied = 1.0 - found_inf
        if step % self.args.host_check_steps == 0 or step >= self.state.max_steps:
            self.nonfinite.check()

    # ---- Checkpoints -------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial) -> None:
        self.nonfinite.check()
        self.nonfinite.check_weights(self.state.global_step, self.model)
        run_dir = self._get_output_dir(trial=trial)
        # The anchor goes in first, so a checkpoint that has trainer_state.json also has its anchor.
        # Every process takes part in gathering a sharded (FSDP2) anchor; only the main process writes it.
        if self.anchor is not None:
            full_anchor = anchor_io.gather(self.anchor, keep=self.args.should_save)
            if self.args.should_save:
                output_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
                os.makedirs(output_dir, exist_ok=True)
                anchor_io.save(full_anchor, output_dir)
                if self.fisher is not None:
                    save_fisher(self.fisher, os.path.join(output_dir, FISHER_FILE))
        # transformers' rotation knows nothing of the resumed-from checkpoint; rotate here instead.
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        if self.args.should_save:
            rotate_checkpoints(run_dir, limit, keep=[self._resume_dir, self.state.best_model_checkpoint])
