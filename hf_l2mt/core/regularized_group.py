"""One record per optimizer parameter group: everything the update hooks need to regularize it.

``build_param_groups`` decides each group's strengths (``ParamGroup``); ``RegularizedGroup`` adds what
the run needs to apply them: how its weight decay is applied (decided once, when the optimizer is
built), and, from the first training step on, its live parameters (as the optimizer holds them after
``accelerator.prepare``: FSDP2 shards), their anchors, EWC's weights and L1's target. The trainer's hooks
iterate these records; the maths is in ``hf_l2mt.core.regularizers``.
"""

from dataclasses import dataclass, field

import torch

from .param_groups import ParamGroup
from .regularizers.ewc import add_weighted_l2sp_grad_, move_toward_anchor_weighted_, weighted_squared_distance
from .regularizers.l1 import l1_distance, soft_threshold_
from .regularizers.l2sp import add_l2sp_grad_, move_toward_anchor_, squared_distance
from .regularizers.weight_decay import WeightDecayBy, add_weight_decay_grad_, scale_toward_zero_


def weight_decay_by(weight_decay_mode: str, optimizer_cls: type) -> WeightDecayBy:
    """AdamW decays decoupled by itself (Loshchilov & Hutter 2019); other optimizers (SGD, Adam, Adagrad,
    ...) have only a coupled ``weight_decay``, so their decoupled decay is applied in the hook."""
    if weight_decay_mode == "coupled":
        return WeightDecayBy.GRADIENT
    if issubclass(optimizer_cls, torch.optim.AdamW):
        return WeightDecayBy.OPTIMIZER
    return WeightDecayBy.PRE_STEP_SHRINK


@dataclass
class RegularizedGroup:
    """A ``ParamGroup``'s strengths and the state its regularizers act on."""

    settings: ParamGroup
    weight_decay_by: WeightDecayBy
    # Set by ``bind`` at the first training step.
    optimizer_group: dict | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)
    anchors: list[torch.Tensor] | None = None  # θ₀ per parameter, when the anchor covers this group
    fisher: list[torch.Tensor] | None = None  # EWC's F per parameter, with a Fisher and λ > 0
    l1_target: str | None = None  # "anchor" or "zero" when L1 acts on this group

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def names(self) -> list[str]:
        return self.settings.names

    @property
    def weight_decay(self) -> float:
        return self.settings.weight_decay

    @property
    def l2sp_lambda(self) -> float:
        return self.settings.l2sp_lambda

    @property
    def optimizer_kwargs(self) -> dict:
        """This group's entry in the optimizer's constructor: the optimizer's own decay only when it applies it."""
        own_decay = self.weight_decay if self.weight_decay_by is WeightDecayBy.OPTIMIZER else 0.0
        return {"params": self.settings.params, "weight_decay": own_decay}

    @property
    def has_l2sp(self) -> bool:
        return self.l2sp_lambda > 0 and self.anchors is not None

    def bind(self, optimizer_group: dict, anchor: dict | None, fisher: dict | None, l1_target: str | None) -> None:
        """Attach the live parameters of ``optimizer_group`` and their anchors, F and L1 target (by name)."""
        self.optimizer_group = optimizer_group
        self.params = list(optimizer_group["params"])
        covered = anchor is not None and all(n in anchor for n in self.names)
        self.anchors = [anchor[n] for n in self.names] if covered else None
        self.fisher = [fisher[n] for n in self.names] if fisher is not None and self.l2sp_lambda > 0 else None
        self.l1_target = l1_target if l1_target == "anchor" or self.settings.decays else None

    @property
    def lr(self) -> float:
        return float(self.optimizer_group["lr"])

    # ---- The update -------------------------------------------------------------------------

    def add_coupled_l2sp_(self, factor: float, loss_scale: float = 1.0) -> None:
        """``grad += λ·factor·loss_scale·F ⊙ (θ − θ₀)`` (F ≡ 1 without EWC); ``loss_scale`` is fp16's."""
        if not self.has_l2sp:
            return
        strength = self.l2sp_lambda * factor * loss_scale
        if self.fisher is None:
            add_l2sp_grad_(self.params, self.anchors, strength)
        else:
            add_weighted_l2sp_grad_(self.params, self.anchors, self.fisher, strength)

    def apply_weight_decay_(self, factor: float) -> None:
        """This update's weight decay wd·factor, the way ``weight_decay_by`` says."""
        strength = self.weight_decay * factor
        if self.weight_decay_by is WeightDecayBy.GRADIENT:
            add_weight_decay_grad_(self.optimizer_group["params"], strength)
        elif self.weight_decay_by is WeightDecayBy.OPTIMIZER:
            self.optimizer_group["weight_decay"] = strength
        else:
            scale_toward_zero_(self.optimizer_group["params"], self.lr * strength)

    def move_toward_anchor_(self, factor: float, applied: torch.Tensor | None = None) -> None:
        """Decoupled L2-SP: ``θ ← θ − min(lr·λ·factor·F, 1) ⊙ (θ − θ₀)`` (unclamped, F ≡ 1, without EWC).

        ``applied``: a 0-d tensor on the device, 0 for an update skipped there (``host_check_steps``), else 1."""
        if not self.has_l2sp:
            return
        fraction = self.lr * self.l2sp_lambda * factor
        if applied is not None:
            fraction = applied * fraction
        if self.fisher is None:
            move_toward_anchor_(self.params, self.anchors, fraction)
        else:
            move_toward_anchor_weighted_(self.params, self.anchors, self.fisher, fraction)

    def soft_threshold_(self, l1_lambda: float) -> None:
        """L1's proximal step with threshold lr·λ₁ towards this group's target."""
        if self.l1_target is not None:
            soft_threshold_(self.params, self.anchors if self.l1_target == "anchor" else None, self.lr * l1_lambda)

    # ---- Logged values ----------------------------------------------------------------------

    def l2sp_sums(self) -> tuple[float, float]:
        """(‖θ − θ₀‖², Σ F ⊙ (θ − θ₀)²) over this group; the two are equal without EWC."""
        squared = float(squared_distance(self.params, self.anchors))
        if self.fisher is None:
            return squared, squared
        return squared, float(weighted_squared_distance(self.params, self.anchors, self.fisher))

    def l1_distance(self) -> float:
        """Σ|θ − c| over this group (0 when L1 does not act on it)."""
        if self.l1_target is None or not self.params:
            return 0.0
        return float(l1_distance(self.params, self.anchors if self.l1_target == "anchor" else None))
