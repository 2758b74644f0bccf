"""`L2MTTrainer`: a Seq2SeqTrainer that adds the regularizers and wires them into the update.

Where each term enters one optimizer update t (``docs/regularization.md`` has the equations):
1. backward of the task loss (``compute_loss``), accumulated over micro-batches: the token-level loss
   for encoder–decoders, transformers' own loss path for every other model (``hf_l2mt.core.loss``),
   plus ``λ_kl,t · KL(p_base ‖ p_θ)`` per target token when ``kl_lambda > 0``;
2. coupled L2-SP: ``grad += λ_t F (θ − θ₀)`` after the last micro-batch (``training_step``),
   so gradient clipping sees it exactly as if the penalty were in the loss (F ≡ 1 unless EWC); with LoRA
   adapters (``adapter='lora'``, ``hf_l2mt.core.lora``) the merged-weight L2-SP on s·B·A instead;
3. gradient clipping (transformers);
4. optimizer pre-step hook (``_before_optimizer_step``): coupled weight decay ``grad += wd_t θ``;
   decoupled L2-SP ``θ ← θ − min(lr_t λ_t F, 1) (θ − θ₀)``; decoupled weight decay for optimizers
   that have none of their own;
5. the optimizer's step (AdamW applies decoupled weight decay itself);
6. optimizer post-step hook (``_after_optimizer_step``): the L1 soft threshold.

A non-finite loss is caught at the last micro-batch, before 2 (``hf_l2mt.core.nonfinite``; with
``host_check_steps`` > 1 on the device, the update then skipped by the fused optimizer in 5); a run resumes
only from a complete checkpoint (``hf_l2mt.core.checkpoints``).
"""

import logging
import os
from functools import partial

import torch
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader, IterableDataset
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, enable_full_determinism, seed_worker, set_seed
from transformers.utils import is_datasets_available

from . import anchor as anchor_io
from . import preflight, run_lock
from .batching import TokenBudgetBatchSampler, int_list, pair_lengths
from .checkpoints import resolve_resume_checkpoint, rotate_checkpoints
from .eval_loss import LossGather
from .fisher import FISHER_FILE, fisher_weights, load_checkpoint_weights, save_fisher
from .generation_length import capped_generate_kwargs
from .lora import check_adapter_resume, save_merged, wrap_with_lora
from .loss import IGNORE_INDEX, logits_of, token_cross_entropy, uses_token_level_loss
from .nonfinite import SKIPPED_METRIC, DeviceNonFiniteGuard, NonFiniteGuard, device_skip_blockers
from .own_optimizer import settings_needing_own_optimizer
from .param_groups import build_param_groups, format_group_table, freeze_fixed_positions, group_layout
from .preemption import PreemptionCallback, workers_ignore_stop_signals
from .regularized_group import RegularizedGroup, weight_decay_by
from .regularizers.kl import base_logits, token_kl_sum
from .regularizers.lora_l2sp import add_lora_l2sp_grad_, lora_l2sp_penalty, lora_pairs
from .schedules import schedule_factor
from .training_args import L2MTTrainingArguments

if is_datasets_available():
    import datasets

logger = logging.getLogger("hf_l2mt")
# Group layouts (``group_layout``) whose table this process has logged. The demo and a λ search train several
# copies of one model in one process, and a table per copy buried what they print (issue 23); each run's
# strengths are in its own log lines (``l2sp_lambda``, ``weight_decay``).
LOGGED_GROUP_LAYOUTS: set[tuple] = set()


def seed_as_trainer(args) -> None:
    """Seed Python, NumPy and torch from ``args.seed`` as ``Trainer.__init__`` does, for weights made before it."""
    enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)


def _with_default_arguments(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``Trainer``'s arguments with ``args`` filled in when none are given, as ``Trainer`` fills them
    (``output_dir="tmp_trainer"``, transformers 5.25), but as ``L2MTTrainingArguments``: ``Seq2SeqTrainer.__init__``
    reads ``args.generation_config``, which a plain ``TrainingArguments`` lacks."""
    if (args[1] if len(args) > 1 else kwargs.get("args")) is not None:
        return args, kwargs
    logger.info("No training arguments passed, using L2MTTrainingArguments(output_dir='tmp_trainer')")
    default = L2MTTrainingArguments(output_dir="tmp_trainer")
    if len(args) > 1:
        return (args[0], default, *args[2:]), kwargs
    return args, {**kwargs, "args": default}


def _with_lora_adapters(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``Trainer``'s arguments with the model wrapped in LoRA adapters when ``adapter='lora'``.

    Wrapped before ``Trainer.__init__`` so that it sees a ``PeftModel`` from the start: it then saves and
    resumes adapters (``adapter_model.safetensors``) and builds its optimizer over their parameters only. Seeded
    first, as ``Trainer.__init__`` seeds next, so that the adapters' random A matrices come from ``args.seed``."""
    args, kwargs = list(args), dict(kwargs)
    model = args[0] if args else kwargs.get("model")
    training_args = args[1] if len(args) > 1 else kwargs.get("args")
    if getattr(training_args, "adapter", "none") == "lora" and model is not None:
        seed_as_trainer(training_args)
        model = wrap_with_lora(model, training_args)
        if args:
            args[0] = model
        else:
            kwargs["model"] = model
    return tuple(args), kwargs


class L2MTTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer with weight decay (coupled or decoupled), L2-SP towards the starting weights,
    schedules for both, and an exact token-level loss under gradient accumulation for encoder–decoders.

    Takes the same arguments as ``Seq2SeqTrainer``; ``args`` must be ``L2MTTrainingArguments``. With every
    regularizer off it updates any model as ``Trainer`` / ``Seq2SeqTrainer`` would (docs/decoder_only.md).
    """

    def __init__(self, *args, **kwargs):
        args, kwargs = _with_lora_adapters(*_with_default_arguments(args, kwargs))
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
        self.preemption = PreemptionCallback(self._largest_across_processes, agree_every)
        self.add_callback(self.preemption)

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
        strengths = {
            "l2sp_lambda": self.args.l2sp_lambda * self._factor("l2sp", step),
            "weight_decay": self.args.weight_decay * self._factor("weight_decay", step),
        }
        if self.args.kl_lambda > 0:
            strengths["kl_lambda"] = self.args.kl_lambda * self._factor("kl", step)
        if self.args.l1_lambda > 0:
            strengths["l1_lambda"] = self.args.l1_lambda
        if self.args.lora_l2sp_lambda > 0:
            strengths["lora_l2sp_lambda"] = self.args.lora_l2sp_lambda
        return strengths

    def group_strengths(self, step: int) -> dict[str, float]:
        """With ``l2sp_overrides`` / ``weight_decay_overrides``, what each group got at ``step``, keyed
        ``l2sp_lambda/<group>`` / ``weight_decay/<group>`` (group names as in the group table)."""
        strengths = {}
        for term, overrides in (("l2sp", self.args.l2sp_overrides), ("weight_decay", self.args.weight_decay_overrides)):
            if overrides and self.regularized_groups is not None:
                factor = self._factor(term, step)
                key = "l2sp_lambda" if term == "l2sp" else term
                strengths.update({f"{key}/{g.name}": getattr(g, key) * factor for g in self.regularized_groups})
        return strengths

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
        decay_by = weight_decay_by(self.args.weight_decay_mode, optimizer_cls)
        self.regularized_groups = [RegularizedGroup(g, decay_by) for g in groups]
        self.optimizer = optimizer_cls([g.optimizer_kwargs for g in self.regularized_groups], **optimizer_kwargs)
        self.anchor, self._groups_bound = None, False
        self.optimizer.register_step_pre_hook(self._before_optimizer_step)
        if self.args.l1_lambda > 0:
            self.optimizer.register_step_post_hook(self._after_optimizer_step)
        if self.is_world_process_zero() and group_layout(groups) not in LOGGED_GROUP_LAYOUTS:
            LOGGED_GROUP_LAYOUTS.add(group_layout(groups))
            logger.info("parameter groups:\n%s", format_group_table(groups))
            if self.frozen_position_tables:
                logger.info("froze fixed position tables: %s", ", ".join(self.frozen_position_tables))
        return self.optimizer

    def _check_device_skip(self) -> None:
        """``host_check_steps`` > 1 needs the optimizer to skip a non-finite update on the device."""
        if blockers := device_skip_blockers(self.args, self._torch_optimizer(), self.regularized_groups or []):
            raise ValueError(
                f"host_check_steps={self.args.host_check_steps}: a NaN or infinite update is then skipped on the "
                f"device, which these settings do not allow: {'; '.join(blockers)}. Use host_check_steps=1 (a check "
                "every update) or change them"
            )

    def _build_anchor(self) -> None:
        """Snapshot (or, on resume, read) the anchor, and set up EWC's weights and L1's targets.

        Done at the first training step, not in ``create_optimizer``: by then ``accelerator.prepare`` has
        broadcast rank 0's weights to every DDP process and put FSDP2's sharded parameters into the
        optimizer, so the anchor is the same on every process and sharded like the parameters it pulls on.
        The anchor covers the groups with λ > 0; KL-to-base needs the base's full set of trainable
        weights and L1-to-anchor its target, so with either it covers every group.
        """
        if self.on_device_checks:
            self._check_device_skip()
        groups = self.regularized_groups
        if groups is None:  # a ready-made optimizer: nothing to regularize
            self._groups_bound = True
            return
        live = [list(torch_group["params"]) for torch_group in self.optimizer.param_groups]
        everything = self.args.kl_lambda > 0 or (self.args.l1_lambda > 0 and self.args.l1_target == "anchor")
        named = {n: p for g, params in zip(groups, live) if g.l2sp_lambda > 0 or everything
                 for n, p in zip(g.names, params)}
        self.anchor, self.fisher = None, None
        if named and self._resume_dir is not None:
            self.anchor = anchor_io.load(self._resume_dir, named, self.args.anchor_dtype)
        elif named:
            self.anchor = anchor_io.snapshot(named, self.args.anchor_dtype)
        if self.args.l2sp_fisher_path is not None:
            self._setup_fisher(self.model, groups)
        l1_target = self.args.l1_target if self.args.l1_lambda > 0 else None
        for group, torch_group in zip(groups, self.optimizer.param_groups):
            group.bind(torch_group, self.anchor, self.fisher, l1_target)
        self._groups_bound = True

    def _setup_fisher(self, model, groups: list[RegularizedGroup]) -> None:
        """EWC's weights F: from ``l2sp_fisher_path`` (normalised) or, on resume, as the checkpoint saved them."""
        regularized = {n: p for g in groups if g.l2sp_lambda > 0 for n, p in zip(g.names, g.settings.params)}
        model_names = {n for n, _ in model.named_parameters()}
        dtype = anchor_io.ANCHOR_DTYPES[self.args.anchor_dtype]
        if self._resume_dir is not None:
            self.fisher = load_checkpoint_weights(self._resume_dir, regularized, model_names, dtype)
        else:
            self.fisher = fisher_weights(self.args.l2sp_fisher_path, regularized, model_names,
                                         self.args.l2sp_fisher_normalize, dtype)

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
            with self.preemption.installed():
                output = super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
                self.nonfinite.check()
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

    # ---- Batches ------------------------------------------------------------------------------

    def _get_train_sampler(self, train_dataset=None):
        """As ``Trainer._get_train_sampler``, with the length column read once into a list: transformers
        hands ``group_by_length`` a lazy datasets ``Column`` and reads it one pair at a time (minutes per
        epoch on a few hundred thousand pairs)."""
        sampler = super()._get_train_sampler(train_dataset)
        lengths = getattr(sampler, "lengths", None)
        if lengths is not None and not isinstance(lengths, list):
            sampler.lengths = int_list(lengths)
        return sampler

    def get_train_dataloader(self) -> DataLoader:
        """As ``Trainer.get_train_dataloader``, with token-budget batches when ``max_tokens_per_batch`` is set."""
        dataset = self.train_dataset
        if self.args.max_tokens_per_batch is None or dataset is None or isinstance(dataset, IterableDataset):
            return super().get_train_dataloader()
        sampler = TokenBudgetBatchSampler(pair_lengths(dataset, self.args.length_column_name),
                                          self.args.max_tokens_per_batch, seed=self.args.data_seed or self.args.seed)
        collator = self.data_collator
        if is_datasets_available() and isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description="Training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="Training")
        loader = DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collator, num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory, persistent_workers=self.args.dataloader_persistent_workers,
            prefetch_factor=self.args.dataloader_prefetch_factor,
            worker_init_fn=partial(seed_worker, num_workers=self.args.dataloader_num_workers,
                                   rank=self.args.process_index),
        )
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        """As ``Trainer.get_eval_dataloader``; its workers leave stop signals to the training process."""
        return workers_ignore_stop_signals(super().get_eval_dataloader(eval_dataset))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """As ``Seq2SeqTrainer.prediction_step``, with generation capped at the decoder's positions
        (``hf_l2mt.core.generation_length``): past them an encoder-decoder with a position table fails with an
        ``IndexError``, so a ``generation_max_length`` above them changes only the evaluations that would crash."""
        if self.args.predict_with_generate and not prediction_loss_only:
            gen_kwargs = capped_generate_kwargs(self.model, gen_kwargs or getattr(self, "_gen_kwargs", {}))
        loss, predictions, labels = super().prediction_step(model, inputs, prediction_loss_only,
                                                            ignore_keys=ignore_keys, **gen_kwargs)
        if isinstance(self.gather_function, LossGather):
            self.gather_function.expect_loss(loss)
        return loss, predictions, labels

    def evaluation_loop(self, *args, **kwargs):
        """As ``Trainer.evaluation_loop``, with ``eval_loss`` the mean over examples as ``Trainer`` has it, where
        ``Seq2SeqTrainer`` averages batch means (``hf_l2mt.core.eval_loss``)."""
        self.gather_function = LossGather(self.accelerator, self.gather_function, self.args.eval_use_gather_object)
        return super().evaluation_loop(*args, **kwargs)

    # ---- The update -------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Token-level cross-entropy normalised by ``num_items_in_batch`` for encoder–decoders (see
        ``hf_l2mt.core.loss``); transformers' own loss for every other model. Either way plus KL-to-base."""
        if "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        kl_on = self.args.kl_lambda > 0 and model.training and self.anchor is not None
        if not self.token_level_loss:
            if not kl_on:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = super().compute_loss(model, dict(inputs), True, num_items_in_batch)
            unwrapped = self.accelerator.unwrap_model(model)
            logits, labels = logits_of(outputs, has_loss=True), inputs["labels"]
            if self._loss_shifts_labels:  # position i predicts label i + 1
                logits, labels = logits[..., :-1, :], labels[..., 1:]
            base_inputs = {k: v for k, v in inputs.items() if k != "labels"}
            loss = loss + self._kl_to_base(unwrapped, base_inputs, logits, labels, num_items_in_batch,
                                           shift=self._loss_shifts_labels)
            return (loss, outputs) if return_outputs else loss
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        unwrapped = self.accelerator.unwrap_model(model)
        if "decoder_input_ids" not in inputs and hasattr(unwrapped, "prepare_decoder_input_ids_from_labels"):
            inputs["decoder_input_ids"] = unwrapped.prepare_decoder_input_ids_from_labels(labels=labels)
        elif "decoder_input_ids" not in inputs:
            inputs["labels"] = labels  # the model builds its decoder inputs; its own loss is ignored
        outputs = model(**inputs)
        logits = logits_of(outputs, has_loss="labels" in inputs)
        loss = token_cross_entropy(logits, labels, num_items_in_batch, self.args.label_smoothing_factor)
        if kl_on:
            loss = loss + self._kl_to_base(unwrapped, inputs, logits, labels, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts every process's tokens while DDP averages gradients over processes.
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        if return_outputs and not isinstance(outputs, dict) and "labels" not in inputs:
            # transformers' prediction_step reads a tuple as (loss, logits, ...), as a model given labels returns it.
            outputs = (loss, *outputs)
        return (loss, outputs) if return_outputs else loss

    def _kl_to_base(self, model, inputs, logits, labels, num_items_in_batch, shift=False) -> torch.Tensor:
        """λ_kl,t · Σ_tokens KL(p_base ‖ p_θ) / num_items_in_batch: token-level like the task loss, so
        gradient accumulation stays exact. Costs one forward pass without autograd per micro-batch.
        ``shift``: ``logits`` and ``labels`` are a causal LM's, already aligned (last position dropped)."""
        base = base_logits(model, self.anchor, inputs)
        if shift:
            base = base[..., :-1, :]
        kl_sum = token_kl_sum(logits, base, labels, self.args.kl_temperature)
        tokens = labels.ne(IGNORE_INDEX).sum()
        self._kl_sum = kl_sum.detach() if self._kl_sum is None else self._kl_sum + kl_sum.detach()
        self._kl_tokens = tokens if self._kl_tokens is None else self._kl_tokens + tokens
        denominator = tokens.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        if torch.is_tensor(denominator):
            denominator = denominator.to(kl_sum.device)
        return self.args.kl_lambda * self._factor("kl", self.state.global_step) * kl_sum / denominator

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

    def _torch_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer itself, inside accelerate's ``AcceleratedOptimizer`` once prepared."""
        return getattr(self.optimizer, "optimizer", self.optimizer)

    def _add_lora_l2sp(self) -> None:
        scaler = self._grad_scaler()
        loss_scale = scaler.get_scale() if scaler is not None else 1.0
        add_lora_l2sp_grad_(self._lora_pairs(), self.args.lora_l2sp_lambda * loss_scale)

    def _lora_pairs(self):
        """The adapters' (A, B, s), found once: the parameters of the unwrapped (DDP-free) model."""
        if self._lora_pair_cache is None:
            self._lora_pair_cache = lora_pairs(self.accelerator.unwrap_model(self.model))
        return self._lora_pair_cache

    def _grad_scaler(self):
        scaler = getattr(self.accelerator, "scaler", None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def _add_coupled_l2sp(self) -> None:
        factor = self._factor("l2sp", self.state.global_step)
        scaler = self._grad_scaler()
        loss_scale = scaler.get_scale() if scaler is not None else 1.0
        for group in self.regularized_groups:
            group.add_coupled_l2sp_(factor, loss_scale)

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._skip_update:
            return
        step = self.state.global_step
        wd_factor = self._factor("weight_decay", step)
        l2sp_factor = self._factor("l2sp", step)
        decoupled_l2sp = self.args.l2sp_mode == "decoupled"
        for group in self.regularized_groups:
            group.apply_weight_decay_(wd_factor)
            if decoupled_l2sp:
                group.move_toward_anchor_(l2sp_factor, self._applied)

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        """L1's proximal step after the update, so the exact zeros (or exact anchor values) it makes are
        the weights the next forward pass sees; a pre-step threshold would be undone by the step."""
        if self._skip_update:
            return
        for group in self.regularized_groups:
            group.soft_threshold_(self.args.l1_lambda)

    # ---- Logging and checkpoints -------------------------------------------------------------

    def regularization_metrics(self) -> dict[str, float]:
        """The logged values: strengths used by the latest update, the penalty and ‖θ − θ₀‖₂."""
        latest = max(self.state.global_step - 1, 0)
        metrics = self.current_strengths(latest)
        metrics.update(self.group_strengths(latest))
        anchored = [g for g in self.regularized_groups if g.has_l2sp and g.params] if self._groups_bound else []
        if anchored:
            l2sp_factor = self._factor("l2sp", latest)
            penalty, distance_sq = 0.0, 0.0
            for group in anchored:
                sq, weighted = group.l2sp_sums()
                penalty += 0.5 * group.l2sp_lambda * l2sp_factor * weighted
                distance_sq += sq
            self.nonfinite.check_penalty(self.state.global_step, penalty)
            metrics["l2sp_penalty"] = penalty
            metrics["l2sp_distance"] = distance_sq**0.5
        if self.args.l1_lambda > 0:
            metrics["l1_penalty"] = self.args.l1_lambda * sum(group.l1_distance() for group in self.regularized_groups)
        if self.args.lora_l2sp_lambda > 0:
            metrics["lora_l2sp_penalty"] = lora_l2sp_penalty(self._lora_pairs(), self.args.lora_l2sp_lambda)
        if self._kl_tokens is not None:
            metrics["kl_to_base"] = float(self._kl_sum) / max(int(self._kl_tokens), 1)
            self._kl_sum, self._kl_tokens = None, None
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            self.nonfinite.check()
        if "loss" in logs and self.regularized_groups is not None:
            logs = {**logs, **self.regularization_metrics()}
        if "loss" in logs and self.args.nonfinite_loss == "skip":
            logged = next((row[SKIPPED_METRIC] for row in reversed(self.state.log_history) if SKIPPED_METRIC in row), 0)
            logs[SKIPPED_METRIC], self.nonfinite.skipped = logged + self.nonfinite.skipped, 0
        super().log(logs, start_time)

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
