"""`L2MTTrainer`: a Seq2SeqTrainer that adds the regularizers and wires them into the update.

Where each term enters one optimizer update t (``docs/regularization.md`` has the equations):
1. backward of the token-level task loss (``compute_loss``), accumulated over micro-batches;
2. coupled L2-SP: ``grad += λ_t (θ − θ₀)`` after the last micro-batch (``training_step``),
   so gradient clipping sees it exactly as if the penalty were in the loss;
3. gradient clipping (transformers);
4. optimizer pre-step hook (``_before_optimizer_step``): coupled weight decay ``grad += wd_t θ``;
   decoupled L2-SP ``θ ← θ − lr_t λ_t (θ − θ₀)``; decoupled weight decay for optimizers that have
   none of their own;
5. the optimizer's step (AdamW applies decoupled weight decay itself).
"""

import logging
import os

import torch
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from . import anchor as anchor_io
from . import preflight
from .l2sp import add_l2sp_grad_, add_weight_decay_grad_, move_toward_anchor_, scale_toward_zero_, squared_distance
from .loss import token_cross_entropy
from .param_groups import ParamGroup, build_param_groups, format_group_table, freeze_fixed_positions
from .schedules import schedule_factor
from .training_args import L2MTTrainingArguments

logger = logging.getLogger("hf_l2mt")


class L2MTTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer with weight decay (coupled or decoupled), L2-SP towards the starting weights,
    schedules for both, and an exact token-level loss under gradient accumulation.

    Takes the same arguments as ``Seq2SeqTrainer``; ``args`` must be ``L2MTTrainingArguments``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, L2MTTrainingArguments):
            raise TypeError(f"args: L2MTTrainer needs L2MTTrainingArguments, got {type(self.args).__name__}")
        if self.optimizer is not None:
            raise ValueError(
                "optimizers: L2MTTrainer builds its own parameter groups and hooks; choose the optimizer with "
                "args.optim / args.optim_args, or pass optimizer_cls_and_kwargs=(cls, kwargs)"
            )
        self.frozen_position_tables = freeze_fixed_positions(self.model)
        # compute_loss divides by num_items_in_batch for every model, so ask the Trainer to count them.
        self.model_accepts_loss_kwargs = True
        self.regularized_groups: list[ParamGroup] | None = None
        self.anchor: dict[str, torch.Tensor] | None = None
        self._anchor_lists: list[tuple[list[torch.nn.Parameter], list[torch.Tensor]]] = []
        self._resume_dir: str | None = None
        self._optimizer_decays_itself = False

    # ---- Schedules --------------------------------------------------------------------------

    def _factor(self, term: str, step: int) -> float:
        args = self.args
        return schedule_factor(
            getattr(args, f"{term}_schedule"),
            step,
            max(self.state.max_steps, 1),
            warmup_steps=getattr(args, f"{term}_warmup_steps"),
            sigmoid_k=getattr(args, f"{term}_sigmoid_k"),
            sigmoid_t0=getattr(args, f"{term}_sigmoid_t0"),
        )

    def current_strengths(self, step: int | None = None) -> dict[str, float]:
        """Base strengths times their schedules at ``step`` (default: the update about to happen)."""
        step = self.state.global_step if step is None else step
        return {
            "l2sp_lambda": self.args.l2sp_lambda * self._factor("l2sp", step),
            "weight_decay": self.args.weight_decay * self._factor("weight_decay", step),
        }

    # ---- Optimizer and anchor ---------------------------------------------------------------

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if self.optimizer is not None:
            return self.optimizer
        preflight.check_warmups(self.args, self.state.max_steps)
        freeze_fixed_positions(opt_model)
        groups = build_param_groups(opt_model, self.args, self.get_decay_parameter_names(opt_model))
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        if not isinstance(optimizer_cls, type) or {"params", "model", "optimizer_dict"} & set(optimizer_kwargs):
            raise ValueError(
                f"optim: {self.args.optim!r} builds its own parameter groups, which L2MTTrainer cannot regularize; "
                "use a torch.optim-style optimizer such as adamw_torch, adamw_torch_fused, adafactor or sgd"
            )
        # AdamW decays decoupled by itself (Loshchilov & Hutter 2019); for other optimizers (SGD, Adam,
        # Adagrad, ...) whose own weight_decay is coupled, the decoupled decay is applied in the hook.
        self._optimizer_decays_itself = issubclass(optimizer_cls, torch.optim.AdamW)
        delegate = self.args.weight_decay_mode == "decoupled" and self._optimizer_decays_itself
        torch_groups = [{"params": g.params, "weight_decay": g.weight_decay if delegate else 0.0} for g in groups]
        self.optimizer = optimizer_cls(torch_groups, **optimizer_kwargs)
        self.regularized_groups = groups
        self._setup_anchor(opt_model, groups)
        self.optimizer.register_step_pre_hook(self._before_optimizer_step)
        if self.is_world_process_zero():
            logger.info("parameter groups:\n%s", format_group_table(groups))
            if self.frozen_position_tables:
                logger.info("froze fixed position tables: %s", ", ".join(self.frozen_position_tables))
        return self.optimizer

    def _setup_anchor(self, model, groups: list[ParamGroup]) -> None:
        named = {n: p for g in groups if g.l2sp_lambda > 0 for n, p in zip(g.names, g.params)}
        if not named:
            self.anchor, self._anchor_lists = None, [([], []) for _ in groups]
            return
        if self._resume_dir is not None:
            self.anchor = anchor_io.load(self._resume_dir, named, self.args.anchor_dtype)
        else:
            self.anchor = anchor_io.snapshot(named, self.args.anchor_dtype)
        self._anchor_lists = [
            (list(g.params), [self.anchor[n] for n in g.names]) if g.l2sp_lambda > 0 else ([], []) for g in groups
        ]

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, **kwargs):
        """As ``Trainer.train``; on resume the anchor is read from the checkpoint, never re-snapshotted."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint: True, but {self.args.output_dir!r} holds no checkpoint-* folder"
                )
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if resume_from_checkpoint is not None:
            preflight.check_checkpoint_fits(self.model, resume_from_checkpoint)
        self._resume_dir = resume_from_checkpoint
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    # ---- The update -------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Token-level cross-entropy normalised by ``num_items_in_batch`` (see ``hf_l2mt.loss``)."""
        if "labels" not in inputs or self.compute_loss_func is not None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        unwrapped = self.accelerator.unwrap_model(model)
        if "decoder_input_ids" not in inputs and hasattr(unwrapped, "prepare_decoder_input_ids_from_labels"):
            inputs["decoder_input_ids"] = unwrapped.prepare_decoder_input_ids_from_labels(labels=labels)
        elif "decoder_input_ids" not in inputs:
            inputs["labels"] = labels  # the model builds its decoder inputs; its own loss is ignored
        outputs = model(**inputs)
        loss = token_cross_entropy(outputs.logits, labels, num_items_in_batch, self.args.label_smoothing_factor)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts every process's tokens while DDP averages gradients over processes.
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients and self.anchor is not None and self.args.l2sp_mode == "coupled":
            self._add_coupled_l2sp()
        return loss

    def _add_coupled_l2sp(self) -> None:
        factor = self._factor("l2sp", self.state.global_step)
        scaler = getattr(self.accelerator, "scaler", None)
        loss_scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
        for group, (params, anchors) in zip(self.regularized_groups, self._anchor_lists):
            add_l2sp_grad_(params, anchors, group.l2sp_lambda * factor * loss_scale)

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        step = self.state.global_step
        wd_factor = self._factor("weight_decay", step)
        l2sp_factor = self._factor("l2sp", step)
        mode = self.args.weight_decay_mode
        for torch_group, group, (params, anchors) in zip(
            optimizer.param_groups, self.regularized_groups, self._anchor_lists
        ):
            lr = float(torch_group["lr"])
            weight_decay = group.weight_decay * wd_factor
            if mode == "coupled":
                add_weight_decay_grad_(torch_group["params"], weight_decay)
            elif self._optimizer_decays_itself:
                torch_group["weight_decay"] = weight_decay
            else:
                scale_toward_zero_(torch_group["params"], lr * weight_decay)
            if self.args.l2sp_mode == "decoupled" and params:
                move_toward_anchor_(params, anchors, lr * group.l2sp_lambda * l2sp_factor)

    # ---- Logging and checkpoints -------------------------------------------------------------

    def regularization_metrics(self) -> dict[str, float]:
        """The logged values: strengths used by the latest update, the penalty and ‖θ − θ₀‖₂."""
        strengths = self.current_strengths(max(self.state.global_step - 1, 0))
        metrics = dict(strengths)
        if self.anchor is not None:
            l2sp_factor = self._factor("l2sp", max(self.state.global_step - 1, 0))
            penalty, distance_sq = 0.0, 0.0
            for group, (params, anchors) in zip(self.regularized_groups, self._anchor_lists):
                if params:
                    sq = float(squared_distance(params, anchors))
                    penalty += 0.5 * group.l2sp_lambda * l2sp_factor * sq
                    distance_sq += sq
            metrics["l2sp_penalty"] = penalty
            metrics["l2sp_distance"] = distance_sq**0.5
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.regularized_groups is not None:
            logs = {**logs, **self.regularization_metrics()}
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        # The anchor goes in first, so a checkpoint that has trainer_state.json also has its anchor.
        if self.anchor is not None and self.args.should_save:
            output_dir = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            os.makedirs(output_dir, exist_ok=True)
            anchor_io.save(self.anchor, output_dir)
        super()._save_checkpoint(model, trial)
