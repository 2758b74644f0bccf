"""KL to the base model (Khayrallah et al. 2018, "Regularized Training Objective for Continued
Training for Domain Adaptation in Neural Machine Translation"): the fine-tuned model's next-token
distribution is kept close to the base model's on the training batch.

Per non-ignored target token i, with temperature T:

    KL_i = Σ_v p_base(v) · (log p_base(v) − log p_θ(v)),   p = softmax(logits / T)

The base's logits come from the same module run with the anchor's weights
(``torch.func.functional_call``), so no second model is kept in memory: the cost is one extra
forward pass per micro-batch, without autograd, and the anchor (shared with L2-SP).
"""

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..loss import IGNORE_INDEX, logits_of


def base_logits(model: torch.nn.Module, base_weights: dict[str, torch.Tensor], inputs: dict) -> torch.Tensor:
    """Logits of ``model`` with its parameters replaced by ``base_weights``, in eval mode (no dropout).

    Parameters absent from ``base_weights`` (frozen ones) and buffers are the model's own: training
    never changes them. Weights tied in ``model`` stay tied.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            weights = {n: t.to(p.dtype) for (n, t), p in zip(base_weights.items(), _params_of(model, base_weights))}
            return logits_of(functional_call(model, weights, args=(), kwargs=inputs), has_loss="labels" in inputs)
    finally:
        model.train(was_training)


def _params_of(model: torch.nn.Module, names) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    return [params[n] for n in names]


def token_kl_sum(
    logits: torch.Tensor, base: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Σ over non-ignored target tokens of KL(p_base ‖ p_θ), times T² (Hinton et al. 2015) so that
    the gradient keeps its scale whatever the temperature; computed in float32.

    Every position is computed and the ignored ones are zeroed: selecting the others (``logits[mask]``)
    would make the host wait for the device to learn how many there are, at every micro-batch."""
    mask = labels.to(logits.device).ne(IGNORE_INDEX)
    log_p = F.log_softmax(logits.float() / temperature, dim=-1)
    log_base = F.log_softmax(base.float() / temperature, dim=-1)
    per_token = F.kl_div(log_p, log_base, reduction="none", log_target=True).sum(-1)
    kl = torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
    return kl * temperature**2
