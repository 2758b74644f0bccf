"""The optimizer ``L2MTTrainer`` builds (one parameter group per regularization setting), the anchor θ₀ it
binds at the first update, and the hooks around the optimizer's step that apply the regularizers."""

import logging

import torch

from .. import anchor as anchor_io
from .. import preflight
from ..fisher import fisher_weights, load_checkpoint_weights
from ..nonfinite import device_skip_blockers
from ..param_groups import build_param_groups, format_group_table, freeze_fixed_positions, group_layout
from ..regularized_group import RegularizedGroup, weight_decay_by
from ..regularizers.lora_l2sp import add_lora_l2sp_grad_, lora_pairs

logger = logging.getLogger("hf_l2mt")
# Group layouts (``group_layout``) whose table this process has logged. The demo and a λ search train several
# copies of one model in one process, and a table per copy buried what they print (issue 23); each run's
# strengths are in its own log lines (``l2sp_lambda``, ``weight_decay``).
LOGGED_GROUP_LAYOUTS: set[tuple] = set()

class RegularizedOptimizer:
    """``L2MTTrainer``'s optimizer, anchor and step hooks (a mixin: it reads the trainer's state)."""

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
