"""L2-SP for LoRA, measured in the merged weights, as pure functions with no Trainer in sight.

With LoRA the base weights W₀ are frozen and each adapted matrix is W₀ + ΔW, ΔW = s·B·A (A: r × in,
B: out × r, s = lora_alpha / lora_r). Its distance to the pretrained weights is therefore ‖ΔW‖, and the
penalty that full fine-tuning's L2-SP puts on ‖W − W₀‖² becomes

    R = (λ/2)·Σ ‖s·B·A‖²_F,      ∂R/∂B = λ s² (B A) Aᵀ,      ∂R/∂A = λ s² Bᵀ (B A).

Nothing out × in is formed: ‖BA‖²_F = Σ (BᵀB) ⊙ (AAᵀ) and (B A) Aᵀ = B (A Aᵀ), Bᵀ(B A) = (BᵀB) A, so the
cost is O((in + out)·r²) per matrix instead of O(in·out·r).
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LoraPair:
    """One adapted matrix: its name, A (r × in), B (out × r) and the scale s."""

    name: str
    lora_A: torch.Tensor
    lora_B: torch.Tensor
    scaling: float


def lora_pairs(model: nn.Module) -> list[LoraPair]:
    """Every (A, B, s) of the active LoRA adapters of a PEFT-wrapped ``model`` whose adapters train."""
    pairs = []
    for name, module in model.named_modules():
        lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if not isinstance(lora_a, nn.ModuleDict) or not isinstance(lora_b, nn.ModuleDict):
            continue
        for adapter in module.active_adapters:
            if adapter in lora_a and lora_a[adapter].weight.requires_grad:
                pairs.append(LoraPair(name, lora_a[adapter].weight, lora_b[adapter].weight,
                                      float(module.scaling[adapter])))
    return pairs


def merged_squared_norm(pair: LoraPair) -> torch.Tensor:
    """‖s·B·A‖²_F in float32, through the r × r Gram matrices."""
    with torch.no_grad():
        a, b = pair.lora_A.detach().float(), pair.lora_B.detach().float()
        return pair.scaling**2 * ((b.T @ b) * (a @ a.T)).sum()


def lora_l2sp_penalty(pairs: list[LoraPair], strength: float) -> float:
    """(λ/2)·Σ‖s·B·A‖²_F with λ = ``strength``."""
    return 0.5 * strength * float(sum((merged_squared_norm(p) for p in pairs), torch.zeros(())))


def add_lora_l2sp_grad_(pairs: list[LoraPair], strength: float) -> None:
    """Coupled merged-weight L2-SP: ``A.grad += λ s² (BᵀB) A`` and ``B.grad += λ s² B (A Aᵀ)``.

    Both from the values before either gradient changes. ``strength`` is λ_t, times the loss scale when
    gradients are scaled (fp16). A matrix without a gradient (unused in this batch) gets the penalty's.
    """
    if strength == 0.0:
        return
    with torch.no_grad():
        for pair in pairs:
            a, b = pair.lora_A, pair.lora_B
            coefficient = strength * pair.scaling**2
            grad_a = coefficient * ((b.T @ b) @ a)
            grad_b = coefficient * (b @ (a @ a.T))
            for param, grad in ((a, grad_a), (b, grad_b)):
                if param.grad is None:
                    param.grad = grad.to(param.dtype)
                else:
                    param.grad.add_(grad.to(param.grad.dtype))
